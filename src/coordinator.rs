//! The coordinator: validates and routes what agents hand in, decides when an
//! agent trains, serves predictions and reports the status. Training itself
//! runs on the threads of [`crate::update`]; no call here waits for it.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::agent::{task_of_kind, AgentState, LiveModel, TaskState};
use crate::buffer::Insert;
use crate::checkpoint;
use crate::config::Config;
use crate::data_dir_lock::DataDirLock;
use crate::error::{Error, ModelError, Result, ValidationError};
use crate::eval::is_held_out;
use crate::example::{
    check_unit, now_millis, unix_millis, ExampleId, ModelPerformance, NewExample, Priority, Target, TargetKind,
    TrainingExample,
};
use crate::feedback::{judge, PredictionFeedback, UserCorrection};
use crate::models::{restore_model, AgentModel, ModelKind};
use crate::replay::ReplayMemory;
use crate::runtime::{Shared, HISTORY_IN_MEMORY};
use crate::status::{AgentStatus, ModelStatus, TrainingStatus};
use crate::store::{self, ExampleState, ExampleStore, Recovered, RecoveryLimits, Split, StoreOp, StoreWriter};
use crate::update;

/// Where an accepted example went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Into the agent's training buffer.
    Buffered,
    /// Into the task's held-out window: used to judge updates, never trained on.
    HeldOut,
    /// The buffer was full and this was its least valuable example, so it was
    /// not buffered.
    NotBuffered,
    /// No model learns this task's kind of target: the example is kept for
    /// export (a fine-tuning data set), not trained.
    Kept,
}

/// The receipt of an accepted example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The example's id.
    pub id: ExampleId,
    /// Where it went.
    pub placement: Placement,
}

/// What became of a prediction handed in with [`Coordinator::add_prediction_feedback`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FeedbackOutcome {
    /// The answer was known and the prediction was worth learning: it is an example now.
    Learned {
        /// The example's receipt.
        receipt: Receipt,
        /// The uncertainty given to it.
        uncertainty: f64,
        /// The importance given to it.
        importance: f64,
    },
    /// The answer is not known and the prediction was uncertain: it waits for
    /// a label in the task's review queue.
    AwaitingLabel {
        /// Its id in the review queue (see [`Coordinator::label`]).
        review_id: ExampleId,
        /// Predictions of this (agent, task) waiting for a label.
        pending: usize,
    },
    /// Confident enough and not wrong: nothing to learn.
    NotNeeded {
        /// The prediction's uncertainty.
        uncertainty: f64,
        /// The prediction's importance.
        importance: f64,
    },
}

/// A prediction served by a live model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The predicted output.
    pub output: Target,
    /// The model's confidence, `0..=1`.
    pub confidence: f64,
    /// The version of the model that answered.
    pub model_version: u64,
    /// When [`Coordinator::predict`] sent the prediction to the review queue
    /// (confidence below `predict_feedback_threshold` and uncertain enough by
    /// the feedback rules): its review id.
    pub review_id: Option<ExampleId>,
}

