//! Stage 1, snapshot: the task's live model (created on first use), the
//! judging examples, and the trainer's copy of the live weights, brought
//! back to them after an update that is not kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::agent::{AgentState, LiveModel, TaskState};
use crate::error::ModelError;
use crate::example::{TargetKind, TrainingExample};
use crate::features::stable_hash;
use crate::models::{create_model, AgentModel, MiniLmHead, ModelKind, TorchScriptModel};
use crate::optim::Touched;
use crate::runtime::Shared;

/// The model a new task trains: a configured TorchScript module, else the
/// configured model kind, else the built-in model of its target kind.
pub(super) fn build_model(
    shared: &Shared,
    agent: &str,
    task: &str,
    target_kind: TargetKind,
    seed: u64,
) -> Result<Box<dyn AgentModel>, ModelError> {
    let key = format!("{agent}/{task}");
    let config = &shared.config;
    if let Some(spec) = config.torchscript.get(&key) {
        if spec.target_kind != target_kind {
            return Err(ModelError::NotSupported(format!(
                "the TorchScript model configured for {key} predicts {} but the task's targets are {target_kind}",
                spec.target_kind
            )));
        }
        return Ok(Box::new(TorchScriptModel::load(spec.clone(), shared.device)?));
    }
    match config.model_kinds.get(&key) {
        Some(ModelKind::MiniLmHead) => {
            let dir = config
                .minilm_dir
                .clone()
                .ok_or_else(|| ModelError::NotSupported("minilm_dir is not configured".into()))?;
            let encoder = shared.minilm()?;
            let t = &config.text_model;
            Ok(Box::new(MiniLmHead::new(
                encoder,
                dir,
                target_kind,
                t.learning_rate,
                t.minibatch_size,
            )?))
        }
        Some(kind) if ModelKind::for_target(target_kind) != Some(*kind) => Err(ModelError::NotSupported(format!(
            "model kind {} is configured for {key}, but it cannot learn {target_kind} targets",
            kind.name()
        ))),
        _ => create_model(target_kind, &config.text_model, shared.device, seed),
    }
}

/// The live model (created on first use) and a snapshot of the held-out
/// window of a task; `None` when no built-in model learns its targets.
pub(super) fn prepare_task(
    shared: &Shared,
    agent: &AgentState,
    task: &str,
) -> Option<(Arc<LiveModel>, Vec<TrainingExample>)> {
    let (target_kind, existing) = {
        let tasks = agent.tasks.lock();
        let state = tasks.get(task)?;
        (state.target_kind, state.model.clone())
    };
    let live = match existing {
        Some(live) => live,
        None => {
            ModelKind::for_target(target_kind)?;
            // Built outside the lock: initialising the weights takes a while.
            let seed = shared.config.text_model.seed ^ stable_hash(format!("{}/{task}", agent.name).as_bytes());
            let created = build_model(shared, &agent.name, task, target_kind, seed);
            let model = match created {
                Ok(m) => m,
                Err(e) => {
                    agent.record_error(format!("could not create a model for task {task:?}: {e}"));
                    return None;
                }
            };
            let mut tasks = agent.tasks.lock();
            let state = tasks
                .entry(task.to_string())
                .or_insert_with(|| TaskState::new(target_kind, shared.config.performance_window));
            let dir = shared.config.model_dir(&agent.name).join(task);
            state
                .model
                .get_or_insert_with(|| Arc::new(LiveModel::new(model).numbered_after(&dir)))
                .clone()
        }
    };
    let held_out = agent
        .tasks
        .lock()
        .get(task)
        .map(TaskState::evaluation_examples)
        .unwrap_or_default();
    Some((live, held_out))
}

/// The trainer's copy of a live model, and what it still has to catch up
/// with. An update's last step, bringing the copy level with the live
/// model (the rows it changed, written into the other copy), is left to
/// the worker once the new version serves and the update is over for the
/// caller ([`catch_up_trainer_copies`]): a caller waiting for the update
/// goes on while the worker writes, and the next update catches up first
/// if the worker has not.
pub(crate) struct TrainerCopy {
    model: Box<dyn AgentModel>,
    behind: Option<Behind>,
}

