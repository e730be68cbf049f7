//! Start-up: what the store and the checkpoint folders hold comes back
//! into the agents (buffers, held-out windows, replay memories, models).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::validate::check_name;
use super::Coordinator;
use crate::agent::{task_of_kind, TaskState};
use crate::buffer::Insert;
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::live::LiveModel;
use crate::models::restore_model;
use crate::store::{ExampleState, Recovered, StoreOp};

impl Coordinator {
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

    /// The update counters of an earlier run: kept and rolled back per agent
    /// (`updates`), and when each agent's last kept update finished, from
    /// the newest records in `history` (an agent whose last kept update is
    /// older than those shows none until its next one).
    fn restore_update_counts(&self, history: &[crate::base::ModelPerformance], updates: &[(String, u64, u64)]) {
        let mut last_kept: std::collections::BTreeMap<&str, u64> = Default::default();
        for record in history.iter().filter(|r| !r.rollback_triggered) {
            let at = last_kept.entry(&record.agent_name).or_default();
            *at = (*at).max(record.update_timestamp_ms);
        }
        for (agent_name, kept, rolled_back) in updates {
            let agent = self.agent_or_create(agent_name);
            let mut stats = agent.stats.lock();
            stats.updates_accepted += kept;
            stats.updates_rolled_back += rolled_back;
            stats.last_update_ms = last_kept.get(agent_name.as_str()).copied();
        }
    }

    /// Puts back what the store kept from an earlier run: ids continue after
    /// the highest stored, buffered examples return to their buffers, held-out
    /// examples to their windows, kept ones to the export queue, and the
    /// history. Counted as received, so the status counters add up.
    pub(super) fn restore(&self, recovered: Recovered) {
        let shared = &self.shared;
        shared.ids.continue_from(recovered.next_id);
        self.restore_update_counts(&recovered.history, &recovered.updates);
        shared.history.lock().extend(recovered.history);
        shared.history_total.store(recovered.history_total, Ordering::Release);
        self.restore_tasks(recovered.tasks);
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
                ExampleState::Quarantined | ExampleState::QuarantineReviewed => &mut stats.examples_quarantined,
                ExampleState::Failed => &mut stats.examples_failed,
                // All of them: only the newest `max_buffer_size` come back
                // into memory (below), and counting those dropped the rest.
                ExampleState::Kept => &mut stats.examples_kept,
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
            // Counted with the settled rows above.
            if task_of_kind(&mut agent.tasks.lock(), &agent.name, &example.task_type, kind, window).is_ok() {
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

    /// Loads the newest loadable checkpoint of every (agent, task) found in
    /// `data_dir/models` and the configured model folders. A file that cannot
    /// be read is skipped (logged) in favour of the version before it.
    pub(super) fn load_checkpoints(&self) {
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
                    let ewc = ckpt.ewc.to_device(self.shared.device)?;
                    let live = Arc::new(LiveModel::restored(model, version, newest, ewc));
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
}
