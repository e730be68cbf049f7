//! Stage 4, commit: where an update's outcome goes. One trait, [`Commit`],
//! two implementations: [`LocalCommit`] (the store writer and local
//! checkpoints) and [`ClusterCommit`] (published with the claimed examples
//! in one database transaction before the version serves).

use std::path::Path;
use std::time::SystemTime;

use crate::agent::AgentState;
use crate::base::ModelError;
use crate::base::{unix_millis, ExampleId, ModelPerformance, TrainingExample};
use crate::checkpoint::{self, CheckpointError, CheckpointMeta};
use crate::cluster::{Cluster, Publication, TaskSession};
use crate::ewc::EwcState;
use crate::follow::write_atomically;
use crate::live::LiveModel;
use crate::models::AgentModel;
use crate::optim::Touched;
use crate::replay::ReplayChange;
use crate::runtime::Shared;
use crate::store::{CheckpointRecord, ExampleState, StoreOp};

/// An accepted version, as the commit sees it.
pub(super) struct Accepted<'a> {
    pub agent: &'a AgentState,
    pub task: &'a str,
    pub version: u64,
    /// The EWC state consolidated with it.
    pub ewc: &'a EwcState,
    /// What changed since the version before, when the new version follows
    /// the one that served (the checkpoint may store only that).
    pub changed: Option<&'a Touched>,
    pub record: &'a ModelPerformance,
    /// What the checkpoint's row says about it.
    pub metrics: &'a serde_json::Value,
    /// How the task's replay memory changes with it.
    pub replay: &'a ReplayChange,
}

/// Where the outcome of an update goes. The pipeline ([`super::task`])
/// calls these in this order and knows nothing else of the mode.
pub(super) trait Commit {
    /// The number the version gets if it is accepted.
    fn next_version(&mut self, live: &LiveModel) -> u64;
    /// Whether [`Commit::before_serving`] can fail after the EWC state was
    /// consolidated (the pipeline then keeps the state before, to restore).
    fn may_refuse(&self) -> bool;
    /// A rolled-back update: the live model stays.
    fn rolled_back(&mut self, record: &ModelPerformance) -> Result<(), ModelError>;
    /// Makes an accepted version durable before it serves; an error leaves
    /// the live model as it is.
    fn before_serving(&mut self, accepted: &Accepted<'_>, model: &dyn AgentModel) -> Result<(), ModelError>;
    /// Whether [`Commit::after_serving`] reads the new version's weights
    /// (the trainer's copy is then brought level with them first).
    fn reads_copy_after_serving(&self) -> bool;
    /// After the version serves (`model` holds its weights, if a copy was
    /// brought level with them).
    fn after_serving(&mut self, accepted: &Accepted<'_>, model: Option<&dyn AgentModel>);
    /// The examples of an accepted update are trained; its record.
    fn settled(&mut self, record: ModelPerformance, ids: &[ExampleId]);
    /// The record of a rolled-back update whose examples are still to be
    /// isolated (their state does not change yet).
    fn recorded(&mut self, record: ModelPerformance);
    /// Quarantines examples found harmful, with the rolled-back update
    /// that last trained them.
    fn quarantine(&mut self, ids: &[ExampleId], update_id: u64) -> Result<(), ModelError>;
    /// Claims `examples` again for a further update of part of a batch
    /// (several instances); returns those still to be trained.
    fn reclaim(&mut self, examples: Vec<TrainingExample>) -> Result<Vec<TrainingExample>, ModelError>;
}

/// One instance: the store writer records everything after the version
/// serves, and the checkpoint is written from the trainer's copy.
pub(super) struct LocalCommit<'a> {
    pub shared: &'a Shared,
}

impl Commit for LocalCommit<'_> {
    fn next_version(&mut self, live: &LiveModel) -> u64 {
        live.latest_version() + 1
    }

    fn may_refuse(&self) -> bool {
        false
    }

    fn rolled_back(&mut self, _record: &ModelPerformance) -> Result<(), ModelError> {
        Ok(())
    }

    fn before_serving(&mut self, _accepted: &Accepted<'_>, _model: &dyn AgentModel) -> Result<(), ModelError> {
        Ok(())
    }

    fn reads_copy_after_serving(&self) -> bool {
        // The checkpoint of the new version is written from it.
        self.shared.config.checkpoints_kept > 0
    }

    fn after_serving(&mut self, a: &Accepted<'_>, model: Option<&dyn AgentModel>) {
        let shared = self.shared;
        if !a.replay.is_empty() {
            shared.persist(StoreOp::Replay {
                added: a.replay.added.clone(),
                removed: a.replay.removed.clone(),
            });
        }
        if shared.config.checkpoints_kept == 0 {
            return;
        }
        let Some(model) = model else { return };
        match save_checkpoint(shared, a.agent, a.task, a.version, model, a.ewc, a.changed, true) {
            Ok(path) => shared.persist(StoreOp::Checkpoint(CheckpointRecord {
                agent_name: a.agent.name.clone(),
                task_type: a.task.to_string(),
                version: a.version,
                path: path.display().to_string(),
                accepted: true,
                metrics: a.metrics.clone(),
                created_ms: unix_millis(SystemTime::now()),
            })),
            Err(e) => {
                let (task, version) = (a.task, a.version);
                tracing::error!(agent = %a.agent.name, task, version, error = %e, "checkpoint not written");
                a.agent.note_error(format!(
                    "checkpoint of version {version} of task {task:?} not written: {e}"
                ));
            }
        }
    }

