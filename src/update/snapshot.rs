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
