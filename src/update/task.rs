//! One update of one task: snapshot → train → judge → commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::commit::{Accepted, Commit};
use super::train::train_update;
use super::verdict::{verdict, Judging};
use crate::agent::AgentState;
use crate::base::stable_hash;
use crate::base::ModelError;
use crate::base::{unix_millis, ExampleId, ModelPerformance, TrainingExample};
use crate::eval;
use crate::ewc::{first_non_finite, Changed, EwcConfig, EwcState, UpdateRows};
use crate::fisher::{fisher_examples, fresh_fisher};
use crate::live::LiveModel;
use crate::live::{install, shapes, TrainerCopy};
use crate::models::{AgentModel, Training};
use crate::optim::Touched;
use crate::replay::{ReplayChange, ReplayMemory};
use crate::runtime::Shared;
use parking_lot::Mutex;

/// One update of one task: snapshot (the trainer's copy and the live
/// model's answers on the judging examples), train the copy, judge it
/// against the live model on the same examples, and commit: install it or
/// roll it back, through `commit` ([`Commit`]: the local or the cluster
/// mode). A commit that refuses the version before it serves (a failed
/// publication) fails the update and leaves the live model and its EWC
/// state as they were.
///
/// The trainer's copy equals the live model between updates. It is trained
/// in place; afterwards only what the update changed ([`Touched`]: the rows
/// of the n-grams it saw, for the hashed models) is copied between the two,
/// from the new live model into the copy after an accepted update, from the
/// unchanged live model back into it after a rollback: left to the worker
/// once the update is over for the caller ([`TrainerCopy`]), unless the
/// commit reads the copy (a checkpoint). A copy that may be out of step (an
/// error or a panic half-way) is dropped, and the next update starts from a
/// fresh copy of the live model.
pub(super) fn update_task(
    shared: &Shared,
    agent: &AgentState,
    task: &str,
    live: &LiveModel,
    examples: &[TrainingExample],
    judging: Judging<'_>,
    commit: &mut dyn Commit,
) -> Result<ModelPerformance, ModelError> {
    let Judging { held_out, strict } = judging;
    let started = Instant::now();
    let ewc_config = shared.config.ewc_for(&agent.name, task);
    let mut ewc = live.ewc.lock();
    let mut shadow_slot = live.shadow.lock();
    let mut judged = live.judged.lock();
    let (mut shadow, version, before) = snapshot(live, &mut shadow_slot, &mut judged, held_out)?;
    let shapes_before = shapes(shadow.var_store());
    let (replay, training) = with_replay(shared, agent, task, examples)?;

    let seed = stable_hash(format!("{}/{task}/{version}", agent.name).as_bytes());
    // The pass takes the anchors from the rows it reads when they are
    // this version's weights.
    ewc.passing_from(version);
    let penalty: Vec<(&EwcState, f64)> = ewc_config
        .enabled
        .then_some((&*ewc, ewc_config.lambda))
        .into_iter()
        .collect();
    let trained = train_candidate(shadow.as_mut(), &training, seed, &penalty);
    ewc.passed();
    let (train_loss, touched, non_finite) = trained?;
    let finite = non_finite.is_none();
    let (after, candidate_judged) = measure_candidate(shadow.as_ref(), held_out, &judged.1, touched.as_ref(), finite)?;
    let rollback_reason = match (&non_finite, &before, &after) {
        (Some(reason), _, _) => Some(format!("training produced a non-finite value: {reason}")),
        (None, Some(b), Some(a)) => verdict(&shared.config, b, a, strict),
        _ => None,
    };
    let (before, after) = (before.map(|m| m.metric), after.map(|m| m.metric));

    let update_id = shared
        .next_id()
        .map_err(|e| ModelError::Publish(format!("no id for the update record: {e}")))?;
    let accepted = rollback_reason.is_none();
    let new_version = if accepted { commit.next_version(live) } else { version };
    let record = ModelPerformance {
        update_id,
        rollback_triggered: !accepted,
        rollback_reason,
        model_version: new_version,
        ..record_of(
            &record_parts(agent, task, live, examples, held_out),
            before.as_ref(),
            after.as_ref(),
            train_loss,
            started,
        )
    };
    if let Some(reason) = &record.rollback_reason {
        tracing::warn!(agent = %agent.name, task, %reason, "update rolled back");
        // The live model did not change: the copy's training is undone by
        // the worker once the update is over (or by the next update).
        *shadow_slot = Some(TrainerCopy::after_rollback(shadow, touched, shapes_before));
        drop(shadow_slot);
        commit.rolled_back(&record)?;
        return Ok(record);
    }
    let metrics = checkpoint_metrics(&record);
    let update = UpdateOf {
        shared,
        agent,
        task,
        live,
        examples,
        seed,
        version,
    };
    let candidate = Candidate {
        model: shadow,
        touched,
        shapes_before,
        judged: candidate_judged,
    };
    let held = Held {
        ewc: &mut ewc,
        shadow_slot: &mut shadow_slot,
        judged: &mut judged,
    };
    install_accepted(&update, &record, &metrics, candidate, held, &replay, commit)?;
    tracing::info!(
        agent = %agent.name,
        task,
        version = new_version,
        before = ?record.accuracy_before,
        after = ?record.accuracy_after,
        examples = examples.len(),
        "update accepted"
    );
    Ok(record)
}