/// What a trainer's copy lacks against the live model.
enum Behind {
    /// An accepted update, trained on the other copy (now serving): its
    /// rows are written from the update's record, or copied from the live
    /// model.
    Accepted(Touched),
    /// A rolled-back update this copy trained: its rows (all of it, without
    /// a record, or after a change of shapes) go back to the live model's.
    RolledBack {
        touched: Option<Touched>,
        shapes: BTreeMap<String, Vec<i64>>,
    },
}

impl TrainerCopy {
    /// A copy equal to the live model.
    pub(crate) fn ready(model: Box<dyn AgentModel>) -> TrainerCopy {
        TrainerCopy { model, behind: None }
    }

    /// The old live model after an accepted update, still without its rows.
    pub(super) fn after_accepted(model: Box<dyn AgentModel>, touched: Touched) -> TrainerCopy {
        TrainerCopy {
            model,
            behind: Some(Behind::Accepted(touched)),
        }
    }

    /// The copy that trained a rolled-back update (`shapes`: its variables'
    /// shapes before).
    pub(super) fn after_rollback(
        model: Box<dyn AgentModel>,
        touched: Option<Touched>,
        shapes: BTreeMap<String, Vec<i64>>,
    ) -> TrainerCopy {
        TrainerCopy {
            model,
            behind: Some(Behind::RolledBack { touched, shapes }),
        }
    }

    /// The copy level with the live model (called under the lock of
    /// `live.shadow`, so the live model is the version the copy is behind):
    /// `None` when it could not be brought level, and the next update
    /// copies the live model whole.
    pub(super) fn caught_up(self, live: &LiveModel) -> Option<Box<dyn AgentModel>> {
        let TrainerCopy { model, behind } = self;
        let level = match behind {
            None => return Some(model),
            Some(Behind::Accepted(touched)) => install(live, model, &touched),
            Some(Behind::RolledBack { touched, shapes }) => resync(live, model, touched.as_ref(), &shapes)
                .map_err(|e| tracing::warn!(error = %e, "trainer's copy not brought back after a rollback"))
                .ok()
                .flatten(),
        };
        if level.is_none() {
            // Not an error of the update: it costs the next one a whole copy.
            tracing::warn!("trainer's copy dropped; the next update copies the live model");
        }
        level
    }
}

/// Brings every trainer's copy of `agent` that is an update behind level
/// with its live model.
pub(crate) fn catch_up_trainer_copies(agent: &AgentState) {
    let lives: Vec<Arc<LiveModel>> = agent.tasks.lock().values().filter_map(|t| t.model.clone()).collect();
    for live in lives {
        let mut slot = live.shadow.lock();
        if slot.as_ref().is_some_and(|copy| copy.behind.is_some()) {
            *slot = slot
                .take()
                .and_then(|copy| copy.caught_up(&live))
                .map(TrainerCopy::ready);
        }
    }
}

/// The old live model brought level with the new one after an accepted
/// update: the rows it changed written from the values the pass recorded,
/// else read from the serving model under its lock.
pub(super) fn install(live: &LiveModel, old: Box<dyn AgentModel>, touched: &Touched) -> Option<Box<dyn AgentModel>> {
    match touched.write_recorded(old.var_store()) {
        Ok(true) => Some(old),
        Ok(false) => {
            let serving = live.model.lock();
            touched
                .copy_rows(serving.var_store(), old.var_store())
                .ok()
                .filter(|&copied| copied)
                .map(|_| old)
        }
        Err(_) => None,
    }
}

/// The shape of every variable, by name.
pub(super) fn shapes(vs: &tch::nn::VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables().into_iter().map(|(name, t)| (name, t.size())).collect()
}

