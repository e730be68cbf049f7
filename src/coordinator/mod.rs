//! The coordinator: validates and routes what agents hand in, decides when an
//! agent trains, serves predictions and reports the status. Training itself
//! runs on the threads of [`crate::update`]; no call here waits for it.
//!
//! One `impl Coordinator` block per concern, each in its own file:
//! start-up, threads and shutdown here; `intake` (examples, feedback and
//! corrections in, the update they trigger), `serve` (predictions),
//! `review` (the review queues), `manage` (registering models, rollback,
//! weights, export), `checkpoints` (the versions kept), `report` (status, history, metrics), `tasks` (what a task learns, JSON
//! targets read by it), `recovery` (what
//! the store and the checkpoints bring back at start-up) and `validate`
//! (the input checks).

mod checkpoints;
mod intake;
mod manage;
mod recovery;
mod report;
mod review;
mod serve;
mod tasks;
mod validate;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::agent::AgentState;
use crate::base::{ExampleId, Target};
use crate::config::Config;
use crate::data_dir_lock::DataDirLock;
use crate::error::{Error, Result};
use crate::runtime::{Shared, HISTORY_IN_MEMORY};
use crate::store::{self, ExampleStore, Recovered, RecoveryLimits, StoreWriter};
use crate::update;

pub use checkpoints::CheckpointInfo;

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
    /// The answer is not known and the prediction was uncertain, but the
    /// task's review queue holds `max_pending_review` more useful ones: it
    /// was not kept (not an example, never trained).
    NotKept {
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
    /// (confidence below `predict_feedback_threshold`): its review id.
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
    /// The process that started it: a forked copy of it has none of its
    /// threads, and its locks may be held by threads that are not there.
    started_in: u32,
    /// Held while a call hands in a target written as JSON for a task whose
    /// labels have no form yet ([`Coordinator::first_labels_guard`]).
    first_labels: Mutex<()>,
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
    /// check. Fails when the store cannot be opened, when `device` is `cuda`
    /// and no CUDA device is visible, or when another running coordinator
    /// holds `data_dir` ([`Error::DataDirInUse`]).
    pub fn new(config: Config) -> Result<Coordinator> {
        config.validate()?;
        let config = config.with_absolute_paths().map_err(|e| crate::Error::Io {
            path: "the working directory".into(),
            message: e.to_string(),
        })?;
        let device = config.device.resolve()?;
        config.check_model_files()?;
        let data_dir_lock = DataDirLock::acquire(&config.data_dir)?;
        let (store, recovered) = open_store(&config)?;
        let cluster = match config.cluster {
            Some(_) => Some(Arc::new(crate::cluster::Cluster::open(
                config.cluster.as_ref(),
                config.database.as_ref(),
                config.store.connect_timeout_ms,
                config.checkpoints_kept,
            )?)),
            None => None,
        };
        let (job_tx, job_rx) = crossbeam_channel::unbounded();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let workers = config.max_concurrent_updates;
        let ids = match (&store, &cluster) {
            (Some(_), None) => crate::ids::LocalIds::durable(&config.data_dir)?,
            _ => crate::ids::LocalIds::in_memory(),
        };
        let shared = Arc::new(Shared::new(
            config,
            device,
            job_tx,
            job_rx.clone(),
            store,
            cluster.clone(),
            ids,
        ));
        let coordinator = Coordinator {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
            stop_ticker: Mutex::new(Some(stop_tx)),
            data_dir_lock: Mutex::new(Some(data_dir_lock)),
            started_in: std::process::id(),
            first_labels: Mutex::new(()),
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
            crate::follow::publish_earlier_lineages(&shared, &cluster)?;
            let mut client = cluster.connect()?;
            crate::follow::refresh(&shared, &cluster, &mut client)?;
            drop(client);
            let listener_shared = Arc::clone(&shared);
            coordinator.spawn("onthefly-cluster".into(), move || {
                crate::follow::listener_loop(listener_shared, cluster, listener_stop)
            })?;
        }
        tracing::info!(device = ?device, workers, "onthefly coordinator started");
        Ok(coordinator)
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

    /// Returns once every example, state change and update record accepted
    /// before the call is durable: in the database, or in the fsynced spool
    /// that the next start replays (see [`crate::store`] for the promise).
    /// Without persistence it returns at once.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.ensure_running()?;
        match &self.shared.store {
            Some(store) => Ok(store.flush(timeout)?),
            None => Ok(()),
        }
    }

    /// The store, for reading back what was persisted (an export, an audit);
    /// `None` when persistence is off.
    pub fn store(&self) -> Option<&Arc<dyn ExampleStore>> {
        self.shared.store.as_ref().map(StoreWriter::store)
    }

    /// Waits until no update is queued or running and no example a full
    /// buffer evicted waits in the store to be taken back and trained (a
    /// fast caller's whole stream is trained when it returns), at most
    /// `timeout`. Returns whether it became idle (false also while the store
    /// cannot give the evicted examples back). Every update done by then
    /// serves (its version and checkpoint are in place); a worker that ran
    /// one may still be bringing its own copy of the model level with the
    /// new version, which the next update of that task waits for.
    ///
    /// A queued update that no worker has taken yet is run by the waiting
    /// caller itself, exactly as a worker runs it, rather than the caller
    /// sleeping while a worker wakes up to run it: the update is done as
    /// soon, and the two hand-offs between threads it saves were a seventh
    /// of an update of one news article (a fifth of one of a short text).
    /// Only while fewer than `max_concurrent_updates` run: the bound holds
    /// for updates run by callers too.
    pub fn wait_for_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.run_queued_updates(deadline);
            {
                let mut in_flight = self.shared.in_flight.lock();
                while *in_flight > 0 {
                    if self.shared.idle.wait_until(&mut in_flight, deadline).timed_out() {
                        return false;
                    }
                }
            }
            // No update runs, but an agent may still have evicted examples
            // the trainer can take back (the last attempt found the store
            // busy or away): idle only once they are taken back too.
            let waiting = self.agents_with_evicted_examples();
            if waiting.is_empty() {
                return true;
            }
            if Instant::now() >= deadline || self.shared.is_shutting_down() {
                return false;
            }
            // A short pause: the store that refused them may need a moment.
            std::thread::sleep(Duration::from_millis(50));
            for agent in &waiting {
                self.shared.schedule(agent);
            }
        }
    }

    /// Runs queued updates on this thread, as a worker would, until none is
    /// queued or `deadline` passed (see [`Coordinator::wait_for_idle`]).
    fn run_queued_updates(&self, deadline: Instant) {
        while Instant::now() < deadline {
            // Only within `max_concurrent_updates`: with every permit held
            // (the workers busy), the caller waits instead.
            let Some(_slot) = self.shared.update_slots.try_acquire() else {
                return;
            };
            match self.shared.queued.try_recv() {
                Ok(agent) => crate::update::run_job(&self.shared, agent),
                Err(_) => return,
            }
        }
    }

    /// The agents whose evicted examples may wait in the store to be taken
    /// back (see `catch_up`); none without a store.
    fn agents_with_evicted_examples(&self) -> Vec<Arc<AgentState>> {
        if self.shared.store.is_none() {
            return Vec::new();
        }
        self.shared
            .agents_snapshot()
            .into_iter()
            .filter(|agent| agent.may_reclaim.load(Ordering::Acquire) && agent.stats.lock().examples_evicted > 0)
            .collect()
    }

    /// Stops taking input, lets a running update finish, and joins every
    /// background thread. Queued updates that have not started are dropped
    /// (their examples stay buffered). Calling it again does nothing. It waits
    /// for the running update, however long a user's model takes.
    pub fn shutdown(&self) {
        // A forked copy has nothing of its own to stop: the threads, the
        // store writer and the lock are the parent's.
        if self.is_forked_copy() {
            return;
        }
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
        // A caller waiting for idle may be running an update itself: it is
        // done (its records handed to the store) before the store stops.
        let mut in_flight = self.shared.in_flight.lock();
        while *in_flight > 0 {
            self.shared.idle.wait(&mut in_flight);
        }
        drop(in_flight);
        // No update runs now, so the live models are the serving versions.
        crate::update::compact_checkpoints(&self.shared);
        // Last: the threads above may still have persisted something.
        if let Some(store) = &self.shared.store {
            store.shutdown();
        }
        // Everything of this instance is on disk: another may start here.
        self.data_dir_lock.lock().take();
    }

    /// [`Coordinator::shutdown`], then an error when anything accepted was
    /// lost on the way out: operations the store could neither write nor
    /// spool (a failing database and a full disk) are dropped at shutdown,
    /// and a caller must hear of it ([`crate::store::StoreError::Lost`]).
    /// The C ABI's and the Python package's shutdowns report through it.
    pub fn shutdown_checked(&self) -> Result<()> {
        self.shutdown();
        match self.shared.store.as_ref().and_then(|store| store.lost()) {
            Some(lost) => Err(lost.into()),
            None => Ok(()),
        }
    }

    /// Whether this is a copy in a process forked from the one that started
    /// it (Python's default `multiprocessing` start method on Linux).
    pub fn is_forked_copy(&self) -> bool {
        std::process::id() != self.started_in
    }

    /// [`Error::Forked`] in a forked copy (see [`Coordinator::is_forked_copy`]).
    pub fn check_process(&self) -> Result<()> {
        let this = std::process::id();
        if this == self.started_in {
            Ok(())
        } else {
            Err(Error::Forked {
                started_in: self.started_in,
                this,
            })
        }
    }

    /// Whether [`Coordinator::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    pub(crate) fn ensure_running(&self) -> Result<()> {
        self.check_process()?;
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
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if self.is_forked_copy() {
            // Dropping the shared state would join the store writer's
            // thread, which does not exist in this process: keep it.
            std::mem::forget(Arc::clone(&self.shared));
            return;
        }
        self.shutdown();
    }
}

/// Opens the configured store, starts its writer (which replays an earlier
/// run's spool first) and reads back what a restart needs.
fn open_store(config: &Config) -> Result<(Option<StoreWriter>, Option<Recovered>)> {
    if !config.store.enabled {
        return Ok((None, None));
    }
    let store = store::open(config.database.as_ref(), &config.store, &config.data_dir)?;
    let writer = StoreWriter::start(Arc::clone(&store), config.data_dir.join("spool"), config.store.clone())?;
    let recovered = store.recover(&RecoveryLimits {
        buffered_per_agent: config.cluster.is_none().then_some(config.max_buffer_size),
        held_out_per_task: config.cluster.is_none().then_some(config.performance_window),
        kept_per_agent: config.max_buffer_size,
        history: HISTORY_IN_MEMORY,
        pending_per_task: config.max_pending_review,
    })?;
    Ok((Some(writer), Some(recovered)))
}