/// Stage 3: the candidate measured on the judging examples, its scores
/// derived from the live model's (`live_judged`) where its one recorded
/// pass allows ([`eval::measure_after_pass`]), with its answers; nothing
/// when training produced a non-finite value.
fn measure_candidate(
    candidate: &dyn AgentModel,
    held_out: &[TrainingExample],
    live_judged: &eval::Judged,
    touched: Option<&Touched>,
    finite: bool,
) -> Result<(Option<eval::Measured>, eval::Judged), ModelError> {
    let mut judged = eval::Judged::new();
    if !finite {
        return Ok((None, judged));
    }
    let after = eval::measure_after_pass(candidate, held_out, live_judged, touched, &mut judged)?;
    Ok((after, judged))
}

/// The judgement written into an accepted update's checkpoint.
fn checkpoint_metrics(record: &ModelPerformance) -> serde_json::Value {
    let measured = record.accuracy_before.or(record.accuracy_after).is_some();
    serde_json::json!({
        "metric": measured.then_some(record.metric.as_str()),
        "before": record.accuracy_before,
        "after": record.accuracy_after,
        "held_out_examples": record.held_out_examples,
        "examples_trained": record.examples_trained,
    })
}

/// What an update record says of the update before its verdict.
struct RecordParts<'a> {
    agent_name: &'a str,
    task: &'a str,
    model_name: &'static str,
    held_out_examples: usize,
    examples_trained: usize,
}

fn record_parts<'a>(
    agent: &'a AgentState,
    task: &'a str,
    live: &LiveModel,
    examples: &[TrainingExample],
    held_out: &[TrainingExample],
) -> RecordParts<'a> {
    RecordParts {
        agent_name: &agent.name,
        task,
        model_name: live.kind.name(),
        held_out_examples: held_out.len(),
        examples_trained: examples.len(),
    }
}