/// The training coordinator. Owns its background threads; dropping it (or
/// calling [`Coordinator::shutdown`]) stops and joins them.
pub struct Coordinator {
    pub(crate) shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop_ticker: Mutex<Option<Sender<()>>>,
    /// Held from the start to the end of the shutdown (see [`DataDirLock`]).
    data_dir_lock: Mutex<Option<DataDirLock>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("config", &self.shared.config)
            .field("device", &self.shared.device)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Validates the configuration, opens the store (PostgreSQL when
    /// configured, otherwise the SQLite file in `data_dir`; migrates it and
    /// replays an earlier run's spool), loads the newest checkpoints, takes
    /// back the examples not yet trained, the held-out windows and the
    /// performance history, and starts the background threads: the store
    /// writer, one update worker per `max_concurrent_updates` and the periodic
    /// check. Fails when the store cannot be opened, or when another running
    /// coordinator holds `data_dir` ([`Error::DataDirInUse`]).
    pub fn new(config: Config) -> Result<Coordinator> {
        config.validate()?;
        let data_dir_lock = DataDirLock::acquire(&config.data_dir)?;
        let device = config.device.resolve();
        let (store, recovered) = open_store(&config)?;
        let cluster = match config.cluster {
            Some(_) => Some(Arc::new(crate::cluster::Cluster::open(&config)?)),
            None => None,
        };
        let (job_tx, job_rx) = crossbeam_channel::unbounded();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let workers = config.max_concurrent_updates;
        let ids = match (&store, &cluster) {
            (Some(_), None) => crate::ids::LocalIds::durable(&config.data_dir)?,
            _ => crate::ids::LocalIds::in_memory(),
        };
        let shared = Arc::new(Shared::new(config, device, job_tx, store, cluster.clone(), ids));
        let coordinator = Coordinator {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
            stop_ticker: Mutex::new(Some(stop_tx)),
            data_dir_lock: Mutex::new(Some(data_dir_lock)),
        };
        for i in 0..workers {
            let (shared, jobs) = (Arc::clone(&shared), job_rx.clone());
            coordinator.spawn(format!("onthefly-update-{i}"), move || {
                update::worker_loop(shared, jobs)
            })?;
        }
        let ticker_shared = Arc::clone(&shared);
        let listener_stop = stop_rx.clone();
        coordinator.spawn("onthefly-ticker".into(), move || {
            update::ticker_loop(ticker_shared, stop_rx)
        })?;
        if cluster.is_none() {
            coordinator.load_checkpoints();
        }
        if let Some(recovered) = recovered {
            coordinator.restore(recovered);
        }
        if let Some(cluster) = cluster {
            // With several instances the database is the model's source of
            // truth: a local file may be a version that was never published
            // (a crash before its commit). Start on the newest published ones.
            let mut client = cluster.connect()?;
            crate::cluster::refresh(&shared, &cluster, &mut client)?;
            drop(client);
            let listener_shared = Arc::clone(&shared);
            coordinator.spawn("onthefly-cluster".into(), move || {
                crate::cluster::listener_loop(listener_shared, cluster, listener_stop)
            })?;
        }
        tracing::info!(device = ?device, workers, "onthefly coordinator started");
        Ok(coordinator)
    }

    /// Puts a task's stored replay memory back; the examples beyond this
    /// run's capacity are forgotten in the store too.
    fn restore_replay(&self, members: crate::store::ReplayMembers) {
        let Some(kind) = members.examples.first().map(|e| e.expected_output.kind()) else {
            return;
        };
        let agent = self.agent_or_create(&members.agent_name);
        let window = self.shared.config.performance_window;
        let memory = match task_of_kind(&mut agent.tasks.lock(), &agent.name, &members.task_type, kind, window) {
            Ok(state) => Arc::clone(&state.replay),
            Err(_) => return,
        };
        let capacity = self.shared.config.replay.capacity;
        let forgotten = memory.lock().restore(capacity, members.examples, &members.seen);
        if !forgotten.is_empty() {
            self.shared.persist(StoreOp::Replay {
                added: Vec::new(),
                removed: forgotten,
            });
        }
    }

    /// Puts back what the store kept from an earlier run: ids continue after
    /// the highest stored, buffered examples return to their buffers, held-out
    /// examples to their windows, kept ones to the export queue, and the
    /// history. Counted as received, so the status counters add up.
    fn restore(&self, recovered: Recovered) {
        let shared = &self.shared;
        shared.ids.continue_from(recovered.next_id);
        {
            let mut history = shared.history.lock();
            history.extend(recovered.history);
            shared.history_total.store(recovered.history_total, Ordering::Release);
        }
        let window = shared.config.performance_window;
        let (held_out, buffered, kept) = (recovered.held_out.len(), recovered.buffered.len(), recovered.kept.len());
        for example in recovered.held_out {
            let agent = self.agent_or_create(&example.agent_name);
            let registered = task_of_kind(
                &mut agent.tasks.lock(),
                &agent.name,
                &example.task_type,
                example.expected_output.kind(),
                window,
            )
            .map(|_| ());
            if registered.is_ok() {
                let mut stats = agent.stats.lock();
                stats.examples_received += 1;
                stats.examples_held_out += 1;
                drop(stats);
                if let Some(leaving) = agent.hold_out(example) {
                    self.train_after_judging(&agent, leaving);
                }
            }
        }
        for example in recovered.buffered {
            let agent = self.agent_or_create(&example.agent_name);
            let kind = example.expected_output.kind();
            if task_of_kind(&mut agent.tasks.lock(), &agent.name, &example.task_type, kind, window).is_err() {
                continue;
            }
            let mut buffer = agent.buffer.lock();
            let outcome = buffer.insert(example);
            let mut stats = agent.stats.lock();
            stats.examples_received += 1;
            if let Insert::BufferedEvicting(gone) | Insert::Rejected(gone) = outcome {
                shared.record_eviction(&agent, &mut stats, gone.id);
            }
        }
        // Examples whose way has ended are not restored one by one; their
        // counts are, so the counters go on from the store's.
        for (agent_name, state, n) in recovered.settled {
            let agent = self.agent_or_create(&agent_name);
            let mut stats = agent.stats.lock();
            let counter = match state {
                ExampleState::Trained => &mut stats.examples_trained,
                ExampleState::Evicted => &mut stats.examples_evicted,
                ExampleState::Discarded => &mut stats.examples_discarded,
                ExampleState::Quarantined => &mut stats.examples_quarantined,
                ExampleState::Failed => &mut stats.examples_failed,
                _ => continue,
            };
            *counter += n;
            stats.examples_received += n;
        }
        let remembered: usize = recovered.replay.iter().map(|m| m.examples.len()).sum();
        for members in recovered.replay {
            self.restore_replay(members);
        }
        let pending = recovered.pending_review.len();
        for example in recovered.pending_review {
            self.restore_review(example);
        }
        for example in recovered.quarantined {
            self.restore_quarantined(example);
        }
        for example in recovered.kept {
            let agent = self.agent_or_create(&example.agent_name);
            let kind = example.expected_output.kind();
            if task_of_kind(&mut agent.tasks.lock(), &agent.name, &example.task_type, kind, window).is_ok() {
                let mut stats = agent.stats.lock();
                stats.examples_received += 1;
                stats.examples_kept += 1;
                drop(stats);
                agent.kept.lock().push_back(example);
            }
        }
        if buffered + held_out + kept > 0 || recovered.evicted > 0 {
            tracing::info!(
                buffered,
                held_out,
                kept,
                pending,
                remembered,
                evicted = recovered.evicted,
                "examples recovered from the store"
            );
        }
        for agent in shared.agents_snapshot() {
            if shared.needs_update(&agent) {
                shared.schedule(&agent);
            }
        }
    }

    /// Returns once every example, state change and update record accepted
    /// before the call is durable: in the database, or in the fsynced spool
    /// that the next start replays (see [`crate::store`] for the promise).
    /// Without persistence it returns at once.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        match &self.shared.store {
            Some(store) => Ok(store.flush(timeout)?),
            None => Ok(()),
        }
    }

    /// Writes the examples of (agent, task) as a JSON-lines fine-tuning data
    /// set, oldest first, one object per line: `input`, `target` (plain JSON:
    /// a label is a string), `target_kind`, `priority`, `source`, `feedback`,
    /// `time_ms`, `split` (`train` / `held_out`), `state`. With a store the
    /// set is everything stored (after a flush, so nothing accepted is
    /// missing); without one, what is in memory (buffered, held out, kept).
    /// The file is written whole or not at all (a temporary file renamed).
    /// Returns the number of examples written.
    pub fn export_dataset(&self, agent_name: &str, task_type: &str, path: &std::path::Path) -> Result<usize> {
        let rows: Vec<(TrainingExample, Split, ExampleState)> = match self.store() {
            Some(store) => {
                self.flush(Duration::from_secs(60))?;
                store
                    .examples(Some(agent_name))?
                    .into_iter()
                    .filter(|s| s.example.task_type == task_type)
                    .map(|s| (s.example, s.split, s.state))
                    .collect()
            }
            None => {
                let agent = self.agent(agent_name)?;
                let mut rows: Vec<_> = agent
                    .kept
                    .lock()
                    .iter()
                    .map(|e| (e.clone(), Split::Train, ExampleState::Kept))
                    .chain(
                        agent
                            .buffer
                            .lock()
                            .iter()
                            .map(|e| (e.clone(), Split::Train, ExampleState::Buffered)),
                    )
                    .chain(agent.tasks.lock().get(task_type).into_iter().flat_map(|t| {
                        t.held_out
                            .snapshot()
                            .into_iter()
                            .map(|e| (e, Split::HeldOut, ExampleState::Evaluation))
                    }))
                    .filter(|(e, _, _)| e.task_type == task_type)
                    .collect();
                rows.sort_by_key(|(e, _, _)| e.id);
                rows
            }
        };
        let mut text = String::new();
        for (e, split, state) in &rows {
            let line = serde_json::json!({
                "id": e.id.0,
                "input": e.input_text,
                "target": e.expected_output.to_json(),
                "target_kind": e.expected_output.kind(),
                "priority": u8::from(e.correction_priority),
                "source": e.source_url,
                "feedback": e.user_feedback,
                "time_ms": unix_millis(e.timestamp),
                "split": split.as_str(),
                "state": state.as_str(),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temp, text)
            .and_then(|()| std::fs::rename(&temp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                io(e)
            })?;
        Ok(rows.len())
    }

    /// The store, for reading back what was persisted (an export, an audit);
    /// `None` when persistence is off.
    pub fn store(&self) -> Option<&Arc<dyn ExampleStore>> {
        self.shared.store.as_ref().map(StoreWriter::store)
    }

    /// Loads the newest loadable checkpoint of every (agent, task) found in
    /// `data_dir/models` and the configured model folders. A file that cannot
    /// be read is skipped (logged) in favour of the version before it.
    fn load_checkpoints(&self) {
        let config = &self.shared.config;
        let mut agent_dirs: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(config.data_dir.join("models")) {
            for entry in entries.flatten() {
                if let Ok(name) = entry.file_name().into_string() {
                    agent_dirs.insert(name.clone(), config.model_dir(&name));
                }
            }
        }
        for agent in config.model_paths.keys() {
            agent_dirs.insert(agent.clone(), config.model_dir(agent));
        }
        for (agent_name, dir) in agent_dirs {
            let Ok(tasks) = std::fs::read_dir(&dir) else { continue };
            for task in tasks.flatten() {
                let Ok(task_name) = task.file_name().into_string() else {
                    continue;
                };
                let limits = config.max_name_bytes;
                if check_name("agent_name", &agent_name, limits).is_err()
                    || check_name("task_type", &task_name, limits).is_err()
                {
                    continue;
                }
                match self.load_latest(&agent_name, &task_name, &task.path()) {
                    Ok(Some(version)) => {
                        tracing::info!(agent = %agent_name, task = %task_name, version, "checkpoint loaded")
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(agent = %agent_name, task = %task_name, error = %e, "no checkpoint could be loaded")
                    }
                }
            }
        }
    }

    fn load_latest(&self, agent_name: &str, task: &str, dir: &std::path::Path) -> Result<Option<u64>> {
        let versions = checkpoint::versions(dir)?;
        let Some(&newest) = versions.last() else {
            return Ok(None);
        };
        // The version recorded as serving first (it may be an older one
        // restored on request), then the newest down to the oldest.
        let serving = checkpoint::current(dir).filter(|v| versions.contains(v));
        let order = serving
            .into_iter()
            .chain(versions.iter().rev().copied().filter(|v| Some(*v) != serving));
        let mut last_error = None;
        for version in order {
            let loaded = checkpoint::load(dir, version).map_err(Error::from).and_then(|c| {
                Ok((
                    restore_model(c.meta.model_kind, self.shared.device, &c.params, &c.meta.model)?,
                    c,
                ))
            });
            match loaded {
                Ok((model, ckpt)) => {
                    let agent = self.agent_or_create(agent_name);
                    if let Some((refused, e)) = &last_error {
                        // A newer version was refused: said in the status
                        // and the log, not only skipped.
                        tracing::error!(agent = %agent_name, task, refused, serving = version, error = %e, "checkpoint refused; serving an older version");
                        agent.note_error(format!(
                            "checkpoint of version {refused} of task {task:?} refused ({e}); serving version {version}"
                        ));
                    }
                    let live = Arc::new(LiveModel::new(model));
                    live.version.store(version, Ordering::Release);
                    live.latest_version.store(newest, Ordering::Release);
                    *live.ewc.lock() = ckpt.ewc.to_device(self.shared.device)?;
                    let mut state = TaskState::new(ckpt.meta.target_kind, self.shared.config.performance_window);
                    state.model = Some(live);
                    agent.tasks.lock().insert(task.to_string(), state);
                    return Ok(Some(version));
                }
                Err(e) => {
                    tracing::warn!(agent = %agent_name, task, version, error = %e, "checkpoint unreadable; trying the one before");
                    // The first refused is the one that should have served.
                    if last_error.is_none() {
                        last_error = Some((version, e));
                    }
                }
            }
        }
        let (version, e) = last_error.expect("at least one version was tried");
        self.agent_or_create(agent_name).note_error(format!(
            "no checkpoint of task {task:?} could be loaded (version {version}: {e}); it starts untrained"
        ));
        Err(e)
    }

    /// Restores a kept checkpoint version of an (agent, task) as the live model
    /// (for a user-reported quality problem), with the EWC state saved with it.
    /// Recorded in the performance history. Waits for a running update of
    /// that task to finish first. Not available with several instances
    /// ([`crate::config::ClusterConfig`]): an error.
    pub fn rollback_model(&self, agent_name: &str, task_type: &str, version: u64) -> Result<()> {
        self.ensure_running()?;
        if self.shared.cluster.is_some() {
            // The group would bring this instance back to the newest published
            // version at its next check; restoring for everyone is not built yet.
            return Err(Error::Model(ModelError::NotSupported(
                "rollback_model with several instances sharing the database: the others would bring this \
                 instance back to the newest published version"
                    .into(),
            )));
        }
        let agent = self.agent(agent_name)?;
        let live = agent.live_model(task_type).ok_or_else(|| Error::NoModel {
            agent: agent_name.to_string(),
            task: task_type.to_string(),
        })?;
        let dir = self.shared.config.model_dir(agent_name).join(task_type);
        let saved = checkpoint::load(&dir, version)?;
        // The same lock order as an update: EWC state, then the trainer's copy.
        let mut ewc = live.ewc.lock();
        let mut shadow = live.shadow.lock();
        let device = self.shared.device;
        let params = saved
            .params
            .iter()
            .map(|(name, t)| Ok((name.clone(), t.f_to_device(device)?)))
            .collect::<Result<BTreeMap<_, _>, ModelError>>()?;
        let saved_ewc = saved.ewc.to_device(device)?;
        // A user's model may panic in these calls: an error, not a panic, for the caller.
        let (restored, next_shadow) = catch_unwind(AssertUnwindSafe(|| -> Result<_> {
            let mut restored = live.model.lock().try_clone()?;
            restored.restore(&params, &saved.meta.model)?;
            let next_shadow = restored.try_clone()?;
            Ok((restored, next_shadow))
        }))
        .map_err(|panic| Error::Model(ModelError::Panicked(crate::grad::panic_message(&*panic))))??;
        // Restart serves this version too, until a newer one is accepted.
        checkpoint::set_current(&dir, version)?;
        *shadow = Some(crate::update::TrainerCopy::ready(next_shadow));
        *ewc = saved_ewc;
        let mut serving = live.model.lock();
        let old = std::mem::replace(&mut *serving, restored);
        let was = live.version.swap(version, Ordering::AcqRel);
        drop(serving);
        drop(old);
        drop((shadow, ewc));
        tracing::warn!(agent = %agent_name, task = task_type, version, was, "model restored on request");
        self.shared.record_performance(ModelPerformance {
            update_id: self.shared.next_id()?,
            agent_name: agent_name.to_string(),
            task_type: task_type.to_string(),
            model_name: live.kind.name().to_string(),
            metric: String::new(),
            accuracy_before: None,
            accuracy_after: None,
            held_out_examples: 0,
            examples_trained: 0,
            train_loss: 0.0,
            update_timestamp_ms: unix_millis(SystemTime::now()),
            rollback_triggered: true,
            rollback_reason: Some(format!(
                "version {version} restored on request (was serving version {was})"
            )),
            model_version: version,
            duration_ms: 0,
        });
        Ok(())
    }

    fn spawn(&self, name: String, body: impl FnOnce() + Send + 'static) -> Result<()> {
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(body)
            .map_err(|e| Error::Thread {
                name,
                message: e.to_string(),
            })?;
        self.threads.lock().push(handle);
        Ok(())
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Adds a labelled example (the original's `add_training_example`). Returns
    /// once it is validated and buffered (or held out); never waits for training.
    /// An example of priority ≥ `immediate_update_priority`, or one that brings
    /// the agent's buffer to the threshold, queues an update.
    pub fn add_training_example(&self, example: NewExample) -> Result<Receipt> {
        self.ensure_running()?;
        self.validate_example(&example)?;
        self.accept(example, true)
    }

    /// Hands in an agent's prediction (the original's `add_prediction_feedback`);
    /// see [`crate::feedback`] for the rules deciding what becomes of it.
    pub fn add_prediction_feedback(&self, feedback: PredictionFeedback) -> Result<FeedbackOutcome> {
        self.route_feedback(feedback, &[])
    }

    /// The feedback path, with the model's class probabilities when the
    /// library itself predicted (for the review queue's ordering).
    pub(crate) fn route_feedback(&self, feedback: PredictionFeedback, distribution: &[f64]) -> Result<FeedbackOutcome> {
        self.ensure_running()?;
        let limits = &self.shared.config;
        check_name("agent_name", &feedback.agent_name, limits.max_name_bytes)?;
        check_name("task_type", &feedback.task_type, limits.max_name_bytes)?;
        check_input(&feedback.input_text, limits.max_input_bytes)?;
        check_text("source_url", &feedback.source_url, limits.max_input_bytes)?;
        check_unit("confidence_score", feedback.confidence_score)?;
        check_target("predicted_output", &feedback.predicted_output, limits.max_input_bytes)?;
        feedback.predicted_output.validate(&feedback.input_text)?;
        if let Some(actual) = &feedback.actual_output {
            check_target("actual_output", actual, limits.max_input_bytes)?;
            actual.validate(&feedback.input_text)?;
            if actual.kind() != feedback.predicted_output.kind() {
                return Err(ValidationError::TargetKindMismatch {
                    agent: feedback.agent_name.clone(),
                    task: feedback.task_type.clone(),
                    expected: feedback.predicted_output.kind(),
                    got: actual.kind(),
                }
                .into());
            }
        }
        self.check_task_kind(
            &feedback.agent_name,
            &feedback.task_type,
            feedback.predicted_output.kind(),
        )?;

        let j = judge(
            &feedback.task_type,
            &feedback.predicted_output,
            feedback.actual_output.as_ref(),
            feedback.confidence_score,
            limits.feedback_uncertainty_threshold,
            limits.feedback_importance_threshold,
        );
        if !j.learn {
            return Ok(FeedbackOutcome::NotNeeded {
                uncertainty: j.uncertainty,
                importance: j.importance,
            });
        }
        match feedback.actual_output.clone() {
            Some(actual) => {
                let note = format!(
                    "prediction feedback: predicted {} with confidence {:.3}{}",
                    brief(&feedback.predicted_output),
                    feedback.confidence_score,
                    if j.wrong == Some(true) { " (wrong)" } else { "" }
                );
                let mut example = NewExample::new(
                    feedback.agent_name.clone(),
                    feedback.task_type.clone(),
                    feedback.input_text.clone(),
                    actual,
                )
                .with_uncertainty(j.uncertainty)
                .with_importance(j.importance)
                .with_source(feedback.source_url.clone());
                example.user_feedback = Some(note);
                let receipt = self.accept(example, true)?;
                Ok(FeedbackOutcome::Learned {
                    receipt,
                    uncertainty: j.uncertainty,
                    importance: j.importance,
                })
            }
            None => {
                let (review_id, pending) = self.queue_for_review(feedback, distribution)?;
                Ok(FeedbackOutcome::AwaitingLabel { review_id, pending })
            }
        }
    }

    /// Adds a person's correction (the original's `add_user_correction`):
    /// uncertainty and importance 1.0, never held out; priority 2 (the default)
    /// queues an immediate update, priority 3 is also logged as critical.
    pub fn add_user_correction(&self, correction: UserCorrection) -> Result<Receipt> {
        self.ensure_running()?;
        let max = self.shared.config.max_input_bytes;
        check_target("incorrect_output", &correction.incorrect_output, max)?;
        check_target("correct_output", &correction.correct_output, max)?;
        correction.incorrect_output.validate(&correction.input_text)?;
        if correction.incorrect_output.kind() != correction.correct_output.kind() {
            return Err(ValidationError::TargetKindMismatch {
                agent: correction.agent_name.clone(),
                task: correction.task_type.clone(),
                expected: correction.correct_output.kind(),
                got: correction.incorrect_output.kind(),
            }
            .into());
        }
        let note = correction.user_feedback.clone().unwrap_or_else(|| {
            format!(
                "user correction: the agent answered {}",
                correction.incorrect_output.to_json()
            )
        });
        let example = NewExample::new(
            correction.agent_name,
            correction.task_type,
            correction.input_text,
            correction.correct_output,
        )
        .with_uncertainty(1.0)
        .with_importance(1.0)
        .with_priority(correction.priority)
        .with_feedback(note);
        self.validate_example(&example)?;
        // A person's answer is too valuable to spend on evaluation only.
        self.accept(example, false)
    }

    /// Queues an update of the agent now, whatever its buffer holds (the
    /// original's `force_update_agent`); when one is running, another follows
    /// it. Returns without waiting for it.
    pub fn force_update_agent(&self, agent_name: &str) -> Result<()> {
        self.ensure_running()?;
        let agent = self.agent(agent_name)?;
        // If an update is running it may have taken its batch already; the
        // flag makes the worker run another one after it.
        agent.force_requested.store(true, Ordering::Release);
        self.shared.schedule(&agent);
        Ok(())
    }

    /// Installs a model the caller built for an (agent, task), instead of the
    /// built-in one its target kind would get. The task's target kind becomes
    /// the model's; examples of another kind are refused from then on.
    pub fn register_model(&self, agent_name: &str, task_type: &str, model: Box<dyn AgentModel>) -> Result<()> {
        self.ensure_running()?;
        let limits = &self.shared.config;
        check_name("agent_name", agent_name, limits.max_name_bytes)?;
        check_name("task_type", task_type, limits.max_name_bytes)?;
        let agent = self.agent_or_create(agent_name);
        let mut tasks = agent.tasks.lock();
        let state = task_of_kind(
            &mut tasks,
            agent_name,
            task_type,
            model.target_kind(),
            limits.performance_window,
        )?;
        if state.model.is_some() {
            return Err(Error::ModelExists {
                agent: agent_name.to_string(),
                task: task_type.to_string(),
            });
        }
        let dir = limits.model_dir(agent_name).join(task_type);
        state.model = Some(Arc::new(LiveModel::new(model).numbered_after(&dir)));
        Ok(())
    }

    /// A copy of the live weights of an (agent, task) by variable name, and the
    /// version they belong to (for inspection and export; the copy is taken
    /// under the model's lock).
    pub fn live_weights(&self, agent_name: &str, task_type: &str) -> Result<(u64, BTreeMap<String, tch::Tensor>)> {
        let agent = self.agent(agent_name)?;
        let live = agent.live_model(task_type).ok_or_else(|| Error::NoModel {
            agent: agent_name.to_string(),
            task: task_type.to_string(),
        })?;
        let model = live.model.lock();
        let version = live.version();
        let weights = model
            .var_store()
            .variables()
            .into_iter()
            .map(|(name, t)| Ok((name, crate::ewc::deep_copy(&t)?)))
            .collect::<Result<BTreeMap<_, _>, ModelError>>()?;
        Ok((version, weights))
    }

    /// The ids of the examples in the replay memory of an (agent, task),
    /// ascending (for inspection: which learned examples its updates replay).
    pub fn replay_memory(&self, agent_name: &str, task_type: &str) -> Result<Vec<ExampleId>> {
        let agent = self.agent(agent_name)?;
        let memory = agent
            .tasks
            .lock()
            .get(task_type)
            .map(|state| Arc::clone(&state.replay))
            .ok_or_else(|| Error::NoModel {
                agent: agent_name.to_string(),
                task: task_type.to_string(),
            })?;
        let mut ids = memory.lock().ids();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Registers a fixed evaluation set for an (agent, task): from now on its
    /// updates are judged on these examples instead of the window of recent
    /// held-out ones. The task's target kind is fixed by the first target if
    /// it has none yet.
    pub fn set_evaluation_set(&self, agent_name: &str, task_type: &str, examples: Vec<(String, Target)>) -> Result<()> {
        self.ensure_running()?;
        let limits = &self.shared.config;
        check_name("agent_name", agent_name, limits.max_name_bytes)?;
        check_name("task_type", task_type, limits.max_name_bytes)?;
        let Some(kind) = examples.first().map(|(_, t)| t.kind()) else {
            return Err(ValidationError::EmptyInput.into());
        };
        for (input, target) in &examples {
            check_input(input, limits.max_input_bytes)?;
            check_target("expected_output", target, limits.max_input_bytes)?;
            target.validate(input)?;
            if target.kind() != kind {
                return Err(ValidationError::TargetKindMismatch {
                    agent: agent_name.to_string(),
                    task: task_type.to_string(),
                    expected: kind,
                    got: target.kind(),
                }
                .into());
            }
        }
        self.check_task_kind(agent_name, task_type, kind)?;
        let set = examples
            .into_iter()
            .map(|(input, target)| -> Result<TrainingExample> {
                Ok(TrainingExample {
                    id: ExampleId(self.shared.next_id()?),
                    agent_name: agent_name.to_string(),
                    task_type: task_type.to_string(),
                    input_text: input,
                    expected_output: target,
                    uncertainty_score: 0.0,
                    importance_score: 0.0,
                    source_url: String::new(),
                    timestamp: now_millis(),
                    user_feedback: Some("registered evaluation set".into()),
                    correction_priority: Priority::Low,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let agent = self.agent_or_create(agent_name);
        let mut tasks = agent.tasks.lock();
        let state = task_of_kind(&mut tasks, agent_name, task_type, kind, limits.performance_window)?;
        state.fixed_eval = Some(set);
        Ok(())
    }

    /// Predicts with the live model of an (agent, task).
    pub fn predict(&self, agent_name: &str, task_type: &str, input_text: &str) -> Result<Prediction> {
        let (mut outputs, version) = self.model_outputs(agent_name, task_type, &[input_text])?;
        let output = outputs.remove(0);
        let mut prediction = Prediction {
            output: output.output,
            confidence: output.confidence,
            model_version: version,
            review_id: None,
        };
        if prediction.confidence < self.shared.config.predict_feedback_threshold {
            let feedback = PredictionFeedback {
                agent_name: agent_name.to_string(),
                task_type: task_type.to_string(),
                input_text: input_text.to_string(),
                predicted_output: prediction.output.clone(),
                actual_output: None,
                confidence_score: prediction.confidence.clamp(0.0, 1.0),
                source_url: String::new(),
            };
            if let FeedbackOutcome::AwaitingLabel { review_id, .. } =
                self.route_feedback(feedback, &output.distribution)?
            {
                prediction.review_id = Some(review_id);
            }
        }
        Ok(prediction)
    }

    /// Predicts many inputs at once with the live model of an (agent, task),
    /// under one lock and one forward pass (faster per input than
    /// [`Coordinator::predict`]). Nothing goes to the feedback path: use it to
    /// evaluate or to score in bulk.
    pub fn predict_batch(&self, agent_name: &str, task_type: &str, inputs: &[&str]) -> Result<Vec<Prediction>> {
        let (outputs, version) = self.model_outputs(agent_name, task_type, inputs)?;
        Ok(outputs
            .into_iter()
            .map(|o| Prediction {
                output: o.output,
                confidence: o.confidence,
                model_version: version,
                review_id: None,
            })
            .collect())
    }

    /// The live model's outputs for `inputs` and the version that produced them.
    fn model_outputs(
        &self,
        agent_name: &str,
        task_type: &str,
        inputs: &[&str],
    ) -> Result<(Vec<crate::models::ModelOutput>, u64)> {
        let started = std::time::Instant::now();
        let limits = &self.shared.config;
        check_name("agent_name", agent_name, limits.max_name_bytes)?;
        check_name("task_type", task_type, limits.max_name_bytes)?;
        for input in inputs {
            check_input(input, limits.max_input_bytes)?;
        }
        let agent = self.agent(agent_name)?;
        let no_model = || Error::NoModel {
            agent: agent_name.to_string(),
            task: task_type.to_string(),
        };
        let live = agent.live_model(task_type).ok_or_else(no_model)?;
        let model = live.model.lock();
        // Read under the same lock as the model, so the version matches the weights.
        let version = live.version();
        let outputs = match crate::models::predict_checked(model.as_ref(), inputs) {
            Err(ModelError::NotTrained(_)) => return Err(no_model()),
            other => other?,
        };
        drop(model);
        self.shared
            .latencies
            .predictions(agent_name, task_type, inputs.len(), started.elapsed().as_secs_f64());
        Ok((outputs, version))
    }

    /// The training system in Prometheus' text exposition format: examples
    /// per agent and state, buffers, updates by outcome, model versions,
    /// review queues, update and prediction latency histograms per agent and
    /// task, and the store's backlog, spool and pool (see the README's
    /// "Metrics" for the names). Serve it at `/metrics`
    /// (`examples/metrics_server.rs`).
    pub fn metrics_text(&self) -> String {
        crate::metrics::render(&self.get_training_status(), &self.shared.latencies)
    }

    /// The training status (the original's `get_training_status`, extended).
    pub fn get_training_status(&self) -> TrainingStatus {
        let mut agents = BTreeMap::new();
        let mut buffer_sizes = BTreeMap::new();
        for agent in self.shared.agents_snapshot() {
            let status = agent_status(&agent);
            buffer_sizes.insert(agent.name.clone(), status.buffer_size);
            agents.insert(agent.name.clone(), status);
        }
        let history = self.shared.history.lock();
        let recent = history.iter().skip(history.len().saturating_sub(5)).cloned().collect();
        TrainingStatus {
            is_training: agents.values().any(|a| a.is_training),
            total_examples: buffer_sizes.values().sum(),
            buffer_sizes,
            performance_history_size: self.shared.history_total.load(Ordering::Acquire) as usize,
            recent_performance: recent,
            update_threshold: self.shared.config.update_threshold,
            rollback_threshold: self.shared.config.rollback_threshold,
            device: device_name(self.shared.device),
            updates_in_flight: *self.shared.in_flight.lock(),
            agents,
            store: self.shared.store.as_ref().map(StoreWriter::status),
            cluster: self.shared.cluster.as_ref().map(|c| c.status()),
        }
    }

    /// Every update recorded since start (the most recent 10,000), oldest first.
    pub fn performance_history(&self) -> Vec<ModelPerformance> {
        self.shared.history.lock().iter().cloned().collect()
    }

    /// Waits until no update is queued or running, at most `timeout`. Returns
    /// whether it became idle. Every update done by then serves (its version
    /// and checkpoint are in place); a worker may still be bringing its own
    /// copy of a model level with the new version, which the next update of
    /// that task waits for.
    pub fn wait_for_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut in_flight = self.shared.in_flight.lock();
        while *in_flight > 0 {
            if self.shared.idle.wait_until(&mut in_flight, deadline).timed_out() {
                return *in_flight == 0;
            }
        }
        true
    }

    /// Stops taking input, lets a running update finish, and joins every
    /// background thread. Queued updates that have not started are dropped
    /// (their examples stay buffered). Calling it again does nothing. It waits
    /// for the running update, however long a user's model takes.
    pub fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        self.shared.jobs.lock().take();
        self.stop_ticker.lock().take();
        // The lock is held while joining, so a concurrent second call returns
        // only once every thread has stopped.
        let mut threads = self.threads.lock();
        for handle in threads.drain(..) {
            let name = handle.thread().name().unwrap_or("onthefly").to_string();
            if handle.join().is_err() {
                tracing::error!(thread = %name, "background thread panicked");
            }
        }
        // No update runs now, so the live models are the serving versions.
        crate::update::compact_checkpoints(&self.shared);
        // Last: the threads above may still have persisted something.
        if let Some(store) = &self.shared.store {
            store.shutdown();
        }
        // Everything of this instance is on disk: another may start here.
        self.data_dir_lock.lock().take();
    }

    /// Whether [`Coordinator::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    pub(crate) fn ensure_running(&self) -> Result<()> {
        if self.shared.is_shutting_down() {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    pub(crate) fn agent(&self, name: &str) -> Result<Arc<AgentState>> {
        self.shared
            .agents
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownAgent(name.to_string()))
    }

    pub(crate) fn agent_or_create(&self, name: &str) -> Arc<AgentState> {
        self.shared.agent_or_create(name)
    }

    fn check_task_kind(&self, agent_name: &str, task: &str, got: TargetKind) -> Result<()> {
        let Some(agent) = self.shared.agents.read().get(agent_name).cloned() else {
            return Ok(());
        };
        let tasks = agent.tasks.lock();
        match tasks.get(task) {
            Some(state) if state.target_kind != got => Err(ValidationError::TargetKindMismatch {
                agent: agent_name.to_string(),
                task: task.to_string(),
                expected: state.target_kind,
                got,
            }
            .into()),
            _ => Ok(()),
        }
    }

    fn validate_example(&self, example: &NewExample) -> Result<()> {
        let limits = &self.shared.config;
        check_name("agent_name", &example.agent_name, limits.max_name_bytes)?;
        check_name("task_type", &example.task_type, limits.max_name_bytes)?;
        check_input(&example.input_text, limits.max_input_bytes)?;
        check_text("source_url", &example.source_url, limits.max_input_bytes)?;
        if let Some(feedback) = &example.user_feedback {
            check_text("user_feedback", feedback, limits.max_input_bytes)?;
        }
        check_unit("uncertainty_score", example.uncertainty_score)?;
        check_unit("importance_score", example.importance_score)?;
        check_target("expected_output", &example.expected_output, limits.max_input_bytes)?;
        example.expected_output.validate(&example.input_text)?;
        self.check_task_kind(&example.agent_name, &example.task_type, example.expected_output.kind())
    }

    /// Routes a validated example: held out (when `may_hold_out` and the hash
    /// says so, and it is not urgent), or buffered (and maybe an update queued).
    fn accept(&self, example: NewExample, may_hold_out: bool) -> Result<Receipt> {
        let config = &self.shared.config;
        let agent = self.agent_or_create(&example.agent_name);
        let kind = example.expected_output.kind();
        {
            // Registers the task. The kind was checked during validation, but a
            // concurrent first example of another kind may have won the race:
            // refuse this one here, before anything is stored.
            let mut tasks = agent.tasks.lock();
            task_of_kind(
                &mut tasks,
                &agent.name,
                &example.task_type,
                kind,
                config.performance_window,
            )?;
        }

        let id = ExampleId(self.shared.next_id()?);
        let priority = example.correction_priority;
        let urgent = u8::from(priority) >= config.immediate_update_priority;
        let example = TrainingExample {
            id,
            agent_name: example.agent_name,
            task_type: example.task_type,
            input_text: example.input_text,
            expected_output: example.expected_output,
            uncertainty_score: example.uncertainty_score,
            importance_score: example.importance_score,
            source_url: example.source_url,
            timestamp: now_millis(),
            user_feedback: example.user_feedback,
            correction_priority: priority,
        };

        let trainable = agent
            .tasks
            .lock()
            .get(&example.task_type)
            .is_some_and(|t| t.trainable());
        let held_out =
            trainable && may_hold_out && !urgent && is_held_out(&example.input_text, config.held_out_fraction);
        let (split, state) = match (trainable, held_out) {
            (false, _) => (Split::Train, ExampleState::Kept),
            (true, true) => (Split::HeldOut, ExampleState::Evaluation),
            (true, false) => (Split::Train, ExampleState::Buffered),
        };
        // Handed to the store before anything can act on the example, so its
        // insert precedes every later change of its state.
        if let Some(store) = &self.shared.store {
            store
                .send(StoreOp::Insert {
                    example: example.clone(),
                    split,
                    state,
                })
                .map_err(|_| Error::ShutDown)?;
        }
        if !trainable {
            // No model learns this task: keep the example for export instead of
            // letting it occupy the training buffer.
            let mut kept = agent.kept.lock();
            if kept.len() >= config.max_buffer_size {
                kept.pop_front();
            }
            kept.push_back(example);
            let mut stats = agent.stats.lock();
            stats.examples_received += 1;
            stats.examples_kept += 1;
            return Ok(Receipt {
                id,
                placement: Placement::Kept,
            });
        }
        if held_out {
            let leaving = agent.hold_out(example);
            {
                let mut stats = agent.stats.lock();
                stats.examples_received += 1;
                stats.examples_held_out += 1;
            }
            if let Some(leaving) = leaving {
                self.train_after_judging(&agent, leaving);
            }
            return Ok(Receipt {
                id,
                placement: Placement::HeldOut,
            });
        }

        if priority == Priority::Critical {
            tracing::warn!(agent = %agent.name, task = %example.task_type, id = id.0, "critical correction received");
        }
        let (placement, _) = self.insert_into_buffer(&agent, example, true);
        if placement == Placement::Buffered && (urgent || agent.fresh_buffered() >= config.update_threshold) {
            self.shared.schedule(&agent);
        }
        Ok(Receipt { id, placement })
    }

    /// A held-out example that left its full window: it judged the updates
    /// of its time and is now trained on like any other, so no labelled
    /// example is lost to training.
    fn train_after_judging(&self, agent: &Arc<AgentState>, example: TrainingExample) {
        self.shared.persist(StoreOp::SetState {
            ids: vec![example.id],
            state: ExampleState::Buffered,
            update_id: None,
        });
        let (placement, _) = self.insert_into_buffer(agent, example, false);
        if placement == Placement::Buffered && agent.fresh_buffered() >= self.shared.config.update_threshold {
            self.shared.schedule(agent);
        }
    }

    /// Puts an example into its agent's buffer, marking what that evicts;
    /// counts it as received when `new`, else moves it from the held-out
    /// count. Returns where it went and the buffer's length.
    fn insert_into_buffer(&self, agent: &AgentState, example: TrainingExample, new: bool) -> (Placement, usize) {
        // Counters change in the same critical section as the buffer, so a
        // status read never sees them disagree.
        let mut buffer = agent.buffer.lock();
        let outcome = buffer.insert(example);
        let mut stats = agent.stats.lock();
        match new {
            true => stats.examples_received += 1,
            false => stats.examples_held_out -= 1,
        }
        let placement = match outcome {
            Insert::Rejected(_) => Placement::NotBuffered,
            _ => Placement::Buffered,
        };
        if let Insert::BufferedEvicting(gone) | Insert::Rejected(gone) = outcome {
            self.shared.record_eviction(agent, &mut stats, gone.id);
        }
        (placement, buffer.len())
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn agent_status(agent: &AgentState) -> AgentStatus {
    let (buffer_size, buffer_capacity, stats) = {
        // The buffer and its counters are read in one critical section.
        let buffer = agent.buffer.lock();
        (buffer.len(), buffer.capacity(), agent.stats.lock().clone())
    };
    // Copy what is needed under the task lock, then lock each model without
    // holding it, so a long prediction never blocks ingest.
    type TaskParts = (
        String,
        TargetKind,
        usize,
        Option<Arc<LiveModel>>,
        Arc<Mutex<ReplayMemory>>,
    );
    let tasks: Vec<TaskParts> = agent
        .tasks
        .lock()
        .iter()
        .map(|(task, state)| {
            (
                task.clone(),
                state.target_kind,
                state.held_out.len(),
                state.model.clone(),
                Arc::clone(&state.replay),
            )
        })
        .collect();
    let models = tasks
        .into_iter()
        .map(|(task, target_kind, held_out_window, live, replay)| {
            let (version, labels, kind) = match &live {
                Some(live) => {
                    let model = live.model.lock();
                    let labels = catch_unwind(AssertUnwindSafe(|| model.labels())).unwrap_or_default();
                    (live.version(), labels, Some(live.kind))
                }
                None => (0, Vec::new(), ModelKind::for_target(target_kind)),
            };
            let status = ModelStatus {
                target_kind: target_kind.to_string(),
                model_kind: kind.map(|k| k.name().to_string()),
                version,
                labels,
                held_out_window,
                replay_examples: replay.lock().len(),
            };
            (task, status)
        })
        .collect();
    let reviews: BTreeMap<String, crate::review::ReviewStatus> = agent
        .reviews
        .lock()
        .iter()
        .map(|(task, queue)| (task.clone(), queue.status()))
        .collect();
    AgentStatus {
        buffer_size,
        buffer_capacity,
        is_training: agent.updating.load(Ordering::Acquire),
        pending_review: reviews.values().map(|r| r.queued).sum(),
        reviews,
        examples_received: stats.examples_received,
        examples_held_out: stats.examples_held_out,
        examples_trained: stats.examples_trained,
        examples_evicted: stats.examples_evicted,
        examples_discarded: stats.examples_discarded,
        examples_quarantined: stats.examples_quarantined,
        examples_taken_back: stats.examples_taken_back,
        examples_failed: stats.examples_failed,
        examples_kept: stats.examples_kept,
        updates_accepted: stats.updates_accepted,
        updates_rolled_back: stats.updates_rolled_back,
        updates_failed: stats.updates_failed,
        last_update_ms: stats.last_update.map(unix_millis),
        last_error: stats.last_error,
        models,
    }
}

/// A short JSON rendering of an output for notes (at most about 200 bytes).
fn brief(target: &Target) -> String {
    let mut text = target.to_json().to_string();
    if text.len() > 200 {
        let cut = (0..=200).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        tch::Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

pub(crate) fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::EmptyName { field });
    }
    if value.len() > max {
        return Err(ValidationError::NameTooLong {
            field,
            len: value.len(),
            max,
        });
    }
    // Names become folder names: no path separators, and no leading dot ("..").
    if value.starts_with('.')
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(ValidationError::InvalidName {
            field,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// A target no longer than `max` bytes (the inputs' limit: a target is
/// stored and sent as often as its input).
fn check_target(field: &'static str, target: &Target, max: usize) -> Result<(), ValidationError> {
    let len = match target {
        Target::Label(label) => label.len(),
        Target::Score(_) => 0,
        Target::Tags(tags) => tags.iter().map(|t| t.len() + 1).sum(),
        Target::Json(value) => serde_json::to_vec(value).map_or(usize::MAX, |v| v.len()),
    };
    match len > max {
        true => Err(ValidationError::TargetTooLong { field, len, max }),
        false => Ok(()),
    }
}

pub(crate) fn check_input(value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::EmptyInput);
    }
    check_text("input_text", value, max)
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.contains('\0') {
        return Err(ValidationError::NulCharacter { field });
    }
    if value.len() > max {
        return Err(match field {
            "input_text" => ValidationError::InputTooLong { len: value.len(), max },
            _ => ValidationError::NameTooLong {
                field,
                len: value.len(),
                max,
            },
        });
    }
    Ok(())
}

/// Opens the configured store, starts its writer (which replays an earlier
/// run's spool first) and reads back what a restart needs.
fn open_store(config: &Config) -> Result<(Option<StoreWriter>, Option<Recovered>)> {
    if !config.store.enabled {
        return Ok((None, None));
    }
    let store = store::open(config)?;
    let writer = StoreWriter::start(Arc::clone(&store), config.data_dir.join("spool"), config.store.clone())?;
    let recovered = store.recover(&RecoveryLimits {
        buffered_per_agent: config.cluster.is_none().then_some(config.max_buffer_size),
        held_out_per_task: config.performance_window,
        kept_per_agent: config.max_buffer_size,
        history: HISTORY_IN_MEMORY,
        pending_per_task: config.max_pending_review,
    })?;
    Ok((Some(writer), Some(recovered)))
}