    fn settled(&mut self, record: ModelPerformance, ids: &[ExampleId]) {
        self.shared.persist(StoreOp::SetState {
            ids: ids.to_vec(),
            state: ExampleState::Trained,
            update_id: Some(record.update_id),
        });
        self.shared.record_performance(record);
    }

    fn recorded(&mut self, record: ModelPerformance) {
        self.shared.record_performance(record);
    }

    fn quarantine(&mut self, ids: &[ExampleId], update_id: u64) -> Result<(), ModelError> {
        self.shared.persist(StoreOp::SetState {
            ids: ids.to_vec(),
            state: ExampleState::Quarantined,
            update_id: Some(update_id),
        });
        Ok(())
    }

    fn reclaim(&mut self, examples: Vec<TrainingExample>) -> Result<Vec<TrainingExample>, ModelError> {
        Ok(examples)
    }
}

/// Several instances: the outcome is published to the others through the
/// training session that claimed the examples, with them, in one
/// transaction; an accepted version's checkpoint is written and committed
/// before this instance serves it.
pub(super) struct ClusterCommit<'a> {
    pub shared: &'a Shared,
    pub cluster: &'a Cluster,
    pub session: &'a mut TaskSession,
    pub agent: &'a str,
    pub task: &'a str,
    pub ids: &'a [ExampleId],
}

impl Commit for ClusterCommit<'_> {
    fn next_version(&mut self, _live: &LiveModel) -> u64 {
        // The database numbers the lineage.
        self.session.next_version()
    }

    fn may_refuse(&self) -> bool {
        true
    }

    fn rolled_back(&mut self, record: &ModelPerformance) -> Result<(), ModelError> {
        self.publish(record, None, &ReplayChange::default())
    }

    fn before_serving(&mut self, a: &Accepted<'_>, model: &dyn AgentModel) -> Result<(), ModelError> {
        let shared = self.shared;
        let dir = shared.config.model_dir(&a.agent.name).join(a.task);
        // Not yet the serving version on disk: a crash before the commit
        // must not leave a restart serving a version nobody else has.
        let published = save_checkpoint(shared, a.agent, a.task, a.version, model, a.ewc, a.changed, false)
            .map_err(|e| ModelError::Publish(format!("checkpoint not written: {e}")))
            .and_then(|path| self.publish(a.record, Some((&path, a.metrics.clone())), a.replay));
        if let Err(e) = published {
            let _ = std::fs::remove_file(checkpoint::path_of(&dir, a.version));
            let _ = std::fs::remove_file(checkpoint::delta_path_of(&dir, a.version));
            return Err(e);
        }
        let served = checkpoint::set_current(&dir, a.version)
            .and_then(|()| checkpoint::prune(&dir, shared.config.checkpoints_kept));
        if let Err(e) = served {
            let task = a.task;
            tracing::warn!(agent = %a.agent.name, task, error = %e, "published checkpoint not marked as serving locally");
        }
        Ok(())
    }

    fn reads_copy_after_serving(&self) -> bool {
        false // Published with its checkpoint before it serves.
    }

    fn after_serving(&mut self, _accepted: &Accepted<'_>, _model: Option<&dyn AgentModel>) {}

    fn settled(&mut self, record: ModelPerformance, _ids: &[ExampleId]) {
        // Published with the claim already.
        self.shared.remember_performance(record);
    }

    fn recorded(&mut self, record: ModelPerformance) {
        self.shared.remember_performance(record);
    }

    fn quarantine(&mut self, ids: &[ExampleId], update_id: u64) -> Result<(), ModelError> {
        self.session
            .mark_quarantined(ids, update_id)
            .map_err(|e| ModelError::Publish(format!("examples not quarantined: {e}")))
    }

    fn reclaim(&mut self, examples: Vec<TrainingExample>) -> Result<Vec<TrainingExample>, ModelError> {
        let ids: Vec<ExampleId> = examples.iter().map(|e| e.id).collect();
        let Some(kind) = examples.first().map(|e| e.expected_output.kind()) else {
            return Ok(examples);
        };
        self.session
            .claim(self.agent, self.task, kind, Some(&ids), ids.len())
            .map_err(|e| ModelError::Publish(format!("claim of examples failed: {e}")))
    }
}