/// The update record without its verdict (accepted, with no reason, at
/// version 0 until the caller says otherwise) and without an id.
fn record_of(
    parts: &RecordParts<'_>,
    before: Option<&eval::Metric>,
    after: Option<&eval::Metric>,
    train_loss: f64,
    started: Instant,
) -> ModelPerformance {
    ModelPerformance {
        update_id: 0,
        agent_name: parts.agent_name.to_string(),
        task_type: parts.task.to_string(),
        model_name: parts.model_name.to_string(),
        metric: before.or(after).map_or("accuracy", |m| m.name.as_str()).to_string(),
        accuracy_before: before.map(|m| m.value),
        accuracy_after: after.map(|m| m.value),
        held_out_examples: parts.held_out_examples,
        examples_trained: parts.examples_trained,
        train_loss,
        update_timestamp_ms: unix_millis(SystemTime::now()),
        rollback_triggered: false,
        rollback_reason: None,
        model_version: 0,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// Stage 1: the trainer's copy taken out of its slot (brought level with the
/// live model first, if the worker has not yet; put back only once it is
/// level again, or with what it lacks), the version it is level with (read
/// under the locks an install or a restore takes: a delta checkpoint is
/// written against it), and the live model's answers on the judging
/// examples (those of the version before reused).
fn snapshot(
    live: &LiveModel,
    shadow_slot: &mut Option<TrainerCopy>,
    judged: &mut (u64, eval::Judged),
    held_out: &[TrainingExample],
) -> Result<(Model, u64, Option<eval::Measured>), ModelError> {
    let shadow = match shadow_slot.take().and_then(|copy| copy.caught_up(live)) {
        Some(shadow) => shadow,
        // Once per task (and after a failure): the only full copy taken
        // under the live model's lock.
        None => live.serving().try_clone()?,
    };
    let version = live.version();
    if judged.0 != version {
        *judged = (version, eval::Judged::new());
    }
    // Only the window's examples are worth remembering.
    let window: std::collections::HashSet<ExampleId> = held_out.iter().map(|e| e.id).collect();
    judged.1.retain(|id, _| window.contains(id));
    let before = eval::measure_reusing(shadow.as_ref(), held_out, &mut judged.1)?;
    Ok((shadow, version, before))
}

/// The task's replay memory, and the batch with a sample of it mixed in
/// (`replay.ratio` replayed examples per new one).
fn with_replay(
    shared: &Shared,
    agent: &AgentState,
    task: &str,
    examples: &[TrainingExample],
) -> Result<(Arc<Mutex<ReplayMemory>>, Vec<TrainingExample>), ModelError> {
    let replay = agent
        .tasks
        .lock()
        .get(task)
        .map(|t| Arc::clone(&t.replay))
        .ok_or_else(|| ModelError::UnknownTask(task.to_string()))?;
    let wanted = (shared.config.replay.ratio * examples.len() as f64).ceil() as usize;
    let mut training: Vec<TrainingExample> = examples.to_vec();
    training.extend(replay.lock().sample(wanted));
    Ok((replay, training))
}

/// What the stages of one task's update read.
struct UpdateOf<'a> {
    shared: &'a Shared,
    agent: &'a AgentState,
    task: &'a str,
    live: &'a LiveModel,
    /// The batch (without the replayed examples).
    examples: &'a [TrainingExample],
    /// The training's seed (also the true Fisher's).
    seed: u64,
    /// The version the candidate was copied from.
    version: u64,
}

/// The trained candidate: the trainer's copy, the rows it changed, the
/// shapes of its variables before, and its answers on the judging examples.
struct Candidate {
    model: Model,
    touched: Option<Touched>,
    shapes_before: BTreeMap<String, Vec<i64>>,
    judged: eval::Judged,
}

/// The state of the live model an update holds locked throughout (in the
/// lock order of `live.rs`).
struct Held<'a> {
    ewc: &'a mut EwcState,
    shadow_slot: &'a mut Option<TrainerCopy>,
    judged: &'a mut (u64, eval::Judged),
}

/// Commits an accepted candidate and makes it serve: everything that can
/// fail first (the next trainer's copy where the model grew, the EWC
/// consolidation, with several instances the publication: a refusal
/// restores the EWC state and fails the update), then the swap, the
/// judged answers and the replay memory of the new version, the commit's
/// last step, and the old model as the next trainer's copy.
fn install_accepted(
    update: &UpdateOf<'_>,
    record: &ModelPerformance,
    metrics: &serde_json::Value,
    candidate: Candidate,
    held: Held<'_>,
    replay: &Mutex<ReplayMemory>,
    commit: &mut dyn Commit,
) -> Result<(), ModelError> {
    let Candidate {
        model: shadow,
        touched,
        shapes_before,
        judged: candidate_judged,
    } = candidate;
    let ewc_config = update.shared.config.ewc_for(&update.agent.name, update.task);
    let new_version = record.model_version;
    let ewc = &mut *held.ewc;
    // The memory as it will be once the update is committed: changed on a
    // copy, so an unpublished update leaves it as it was.
    let (next_replay, replay_change) =
        remembered(&replay.lock(), update.shared.config.replay.capacity, update.examples);

    // Everything that can fail happens before anything is installed: the
    // next update's starting copy where the model grew, the consolidation
    // (a failed one leaves the EWC state empty and is said in the status:
    // the update still serves), and with several
    // instances the publication.
    let grown_copy = match shapes(shadow.var_store()) != shapes_before || touched.is_none() {
        true => Some(shadow.try_clone()?),
        false => None,
    };
    // What changed since the live version, which the checkpoint may store
    // alone when the new version directly follows it.
    let changed = match (&grown_copy, &touched) {
        (None, Some(touched)) if update.version + 1 == new_version => Some(touched),
        _ => None,
    };
    let ewc_before = match commit.may_refuse() && ewc_config.enabled {
        true => Some(ewc.try_clone()?),
        false => None,
    };
    if ewc_config.enabled {
        let rows_of = |name: &str| match &touched {
            Some(touched) => touched.rows_of(name),
            None => Ok(Changed::Whole),
        };
        let rows = UpdateRows {
            from: update.version,
            to: new_version,
            rows_of: &rows_of,
        };
        consolidate(update, ewc, shadow.as_ref(), ewc_config, rows);
    }
    let committed = Accepted {
        agent: update.agent,
        task: update.task,
        version: new_version,
        ewc,
        changed,
        record,
        metrics,
        replay: &replay_change,
    };
    if let Err(e) = commit.before_serving(&committed, shadow.as_ref()) {
        if let Some(saved) = ewc_before {
            *held.ewc = saved;
        }
        *held.shadow_slot = Some(TrainerCopy::after_rollback(shadow, touched, shapes_before));
        return Err(e);
    }
    // Whether the commit reads the new version from the trainer's copy
    // once it serves (a checkpoint): then the copy is brought level now.
    let copy_needed = commit.reads_copy_after_serving();
    // The trained copy serves; the old live model becomes the copy.
    let (old, _) = update.live.swap_serving(shadow, new_version);
    let (level, behind) = old_model_as_copy(update.live, old, grown_copy, touched.as_ref(), copy_needed);
    // The candidate's answers are the new live version's.
    *held.judged = (new_version, candidate_judged);
    *replay.lock() = next_replay;
    // From the trainer's copy, which equals the new live weights.
    commit.after_serving(&committed, level.as_deref());
    *held.shadow_slot = match (level, behind, touched) {
        (Some(copy), _, _) => Some(TrainerCopy::ready(copy)),
        (None, Some(old), Some(touched)) => Some(TrainerCopy::after_accepted(old, touched)),
        _ => None,
    };
    Ok(())
}

