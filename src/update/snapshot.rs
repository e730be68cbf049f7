//! Stage 1, snapshot: the task's live model (created on first use), the
//! judging examples, and the trainer's copy of the live weights, brought
//! back to them after an update that is not kept.

use std::sync::Arc;

use crate::agent::{AgentState, TaskState};
use crate::base::stable_hash;
use crate::base::ModelError;
use crate::base::{TargetKind, TrainingExample};
use crate::live::{LiveModel, TrainerCopy};
use crate::models::{create_model, AgentModel, MiniLmHead, ModelKind, TorchScriptModel};
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
            return Err(ModelError::Misconfigured(format!(
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
                .ok_or_else(|| ModelError::ModelFiles("minilm_dir is not configured".into()))?;
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
        Some(kind) if ModelKind::for_target(target_kind) != Some(*kind) => Err(ModelError::Misconfigured(format!(
            "model kind {} is configured for {key}, but it cannot learn {target_kind} targets",
            kind.name()
        ))),
        _ => create_model(target_kind, &config.text_model, shared.device, seed),
    }
}

/// Why the model the configuration names for (agent, task) could not
/// learn `target`, when it could not: its kind of target, or, for a
/// TorchScript classifier, a label outside its outputs. `None` when no
/// model is configured for the task or it learns the target. Checked when
/// an example arrives, so it is refused at the call rather than failing
/// every update.
pub(crate) fn configured_model_refuses(
    config: &crate::config::Config,
    agent: &str,
    task: &str,
    target: &crate::base::Target,
) -> Option<crate::base::ValidationError> {
    if config.torchscript.is_empty() && config.model_kinds.is_empty() {
        return None;
    }
    let key = format!("{agent}/{task}");
    let got = target.kind();
    let refused = |model: String, learns: String, got: String| crate::base::ValidationError::NotForConfiguredModel {
        agent: agent.to_string(),
        task: task.to_string(),
        why: format!(
            "{model}, which {learns}; got {}",
            got.chars().take(60).collect::<String>()
        )
        .into(),
    };
    if let Some(spec) = config.torchscript.get(&key) {
        let model = format!("TorchScript module {}", spec.path.display());
        if spec.target_kind != got {
            return Some(refused(
                model,
                format!("learns {} targets", spec.target_kind),
                format!("a {got}"),
            ));
        }
        return match target {
            crate::base::Target::Label(label) if !spec.labels.is_empty() && !spec.labels.contains(label) => {
                Some(refused(
                    model,
                    format!("answers only the labels {:?}", spec.labels),
                    format!("{label:?}"),
                ))
            }
            _ => None,
        };
    }
    let kind = config.model_kinds.get(&key)?;
    let learns = match kind {
        ModelKind::MiniLmHead => matches!(got, TargetKind::Label | TargetKind::Score),
        kind => ModelKind::for_target(got) == Some(*kind),
    };
    let what = match kind {
        ModelKind::MiniLmHead => "learns label or score targets".to_string(),
        kind => match [TargetKind::Label, TargetKind::Score, TargetKind::Tags]
            .into_iter()
            .find(|&t| ModelKind::for_target(t) == Some(*kind))
        {
            Some(t) => format!("learns {t} targets"),
            None => "learns no targets".to_string(),
        },
    };
    (!learns).then(|| refused(format!("model kind {}", kind.name()), what, format!("a {got}")))
}

/// The live model (created on first use) and a snapshot of the held-out
/// window of a task; `None` when no built-in model learns its targets.
pub(super) fn prepare_task(
    shared: &Shared,
    agent: &AgentState,
    task: &str,
) -> Option<(Arc<LiveModel>, Arc<[TrainingExample]>)> {
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
                    agent.record_error(format!(
                        "could not create a model for task {task:?}: {e}; its examples wait in the buffer \
                         until a restart with a configuration that can"
                    ));
                    agent.unbuildable.lock().insert(task.to_string());
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

/// Brings every trainer's copy of `agent` that is an update behind level
/// with its live model.
pub(crate) fn catch_up_trainer_copies(agent: &AgentState) {
    let lives: Vec<Arc<LiveModel>> = agent.tasks.lock().values().filter_map(|t| t.model.clone()).collect();
    for live in lives {
        let mut slot = live.shadow.lock();
        if slot.as_ref().is_some_and(TrainerCopy::is_behind) {
            *slot = slot
                .take()
                .and_then(|copy| copy.caught_up(&live))
                .map(TrainerCopy::ready);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::{Target, TrainingExample};
    use crate::config::TextModelConfig;
    use crate::live::shapes;
    use crate::models::TextClassifier;
    use crate::optim::Touched;
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
        let mut copy = live.serving().try_clone().unwrap();
        let (_, touched) = crate::grad::with_grad(|| train_update(copy.as_mut(), batch, 7, &[])).unwrap();
        (copy, touched)
    }

    #[test]
    fn a_copy_left_behind_is_brought_level_with_the_live_model() {
        let model = TextClassifier::new(config(), tch::Device::Cpu, 1).unwrap();
        let live = LiveModel::new(Box::new(model));
        // Learn the labels first, so the updates below keep the shapes.
        let (first, _) = trained(&live, &examples(0, &["a", "b"]));
        live.swap_serving(first, 1);

        // Accepted: the trained copy serves, the old live model is behind.
        let (candidate, touched) = trained(&live, &examples(100, &["a", "b"]));
        assert!(!touched.is_empty());
        let (old, _) = live.swap_serving(candidate, 2);
        assert!(
            !same_weights(old.as_ref(), live.serving().as_ref()),
            "the update changed weights"
        );
        let level = TrainerCopy::after_accepted(old, touched).caught_up(&live).unwrap();
        assert!(same_weights(level.as_ref(), live.serving().as_ref()));

        // Rolled back: the copy trained, the live model did not change.
        let shapes_before = shapes(level.var_store());
        let mut copy = level;
        let (_, touched) =
            crate::grad::with_grad(|| train_update(copy.as_mut(), &examples(200, &["a", "b"]), 7, &[])).unwrap();
        assert!(!same_weights(copy.as_ref(), live.serving().as_ref()));
        let level = TrainerCopy::after_rollback(copy, Some(touched), shapes_before.clone())
            .caught_up(&live)
            .unwrap();
        assert!(same_weights(level.as_ref(), live.serving().as_ref()));

        // A rolled-back update that grew the model (a new label): a new copy.
        let mut copy = level;
        let (_, touched) =
            crate::grad::with_grad(|| train_update(copy.as_mut(), &examples(300, &["c"]), 7, &[])).unwrap();
        assert_ne!(shapes(copy.var_store()), shapes_before);
        let level = TrainerCopy::after_rollback(copy, Some(touched), shapes_before)
            .caught_up(&live)
            .unwrap();
        assert!(same_weights(level.as_ref(), live.serving().as_ref()));
    }
}