impl ClusterCommit<'_> {
    /// Commits the outcome: the examples' state, the record, and for an
    /// accepted version its checkpoint (bytes in the database, or copied to
    /// the shared folder), announced on commit.
    fn publish(
        &mut self,
        record: &ModelPerformance,
        checkpoint: Option<(&Path, serde_json::Value)>,
        replay: &ReplayChange,
    ) -> Result<(), ModelError> {
        let failed = |e: &dyn std::fmt::Display| ModelError::Publish(e.to_string());
        let shared_folder =
            (self.cluster.config.shared_checkpoint_dir.as_ref()).map(|dir| dir.join(self.agent).join(self.task));
        let checkpoint = match checkpoint {
            None => None,
            Some((path, metrics)) => {
                let bytes = std::fs::read(path).map_err(|e| failed(&e))?;
                let (stored_path, data) = match &shared_folder {
                    None => (path.display().to_string(), Some(bytes)),
                    Some(folder) => {
                        let target = crate::follow::publication_path(folder, path, record.update_id);
                        write_atomically(folder, &target, &bytes).map_err(|e| failed(&e))?;
                        (target.display().to_string(), None)
                    }
                };
                let record = CheckpointRecord {
                    agent_name: self.agent.to_string(),
                    task_type: self.task.to_string(),
                    version: record.model_version,
                    path: stored_path,
                    accepted: true,
                    metrics,
                    created_ms: unix_millis(SystemTime::now()),
                };
                Some((record, data))
            }
        };
        let publication = Publication {
            ids: self.ids,
            // Rolled back: buffered again, for the pipeline to isolate the
            // harmful part (it holds the task's training lock meanwhile).
            state: if record.rollback_triggered {
                ExampleState::Buffered
            } else {
                ExampleState::Trained
            },
            record,
            checkpoint,
            replay,
        };
        match self.session.publish(self.cluster, &publication) {
            Ok(kept_from) => {
                if let Some(folder) = &shared_folder {
                    crate::follow::prune_below(folder, kept_from);
                }
                Ok(())
            }
            // The file stays: a commit whose reply was lost may have
            // published it. Unpublished, it is pruned with its version.
            Err(e) => Err(failed(&e)),
        }
    }
}

/// Writes the checkpoint of an accepted version (with `serve`, also records
/// it as the serving version and prunes old ones): a delta of the version
/// before when `changed` says what changed since it, that version's file is
/// there and the chain of deltas is shorter than `checkpoint_full_every`;
/// otherwise a full one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn save_checkpoint(
    shared: &Shared,
    agent: &AgentState,
    task: &str,
    version: u64,
    model: &dyn AgentModel,
    ewc: &EwcState,
    changed: Option<&Touched>,
    serve: bool,
) -> Result<std::path::PathBuf, CheckpointError> {
    let meta = meta_of(agent, task, version, model, ewc);
    let dir = shared.config.model_dir(&agent.name).join(task);
    let full_every = shared.config.checkpoint_full_every;
    let changed = changed.filter(|_| {
        version > 1
            && checkpoint::file_of(&dir, version - 1).is_some()
            && checkpoint::deltas_before(&dir, version - 1) + 1 < full_every
    });
    match serve {
        true => checkpoint::save_changes(&dir, model, ewc, &meta, shared.config.checkpoints_kept, changed),
        false => checkpoint::write_changes(&dir, model, ewc, &meta, changed),
    }
}

/// What the checkpoint of `version` says about it, written now.
fn meta_of(agent: &AgentState, task: &str, version: u64, model: &dyn AgentModel, ewc: &EwcState) -> CheckpointMeta {
    CheckpointMeta {
        version,
        agent_name: agent.name.clone(),
        task_type: task.to_string(),
        model_kind: model.kind(),
        target_kind: model.target_kind(),
        model: model.metadata(),
        ewc_consolidations: ewc.consolidations(),
        created_ms: unix_millis(SystemTime::now()),
        base: None,
        packed: Default::default(),
        checksummed: false,
    }
}

/// At a clean shutdown of a single instance, writes the serving version of
/// every task in full where its file is a delta, so the next start loads
/// one file rather than a chain (a delta costs its bytes on every update; a
/// full file once per process). With several instances the published
/// files are shared history and stay as they are.
pub(crate) fn compact_checkpoints(shared: &Shared) {
    if shared.cluster.is_some() || shared.config.checkpoints_kept == 0 {
        return;
    }
    let agents: Vec<_> = shared.agents.read().values().cloned().collect();
    for agent in agents {
        let lives: Vec<_> = agent
            .tasks
            .lock()
            .iter()
            .filter_map(|(task, state)| Some((task.clone(), std::sync::Arc::clone(state.model.as_ref()?))))
            .collect();
        for (task, live) in lives {
            let dir = shared.config.model_dir(&agent.name).join(&task);
            let ewc = live.ewc.lock();
            let model = live.serving();
            let version = live.version();
            if checkpoint::current(&dir) != Some(version)
                || !checkpoint::file_of(&dir, version).is_some_and(|p| checkpoint::is_delta(&p))
            {
                continue;
            }
            let meta = meta_of(&agent, &task, version, model.as_ref(), &ewc);
            if let Err(e) = checkpoint::write_full_beside(&dir, model.as_ref(), &ewc, &meta) {
                tracing::warn!(agent = %agent.name, task, version, error = %e, "serving version not written in full");
            }
        }
    }
}