/// Trains the candidate (the trainer's copy) on `training`: its summed loss
/// and the rows it changed, or a NaN loss and why when a value became
/// non-finite (a rollback, not an error).
fn train_candidate(
    shadow: &mut dyn AgentModel,
    training: &[TrainingExample],
    seed: u64,
    penalty: &[(&EwcState, f64)],
) -> Result<(f64, Option<Touched>, Option<String>), ModelError> {
    let trained = train_update(shadow, training, seed, penalty).and_then(|(loss, touched)| {
        if shadow.settings().training == Training::Adaptive {
            return Ok((loss, touched)); // Each step checked the rows it wrote.
        }
        match first_non_finite(shadow.var_store())? {
            Some(name) => Err(ModelError::NonFinite(format!(
                "weight {name} is not finite after training"
            ))),
            None => Ok((loss, touched)),
        }
    });
    match trained {
        Ok((loss, touched)) => Ok((loss, Some(touched), None)),
        Err(ModelError::NonFinite(reason)) => Ok((f64::NAN, None, Some(reason))),
        Err(e) => Err(e),
    }
}

/// Consolidates the accepted candidate's weights into the EWC state. The
/// update was accepted on its held-out result; a Fisher that cannot be
/// computed skips this consolidation only (said in the status).
fn consolidate(
    update: &UpdateOf<'_>,
    ewc: &mut EwcState,
    candidate: &dyn AgentModel,
    config: &EwcConfig,
    rows: UpdateRows<'_>,
) {
    let (agent, task) = (update.agent, update.task);
    let (max_samples, seed) = (config.fisher_samples, update.seed);
    let consolidated = fisher_examples(candidate, update.examples, config.fisher, max_samples, seed)
        .and_then(|sampled| fresh_fisher(candidate, &sampled))
        .and_then(|fresh| ewc.consolidate_update(candidate.var_store(), fresh, config.gamma, Some(rows)));
    if let Err(e) = consolidated {
        tracing::warn!(agent = %agent.name, task, error = %e, "EWC consolidation skipped");
        agent.note_error(format!("EWC consolidation of task {task:?} skipped: {e}"));
    }
}

/// A copy of the replay memory that remembers `examples` (at `capacity`),
/// and what changed in it.
fn remembered(memory: &ReplayMemory, capacity: usize, examples: &[TrainingExample]) -> (ReplayMemory, ReplayChange) {
    let mut next = memory.clone();
    let change = next.resize_and_remember(capacity, examples);
    (next, change)
}

type Model = Box<dyn AgentModel>;

/// The model that served before an accepted update, as the next trainer's
/// copy: dropped when the update grew the model (`grown_copy` is the copy
/// then), brought level now when the commit reads the copy, else left
/// behind for the worker (after the lock: predictions do not wait). Returns
/// the copy level with the live model, or the old model still behind.
fn old_model_as_copy(
    live: &LiveModel,
    old: Box<dyn AgentModel>,
    grown_copy: Option<Box<dyn AgentModel>>,
    touched: Option<&Touched>,
    copy_needed: bool,
) -> (Option<Model>, Option<Model>) {
    match (grown_copy, touched) {
        (Some(copy), _) => {
            drop(old);
            (Some(copy), None)
        }
        (None, Some(touched)) if copy_needed => (install(live, old, touched), None),
        (None, Some(_)) => (None, Some(old)),
        (None, None) => (None, None),
    }
}