/// The trainer's copy brought back to the (unchanged) live model after a
/// rolled-back or unpublished update: the touched rows copied back, or a
/// fresh whole copy where the update changed shapes or touched everything.
pub(super) fn resync(
    live: &LiveModel,
    shadow: Box<dyn AgentModel>,
    touched: Option<&Touched>,
    shapes_before: &BTreeMap<String, Vec<i64>>,
) -> Result<Option<Box<dyn AgentModel>>, ModelError> {
    let serving = live.model.lock();
    if let Some(touched) = touched {
        if shapes(shadow.var_store()) == *shapes_before && touched.copy_rows(serving.var_store(), shadow.var_store())? {
            return Ok(Some(shadow));
        }
    }
    Ok(Some(serving.try_clone()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TextModelConfig;
    use crate::example::{Target, TrainingExample};
    use crate::models::TextClassifier;
    use crate::update::train::train_update;

    fn config() -> TextModelConfig {
        TextModelConfig {
            hash_buckets: 1 << 12,
            ..TextModelConfig::default()
        }
    }

    fn examples(from: u64, labels: &[&str]) -> Vec<TrainingExample> {
        (from..from + 12)
            .map(|i| {
                let label = labels[i as usize % labels.len()];
                let text = format!("article {i} about {label} and the word w{}", i % 5);
                TrainingExample::new(i, "scout", "news", text, Target::Label(label.into()))
            })
            .collect()
    }

    /// Every variable of the two models, bit for bit.
    fn same_weights(a: &dyn AgentModel, b: &dyn AgentModel) -> bool {
        let (a, b) = (a.var_store().variables(), b.var_store().variables());
        a.len() == b.len()
            && a.iter().all(|(name, t)| {
                b.get(name)
                    .is_some_and(|u| t.size() == u.size() && t.f_equal(u).unwrap_or(false))
            })
    }

    /// The trainer's copy of `live`, trained on `batch` (what an update does).
    fn trained(live: &LiveModel, batch: &[TrainingExample]) -> (Box<dyn AgentModel>, Touched) {
        let mut copy = live.model.lock().try_clone().unwrap();
        let (_, touched) = crate::grad::with_grad(|| train_update(copy.as_mut(), batch, 7, &[])).unwrap();
        (copy, touched)
    }

    #[test]
    fn a_copy_left_behind_is_brought_level_with_the_live_model() {
        let model = TextClassifier::new(config(), tch::Device::Cpu, 1).unwrap();
        let live = LiveModel::new(Box::new(model));
        // Learn the labels first, so the updates below keep the shapes.
        let (first, _) = trained(&live, &examples(0, &["a", "b"]));
        *live.model.lock() = first;

        // Accepted: the trained copy serves, the old live model is behind.
        let (candidate, touched) = trained(&live, &examples(100, &["a", "b"]));
        assert!(!touched.is_empty());
        let old = std::mem::replace(&mut *live.model.lock(), candidate);
        assert!(
            !same_weights(old.as_ref(), live.model.lock().as_ref()),
            "the update changed weights"
        );
        let level = TrainerCopy::after_accepted(old, touched).caught_up(&live).unwrap();
        assert!(same_weights(level.as_ref(), live.model.lock().as_ref()));

        // Rolled back: the copy trained, the live model did not change.
        let shapes_before = shapes(level.var_store());
        let mut copy = level;
        let (_, touched) =
            crate::grad::with_grad(|| train_update(copy.as_mut(), &examples(200, &["a", "b"]), 7, &[])).unwrap();
        assert!(!same_weights(copy.as_ref(), live.model.lock().as_ref()));
        let level = TrainerCopy::after_rollback(copy, Some(touched), shapes_before.clone())
            .caught_up(&live)
            .unwrap();
        assert!(same_weights(level.as_ref(), live.model.lock().as_ref()));

        // A rolled-back update that grew the model (a new label): a new copy.
        let mut copy = level;
        let (_, touched) =
            crate::grad::with_grad(|| train_update(copy.as_mut(), &examples(300, &["c"]), 7, &[])).unwrap();
        assert_ne!(shapes(copy.var_store()), shapes_before);
        let level = TrainerCopy::after_rollback(copy, Some(touched), shapes_before)
            .caught_up(&live)
            .unwrap();
        assert!(same_weights(level.as_ref(), live.model.lock().as_ref()));
    }
}
