//! The background side: worker threads that run updates, the periodic check,
//! and the update pipeline itself.
//!
//! One update of an agent, for each task in its batch:
//! 1. take the most valuable buffered examples (they stay buffered meanwhile);
//! 2. the trainer's copy of the live model (equal to it between updates);
//! 3. measure the copy on the task's held-out window (the live model's result);
//! 4. train the copy in place: adaptive sparse steps, or an Adam epoch;
//! 5. measure it again on the same held-out examples;
//! 6. the paired acceptance test ([`crate::judge`]) keeps the live model on
//!    evidence of harm (a rollback: the copy's changed rows are copied back),
//!    otherwise the copy is swapped in and the version goes up;
//! 7. record a [`ModelPerformance`] and remove exactly the trained examples.
//!
//! Predictions keep being served by the live model during steps 3–5.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crossbeam_channel::{select, Receiver};
use tch::nn::{self, OptimizerConfig};

use crate::agent::{AgentState, LiveModel, TaskState};
use crate::checkpoint::{self, CheckpointError, CheckpointMeta};
use crate::cluster::{
    install_published, latest_version, prune_buffer, write_atomically, Cluster, Publication, TaskSession,
};
use crate::error::ModelError;
use crate::eval;
use crate::ewc::{diagonal_fisher, first_non_finite, EwcState};
use crate::example::{unix_millis, ExampleId, ModelPerformance, TargetKind, TrainingExample};
use crate::features::{stable_hash, SplitMix64};
use crate::grad;
use crate::judge::{self, AcceptanceTest};
use crate::models::{create_model, AgentModel, MiniLmHead, ModelKind, TorchScriptModel, Training};
use crate::optim::{adaptive_step, Touched};
use crate::replay::ReplayChange;
use crate::runtime::Shared;
use crate::store::{CheckpointRecord, ExampleState, StoreOp};

/// Runs queued updates until the job channel closes.
pub(crate) fn worker_loop(shared: Arc<Shared>, jobs: Receiver<Arc<AgentState>>) {
    while let Ok(agent) = jobs.recv() {
        let received_before = agent.stats.lock().examples_received;
        let mut progress = false;
        if !shared.is_shutting_down() {
            agent.force_requested.store(false, Ordering::Release);
            agent.updating.store(true, Ordering::Release);
            match catch_unwind(AssertUnwindSafe(|| update_agent(&shared, &agent))) {
                Ok(removed) => progress = removed > 0,
                Err(panic) => {
                    let message = grad::panic_message(&*panic);
                    tracing::error!(agent = %agent.name, %message, "update panicked");
                    agent.record_error(format!("update panicked: {message}"));
                }
            }
            agent.updating.store(false, Ordering::Release);
        }
        // Caught up with the arrivals: what a burst evicted comes back, and
        // is trained by the next update even below the threshold.
        let reclaimed = crate::catch_up::reclaim_evicted(&shared, &agent);
        agent.scheduled.store(false, Ordering::Release);
        let new_arrivals = agent.stats.lock().examples_received != received_before;
        let forced = agent.force_requested.load(Ordering::Acquire) || reclaimed;
        // With several instances, arrivals alone do not retry at once: the
        // task may be another instance's now, and the listener schedules it
        // again when its shared buffer is full.
        let arrivals_count = new_arrivals && shared.cluster.is_none();
        if !shared.is_shutting_down() && (forced || ((progress || arrivals_count) && shared.needs_update(&agent))) {
            shared.schedule(&agent);
        }
        shared.finish_job();
    }
}

/// Wakes every `check_interval` and schedules agents whose buffer reached the
/// threshold, or whose oldest example has waited longer than `stale_after`.
pub(crate) fn ticker_loop(shared: Arc<Shared>, stop: Receiver<()>) {
    let ticks = crossbeam_channel::tick(shared.config.check_interval());
    loop {
        select! {
            recv(stop) -> _ => return,
            recv(ticks) -> _ => {
                for agent in shared.agents_snapshot() {
                    if shared.needs_update(&agent) || is_stale(&shared, &agent) {
                        shared.schedule(&agent);
                    }
                }
            }
        }
    }
}

fn is_stale(shared: &Shared, agent: &AgentState) -> bool {
    let oldest = agent.buffer.lock().oldest_timestamp();
    let waited = oldest.and_then(|t| SystemTime::now().duration_since(t).ok());
    waited.is_some_and(|w| w >= shared.config.stale_after())
}

/// Failed updates after which an example that fails on its own leaves the
/// buffer, so one poisonous example cannot block its agent for ever.
pub(crate) const MAX_UPDATE_ATTEMPTS: u32 = 3;

/// Rejections (see [`isolate_harm`]) after which an example is quarantined.
pub(crate) const MAX_REJECTIONS: u32 = 2;

/// Most sub-updates one task's batch may take while failures are narrowed
/// down (one bad example in 256 needs 17).
const MAX_SUB_UPDATES: usize = 32;

/// Updates every task in the agent's best batch (see [`train_batches`]).
/// Returns how many examples left the buffer.
fn update_agent(shared: &Shared, agent: &AgentState) -> usize {
    if let Some(cluster) = &shared.cluster {
        return update_agent_shared(shared, cluster, agent);
    }
    let batch = agent.buffer.lock().best(shared.config.max_examples_per_update);
    let mut by_task: BTreeMap<String, Vec<TrainingExample>> = BTreeMap::new();
    for example in batch {
        by_task.entry(example.task_type.clone()).or_default().push(example);
    }

    let mut removed = 0;
    for (task, examples) in by_task {
        let Some((live, held_out)) = prepare_task(shared, agent, &task) else {
            continue;
        };
        removed += train_batches(shared, agent, &task, &live, &held_out, examples, None);
    }
    removed
}

/// [`update_agent`] for an instance sharing the database: each task whose
/// training lock it gets is brought to the newest published version, then
/// trained on examples claimed from the shared table and judged on the
/// shared held-out window; tasks another instance is training are skipped.
fn update_agent_shared(shared: &Shared, cluster: &Cluster, agent: &AgentState) -> usize {
    let tasks: Vec<String> = agent
        .tasks
        .lock()
        .iter()
        .filter(|(_, t)| t.trainable())
        .map(|(name, _)| name.clone())
        .collect();
    let mut removed = 0;
    for task in tasks {
        match update_task_shared(shared, cluster, agent, &task) {
            Ok(n) => removed += n,
            Err(e) => {
                tracing::warn!(agent = %agent.name, task = %task, error = %e, "shared update failed");
                agent.record_error(format!("update of task {task:?} failed: {e}"));
            }
        }
    }
    removed
}

fn update_task_shared(
    shared: &Shared,
    cluster: &Cluster,
    agent: &AgentState,
    task: &str,
) -> Result<usize, crate::error::Error> {
    if cluster.recently_busy(&agent.name, task) {
        return Ok(0);
    }
    let Some(mut session) = TaskSession::try_lock(cluster, &agent.name, task)? else {
        // Another instance is training it: try again after a poll interval.
        cluster.mark_busy(&agent.name, task);
        return Ok(0);
    };
    let latest = latest_version(session.client(), &agent.name, task)?;
    let serving = agent.live_model(task).map(|live| live.version());
    if latest > 0 && serving.is_none_or(|v| v < latest) {
        install_published(shared, session.client(), &agent.name, task, latest)?;
    }
    let Some((live, registered)) = prepare_task(shared, agent, task) else {
        return Ok(0);
    };
    let has_registered = agent.tasks.lock().get(task).is_some_and(|t| t.fixed_eval.is_some());
    let held_out = match has_registered {
        true => registered,
        false => session.held_out(&agent.name, task, shared.config.performance_window)?,
    };
    let kind = live.model.lock().target_kind();
    let first = session.claim(&agent.name, task, kind, None, shared.config.max_examples_per_update)?;
    let mut removed = 0;
    if !first.is_empty() {
        removed += train_batches(
            shared,
            agent,
            task,
            &live,
            &held_out,
            first,
            Some((cluster, &mut session)),
        );
    }
    session.release();
    removed += prune_buffer(shared, session.client(), &agent.name)?;
    Ok(removed)
}

/// Trains one task's batch. A task update that fails (an error, or a panic
/// inside a user's model) is retried on each half of its batch, down to
/// single examples, so the examples that do not cause the failure are still
/// learned. An example that fails on its own while others in its batch
/// succeed is singled out: it counts an attempt now and at each later
/// failure, and leaves after [`MAX_UPDATE_ATTEMPTS`]. When nothing succeeds
/// and no example was singled out before, the failure is not the examples'
/// fault (a libtorch error, memory): they all stay buffered.
///
/// With a `session` (several instances), `batch` is already claimed; each
/// retry claims its half again, and every outcome is published through the
/// session instead of the store writer. Returns how many examples left the
/// local buffer.
fn train_batches(
    shared: &Shared,
    agent: &AgentState,
    task: &str,
    live: &LiveModel,
    held_out: &[TrainingExample],
    batch: Vec<TrainingExample>,
    mut session: Option<(&Cluster, &mut TaskSession)>,
) -> usize {
    let mut removed = 0;
    let mut pending = vec![batch];
    let mut suspects: Vec<ExampleId> = Vec::new();
    let mut rejected: Vec<Rejected> = Vec::new();
    let (mut attempts, mut any_success, mut claimed) = (0, false, true);
    while let Some(mut examples) = pending.pop() {
        if attempts == MAX_SUB_UPDATES {
            break; // The rest stays buffered for a later update.
        }
        attempts += 1;
        if let Some((_, session)) = session.as_mut() {
            if !claimed {
                let ids: Vec<ExampleId> = examples.iter().map(|e| e.id).collect();
                let kind = live.model.lock().target_kind();
                examples = match session.claim(&agent.name, task, kind, Some(&ids), ids.len()) {
                    Ok(examples) if !examples.is_empty() => examples,
                    Ok(_) => continue, // Trained meanwhile elsewhere.
                    Err(e) => {
                        agent.record_error(format!("claim of examples of task {task:?} failed: {e}"));
                        break;
                    }
                };
            }
            claimed = false;
        }
        let ids: Vec<ExampleId> = examples.iter().map(|e| e.id).collect();
        let outcome = {
            let mut publisher = session.as_mut().map(|(cluster, session)| Publisher {
                cluster,
                session,
                agent: &agent.name,
                task,
                ids: &ids,
            });
            // A panic inside one update fails that update only.
            catch_unwind(AssertUnwindSafe(|| {
                grad::with_grad(|| {
                    let judging = Judging {
                        held_out,
                        max_drop: None,
                    };
                    update_task(shared, agent, task, live, &examples, judging, publisher.as_mut())
                })
            }))
            .unwrap_or_else(|panic| Err(ModelError::Panicked(grad::panic_message(&*panic))))
        };
        // A publication that failed is the database's fault, not the
        // examples': no retrying halves (each would train again for nothing).
        let unpublished = matches!(outcome, Err(ModelError::Publish(_)));
        let outcome = outcome.map_err(|e| format!("update of task {task:?} failed: {e}"));
        match outcome {
            Ok(record) if record.rollback_triggered && session.is_none() => {
                // The batch is not thrown away: its harmful part is isolated below.
                any_success = true;
                agent.forget_failures(&ids);
                agent.stats.lock().updates_rolled_back += 1;
                rejected.push(Rejected::by(examples, &record));
                shared.record_performance(record);
            }
            Ok(record) => {
                any_success = true;
                agent.forget_failures(&ids);
                agent.forget_rejections(&ids);
                let rolled_back = record.rollback_triggered;
                let count = |stats: &mut crate::agent::AgentStats, n: usize| {
                    if rolled_back {
                        stats.updates_rolled_back += 1;
                        stats.examples_discarded += n as u64;
                    } else {
                        stats.updates_accepted += 1;
                        stats.examples_trained += n as u64;
                    }
                    stats.last_update = Some(SystemTime::now());
                };
                removed += match session.is_some() {
                    // Claimed from the shared table: not all were in this buffer.
                    true => agent.remove_examples(&ids, count),
                    false => agent.settle_examples(&ids, count),
                };
                if session.is_some() {
                    shared.remember_performance(record); // Published with the claim.
                } else {
                    shared.persist(StoreOp::SetState {
                        ids,
                        state: if rolled_back {
                            ExampleState::Discarded
                        } else {
                            ExampleState::Trained
                        },
                        update_id: Some(record.update_id),
                    });
                    shared.record_performance(record);
                }
            }
            Err(message) => {
                if let Some((_, session)) = session.as_mut() {
                    session.release(); // The examples are buffered again for everyone.
                }
                tracing::warn!(agent = %agent.name, task = %task, examples = ids.len(), error = %message, "update failed");
                agent.record_error(message);
                if unpublished {
                    break; // The claim is released: a later update takes them again.
                }
                if examples.len() > 1 {
                    let mut first = examples;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                } else {
                    suspects.extend(ids);
                }
            }
        }
    }
    if let Some((_, session)) = session.as_mut() {
        session.release(); // Whatever was claimed and not trained (the sub-update limit).
    }
    let budget = MAX_SUB_UPDATES.saturating_sub(attempts);
    removed += isolate_harm(shared, agent, task, live, held_out, rejected, budget);
    if !suspects.is_empty() {
        // Blame an example only when others succeeded beside it, or when it
        // was already singled out by such a round.
        let given_up = agent.count_failure(&suspects, MAX_UPDATE_ATTEMPTS, !any_success);
        if !given_up.is_empty() {
            match session.as_mut() {
                Some((_, session)) => {
                    if let Err(e) = session.mark_failed(&given_up) {
                        agent.note_error(format!("examples given up but not marked failed: {e}"));
                    }
                }
                None => shared.persist(StoreOp::SetState {
                    ids: given_up.clone(),
                    state: ExampleState::Failed,
                    update_id: None,
                }),
            }
            removed += agent.remove_examples(&given_up, |stats, n| stats.examples_failed += n as u64);
        }
    }
    removed
}

/// Retrains rolled-back batches in halves so that a few harmful examples do
/// not cost the batch. A half is judged as strictly as its batch's verdict
/// allows: it is kept only when the judging examples' metric does not drop
/// at all (otherwise harmless-looking halves of a harmful batch would pass
/// one after the other: 60 wrong corrections, rolled back as a whole, cost 6
/// points in two halves judged with the usual tolerance). A half rolled back
/// while its sibling was kept is split again. When both halves are rolled
/// back (the harm is spread through the batch), when a single example is
/// rolled back on its own, or when the `budget` of updates is spent, the
/// examples are rejected: the first time they stay buffered, to be judged
/// again with a later update (a harmless batch rolled back on noise, whose
/// halves then also drop by an example or two, is not lost); after
/// [`MAX_REJECTIONS`] rejections they are quarantined. One instance only: with
/// several, a rolled-back batch is published as discarded. Returns how many
/// examples left the buffer.
fn isolate_harm(
    shared: &Shared,
    agent: &AgentState,
    task: &str,
    live: &LiveModel,
    held_out: &[TrainingExample],
    rejected: Vec<Rejected>,
    mut budget: usize,
) -> usize {
    let mut removed = 0;
    let reject = |Rejected {
                      examples,
                      update_id,
                      certain,
                  }: Rejected| {
        let ids: Vec<ExampleId> = examples.iter().map(|e| e.id).collect();
        // A non-finite loss is no noise of the judging examples: no second judgement.
        let given_up = agent.count_rejection(&ids, if certain { 1 } else { MAX_REJECTIONS });
        if given_up.len() < ids.len() {
            tracing::info!(agent = %agent.name, task, examples = ids.len() - given_up.len(), update_id, "rejected examples stay buffered for another judgement");
        }
        if given_up.is_empty() {
            return 0;
        }
        tracing::warn!(agent = %agent.name, task, examples = given_up.len(), update_id, "examples quarantined");
        shared.persist(StoreOp::SetState {
            ids: given_up.clone(),
            state: ExampleState::Quarantined,
            update_id: Some(update_id),
        });
        let reason = format!(
            "update {update_id} trained it and was rolled back; so was every smaller part of its batch, \
             down to {} example(s), in each of {MAX_REJECTIONS} judgements",
            examples.len()
        );
        for example in examples.iter().filter(|e| given_up.contains(&e.id)) {
            crate::active::offer_quarantined(shared, agent, example.clone(), &reason);
        }
        agent.settle_examples(&given_up, |stats, n| stats.examples_quarantined += n as u64)
    };
    let mut stack = rejected;
    while let Some(batch) = stack.pop() {
        if batch.examples.len() < 2 || budget < 2 {
            removed += reject(batch);
            continue;
        }
        let mut first = batch.examples;
        let second = first.split_off(first.len() / 2);
        let mut rolled_back = Vec::new();
        for half in [first, second] {
            budget -= 1;
            let ids: Vec<ExampleId> = half.iter().map(|e| e.id).collect();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                // Part of a batch already found harmful: kept only if it does no
                // harm at all on the judging examples.
                let judging = Judging {
                    held_out,
                    max_drop: Some(0.0),
                };
                grad::with_grad(|| update_task(shared, agent, task, live, &half, judging, None))
            }))
            .unwrap_or_else(|panic| Err(ModelError::Panicked(grad::panic_message(&*panic))));
            match outcome {
                Ok(record) if record.rollback_triggered => {
                    agent.stats.lock().updates_rolled_back += 1;
                    rolled_back.push(Rejected::by(half, &record));
                    shared.record_performance(record);
                }
                Ok(record) => {
                    agent.forget_rejections(&ids);
                    removed += agent.settle_examples(&ids, |stats, n| {
                        stats.updates_accepted += 1;
                        stats.examples_trained += n as u64;
                        stats.last_update = Some(SystemTime::now());
                    });
                    shared.persist(StoreOp::SetState {
                        ids,
                        state: ExampleState::Trained,
                        update_id: Some(record.update_id),
                    });
                    shared.record_performance(record);
                }
                // Not the examples' verdict: they stay buffered for a later update.
                Err(e) => agent.record_error(format!("update of task {task:?} failed: {e}")),
            }
        }
        if rolled_back.len() == 2 {
            for half in rolled_back {
                removed += reject(half);
            }
        } else {
            stack.extend(rolled_back);
        }
    }
    removed
}

/// Examples whose update was rolled back.
struct Rejected {
    examples: Vec<TrainingExample>,
    /// The rolled-back update.
    update_id: u64,
    /// Rolled back for a non-finite value, not on the judging examples' evidence.
    certain: bool,
}

impl Rejected {
    fn by(examples: Vec<TrainingExample>, record: &ModelPerformance) -> Rejected {
        Rejected {
            examples,
            update_id: record.update_id,
            certain: !record.train_loss.is_finite(),
        }
    }
}

/// Publishes an update's outcome to the other instances, through the
/// training session that claimed its examples.
pub(crate) struct Publisher<'a> {
    cluster: &'a Cluster,
    session: &'a mut TaskSession,
    agent: &'a str,
    task: &'a str,
    ids: &'a [ExampleId],
}

impl Publisher<'_> {
    /// Commits the outcome: the examples' state, the record, and for an
    /// accepted version its checkpoint (bytes in the database, or copied to
    /// the shared folder), announced on commit.
    fn publish(
        &mut self,
        record: &ModelPerformance,
        checkpoint: Option<(&std::path::Path, serde_json::Value)>,
        replay: &ReplayChange,
    ) -> Result<(), ModelError> {
        let failed = |e: &dyn std::fmt::Display| ModelError::Publish(e.to_string());
        let checkpoint = match checkpoint {
            None => None,
            Some((path, metrics)) => {
                let bytes = std::fs::read(path).map_err(|e| failed(&e))?;
                let (stored_path, data) = match &self.cluster.config.shared_checkpoint_dir {
                    None => (path.display().to_string(), Some(bytes)),
                    Some(dir) => {
                        let folder = dir.join(self.agent).join(self.task);
                        // The same file name: whether it is a delta.
                        let target = folder.join(path.file_name().unwrap_or_default());
                        write_atomically(&folder, &target, &bytes).map_err(|e| failed(&e))?;
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
            state: if record.rollback_triggered {
                ExampleState::Discarded
            } else {
                ExampleState::Trained
            },
            record,
            checkpoint,
            replay,
        };
        self.session.publish(self.cluster, &publication).map_err(|e| failed(&e))
    }
}

/// The model a new task trains: a configured TorchScript module, else the
/// configured model kind, else the built-in model of its target kind.
fn build_model(
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
fn prepare_task(shared: &Shared, agent: &AgentState, task: &str) -> Option<(Arc<LiveModel>, Vec<TrainingExample>)> {
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

/// One update of one task: train the trainer's copy, judge it against the
/// live model on the same held-out examples, and install it or roll it
/// back. With a `publisher` (several instances) the outcome is committed to
/// the shared database before anything is installed; a publication that fails
/// fails the update and leaves the live model and its EWC state as they were.
///
/// The trainer's copy equals the live model between updates. It is trained
/// in place; afterwards only what the update changed ([`Touched`]: the rows
/// of the n-grams it saw, for the hashed models) is copied between the two,
/// from the new live model into the copy after an accepted update, from the
/// unchanged live model back into it after a rollback. A copy that may be
/// out of step (an error or a panic half-way) is dropped, and the next
/// update starts from a fresh copy of the live model.
fn update_task(
    shared: &Shared,
    agent: &AgentState,
    task: &str,
    live: &LiveModel,
    examples: &[TrainingExample],
    judging: Judging<'_>,
    mut publisher: Option<&mut Publisher<'_>>,
) -> Result<ModelPerformance, ModelError> {
    let Judging { held_out, max_drop } = judging;
    let started = Instant::now();
    let version = live.version();
    let ewc_config = shared.config.ewc_for(&agent.name, task);
    let mut ewc = live.ewc.lock();
    let mut shadow_slot = live.shadow.lock();
    // Taken out: put back only once it equals the live model again.
    let mut shadow = match shadow_slot.take() {
        Some(shadow) => shadow,
        // Once per task (and after a failure): the only full copy taken
        // under the live model's lock.
        None => live.model.lock().try_clone()?,
    };
    let shapes_before = shapes(shadow.var_store());
    let mut judged = live.judged.lock();
    // Read under the locks an install takes: the version of the weights copied.
    let serving = live.version();
    if judged.0 != serving {
        *judged = (serving, eval::Judged::new());
    }
    // Only the window's examples are worth remembering.
    let window: std::collections::HashSet<ExampleId> = held_out.iter().map(|e| e.id).collect();
    judged.1.retain(|id, _| window.contains(id));
    let before = eval::measure_reusing(shadow.as_ref(), held_out, &mut judged.1)?;
    let replay = agent
        .tasks
        .lock()
        .get(task)
        .map(|t| Arc::clone(&t.replay))
        .ok_or_else(|| ModelError::NotSupported(format!("task {task:?} is not registered")))?;
    let replay_config = &shared.config.replay;
    let wanted = (replay_config.ratio * examples.len() as f64).ceil() as usize;
    let mut training: Vec<TrainingExample> = examples.to_vec();
    training.extend(replay.lock().sample(wanted));

    let seed = stable_hash(format!("{}/{task}/{version}", agent.name).as_bytes());
    let penalty: Vec<(&EwcState, f64)> = ewc_config
        .enabled
        .then_some((&*ewc, ewc_config.lambda))
        .into_iter()
        .collect();
    let trained = train_update(shadow.as_mut(), &training, seed, &penalty).and_then(|(loss, touched)| {
        if shadow.training() == Training::Adaptive {
            return Ok((loss, touched)); // Each step checked the rows it wrote.
        }
        match first_non_finite(shadow.var_store())? {
            Some(name) => Err(ModelError::NonFinite(format!(
                "weight {name} is not finite after training"
            ))),
            None => Ok((loss, touched)),
        }
    });
    let (train_loss, touched, non_finite) = match trained {
        Ok((loss, touched)) => (loss, Some(touched), None),
        Err(ModelError::NonFinite(reason)) => (f64::NAN, None, Some(reason)),
        Err(e) => return Err(e),
    };
    let mut candidate_judged = eval::Judged::new();
    let after = match non_finite {
        None => eval::measure_reusing(shadow.as_ref(), held_out, &mut candidate_judged)?,
        Some(_) => None,
    };
    let rollback_reason = match (&non_finite, &before, &after) {
        (Some(reason), _, _) => Some(format!("training produced a non-finite value: {reason}")),
        (None, Some(b), Some(a)) => verdict(&shared.config, b, a, max_drop),
        _ => None,
    };
    let (before, after) = (before.map(|m| m.metric), after.map(|m| m.metric));

    let update_id = shared
        .next_id()
        .map_err(|e| ModelError::Publish(format!("no id for the update record: {e}")))?;
    let accepted = rollback_reason.is_none();
    let new_version = match (accepted, &publisher) {
        (false, _) => version,
        // With several instances the database numbers the lineage.
        (true, Some(publisher)) => publisher.session.next_version(),
        (true, None) => live.latest_version.load(Ordering::Acquire) + 1,
    };
    let record = ModelPerformance {
        update_id,
        agent_name: agent.name.clone(),
        task_type: task.to_string(),
        model_name: live.kind.name().to_string(),
        metric: before.or(after).map_or("accuracy", |m| m.name.as_str()).to_string(),
        accuracy_before: before.map(|m| m.value),
        accuracy_after: after.map(|m| m.value),
        held_out_examples: held_out.len(),
        examples_trained: examples.len(),
        train_loss,
        update_timestamp_ms: unix_millis(SystemTime::now()),
        rollback_triggered: !accepted,
        rollback_reason,
        model_version: new_version,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    if let Some(reason) = &record.rollback_reason {
        tracing::warn!(agent = %agent.name, task, %reason, "update rolled back");
        // The live model did not change: undo the copy's training.
        *shadow_slot = resync(live, shadow, touched.as_ref(), &shapes_before)?;
        drop(shadow_slot);
        if let Some(publisher) = publisher {
            publisher.publish(&record, None, &ReplayChange::default())?;
        }
        return Ok(record);
    }
    // The memory as it will be once the update is committed: changed on a
    // copy, so an unpublished update leaves it as it was.
    let (next_replay, replay_change) = {
        let mut next = replay.lock().clone();
        let dropped = next.set_capacity(replay_config.capacity);
        let mut change = next.remember(examples);
        change.removed.extend(dropped);
        (next, change)
    };

    // Everything that can fail happens before anything is installed: the
    // next update's starting copy where the model grew, the consolidation
    // (which changes the state only when it succeeds), and with several
    // instances the publication.
    let grown_copy = match shapes(shadow.var_store()) != shapes_before || touched.is_none() {
        true => Some(shadow.try_clone()?),
        false => None,
    };
    // What changed since the live version, which the checkpoint may store
    // alone when the new version directly follows it.
    let changed = match (&grown_copy, &touched) {
        (None, Some(touched)) if version + 1 == new_version => Some(touched),
        _ => None,
    };
    let ewc_before = match publisher {
        Some(_) if ewc_config.enabled => Some(ewc.try_clone()?),
        _ => None,
    };
    if ewc_config.enabled {
        // The update was accepted on its held-out result; a Fisher that
        // cannot be computed skips this consolidation only.
        let consolidated = diagonal_fisher(
            shadow.as_ref(),
            examples,
            ewc_config.fisher,
            ewc_config.fisher_samples,
            seed,
        )
        .and_then(|fresh| ewc.consolidate(shadow.var_store(), fresh, ewc_config.gamma));
        if let Err(e) = consolidated {
            tracing::warn!(agent = %agent.name, task, error = %e, "EWC consolidation skipped");
            agent.note_error(format!("EWC consolidation of task {task:?} skipped: {e}"));
        }
    }
    let metrics = serde_json::json!({
        "metric": before.or(after).map(|m| m.name.as_str()),
        "before": before.map(|m| m.value),
        "after": after.map(|m| m.value),
        "held_out_examples": held_out.len(),
        "examples_trained": examples.len(),
    });
    if let Some(publisher) = publisher.as_mut() {
        // Other instances take the model from its checkpoint: written and
        // committed before this instance serves it.
        // Not yet the serving version on disk: a crash before the commit
        // must not leave a restart serving a version nobody else has.
        let published = save_checkpoint(shared, agent, task, new_version, shadow.as_ref(), &ewc, changed, false)
            .map_err(|e| ModelError::Publish(format!("checkpoint not written: {e}")))
            .and_then(|path| publisher.publish(&record, Some((&path, metrics.clone())), &replay_change));
        let dir = shared.config.model_dir(&agent.name).join(task);
        if let Err(e) = published {
            if let Some(saved) = ewc_before {
                *ewc = saved;
            }
            let _ = std::fs::remove_file(checkpoint::path_of(&dir, new_version));
            let _ = std::fs::remove_file(checkpoint::delta_path_of(&dir, new_version));
            *shadow_slot = resync(live, shadow, touched.as_ref(), &shapes_before).ok().flatten();
            return Err(e);
        }
        let served = checkpoint::set_current(&dir, new_version)
            .and_then(|()| checkpoint::prune(&dir, shared.config.checkpoints_kept));
        if let Err(e) = served {
            tracing::warn!(agent = %agent.name, task, error = %e, "published checkpoint not marked as serving locally");
        }
    }
    let next_shadow = {
        let mut serving = live.model.lock();
        // The trained copy serves; the old live model becomes the copy.
        let old = std::mem::replace(&mut *serving, shadow);
        // Under the model's lock, so a prediction never sees new weights with
        // the old version.
        live.latest_version.fetch_max(new_version, Ordering::AcqRel);
        live.version.store(new_version, Ordering::Release);
        match (grown_copy, &touched) {
            (Some(copy), _) => {
                drop(serving);
                drop(old); // Freed outside the lock.
                Some(copy)
            }
            (None, Some(touched)) => match touched.copy_rows(serving.var_store(), old.var_store()) {
                // Only the rows the update changed: predictions wait for
                // that copy, not for a whole model.
                Ok(true) => Some(old),
                _ => None,
            },
            (None, None) => None,
        }
    };
    *shadow_slot = next_shadow;
    // The candidate's answers are the new live version's.
    *judged = (new_version, candidate_judged);
    *replay.lock() = next_replay;
    if publisher.is_none() && !replay_change.is_empty() {
        shared.persist(StoreOp::Replay {
            added: replay_change.added,
            removed: replay_change.removed,
        });
    }
    if publisher.is_none() && shared.config.checkpoints_kept > 0 {
        // From the trainer's copy, which equals the new live weights.
        let saved = shadow_slot
            .as_deref()
            .map(|model| save_checkpoint(shared, agent, task, new_version, model, &ewc, changed, true));
        match saved {
            Some(Ok(path)) => shared.persist(StoreOp::Checkpoint(CheckpointRecord {
                agent_name: agent.name.clone(),
                task_type: task.to_string(),
                version: new_version,
                path: path.display().to_string(),
                accepted: true,
                metrics,
                created_ms: unix_millis(SystemTime::now()),
            })),
            Some(Err(e)) => {
                tracing::error!(agent = %agent.name, task, version = new_version, error = %e, "checkpoint not written");
                agent.note_error(format!(
                    "checkpoint of version {new_version} of task {task:?} not written: {e}"
                ));
            }
            None => {}
        }
    }
    tracing::info!(
        agent = %agent.name,
        task,
        version = new_version,
        before = ?before.map(|m| m.value),
        after = ?after.map(|m| m.value),
        examples = examples.len(),
        "update accepted"
    );
    Ok(record)
}

/// What an update is judged on.
#[derive(Clone, Copy)]
struct Judging<'a> {
    /// The examples live model and candidate are compared on.
    held_out: &'a [TrainingExample],
    /// Replaces `rollback_threshold`, the largest drop tolerated.
    max_drop: Option<f64>,
}

/// Why the candidate is rolled back, by the configured acceptance test, or
/// `None` when it is kept.
/// `max_drop` replaces `rollback_threshold` (the largest tolerated drop).
fn verdict(
    config: &crate::config::Config,
    before: &eval::Measured,
    after: &eval::Measured,
    max_drop: Option<f64>,
) -> Option<String> {
    let max_drop = max_drop.unwrap_or(config.rollback_threshold);
    match config.acceptance.test {
        AcceptanceTest::Paired => judge::paired_verdict(before, after, &config.acceptance, max_drop),
        AcceptanceTest::Threshold => {
            let (b, a) = (&before.metric, &after.metric);
            (a.drop_from(b) > max_drop).then(|| {
                format!(
                    "held-out {} fell from {:.4} to {:.4} on {} examples, more than the rollback threshold {max_drop}",
                    a.name.as_str(),
                    b.value,
                    a.value,
                    a.examples,
                )
            })
        }
    }
}

/// The shape of every variable, by name.
fn shapes(vs: &tch::nn::VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables().into_iter().map(|(name, t)| (name, t.size())).collect()
}

/// The trainer's copy brought back to the (unchanged) live model after a
/// rolled-back or unpublished update: the touched rows copied back, or a
/// fresh whole copy where the update changed shapes or touched everything.
fn resync(
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
    let meta = CheckpointMeta {
        version,
        agent_name: agent.name.clone(),
        task_type: task.to_string(),
        model_kind: model.kind(),
        target_kind: model.target_kind(),
        model: model.metadata(),
        ewc_consolidations: ewc.consolidations(),
        created_ms: unix_millis(SystemTime::now()),
        base: None,
    };
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

/// One pass over `examples` in shuffled minibatches, each step's loss plus
/// the EWC penalty of every `(state, λ)` given (one for online EWC, one per
/// earlier task for the original EWC): adaptive steps with the model's own
/// optimiser state for [`Training::Adaptive`] models, a fresh Adam
/// otherwise. Returns the mean loss without the penalties; a non-finite loss
/// stops training with [`ModelError::NonFinite`].
pub fn train_one_epoch(
    model: &mut dyn AgentModel,
    examples: &[TrainingExample],
    seed: u64,
    penalties: &[(&EwcState, f64)],
) -> Result<f64, ModelError> {
    train_update(model, examples, seed, penalties).map(|(loss, _)| loss)
}

/// [`train_one_epoch`], also returning what the pass changed.
pub(crate) fn train_update(
    model: &mut dyn AgentModel,
    examples: &[TrainingExample],
    seed: u64,
    penalties: &[(&EwcState, f64)],
) -> Result<(f64, Touched), ModelError> {
    model.prepare(examples)?;
    let mut order: Vec<&TrainingExample> = examples.iter().collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let adaptive = model.training() == Training::Adaptive;
    let mut adam = match adaptive {
        true => None,
        false => Some(nn::Adam::default().build(model.var_store(), model.learning_rate())?),
    };
    let mut touched = Touched::new();
    let mut total = 0.0;
    if adaptive && penalties.is_empty() && model.minibatch_size() == 1 {
        if let Some(total) = model.closed_form_pass(&order, &mut touched)? {
            return Ok((total / examples.len().max(1) as f64, touched));
        }
    }
    for chunk in order.chunks(model.minibatch_size()) {
        let loss = match adaptive {
            true => model.adaptive_loss(chunk)?,
            false => model.loss(chunk)?,
        };
        let value = loss.f_double_value(&[])?;
        if !value.is_finite() {
            return Err(ModelError::NonFinite(format!("training loss is {value}")));
        }
        match adam.as_mut() {
            None => {
                loss.f_backward()?;
                adaptive_step(model.var_store(), model.learning_rate(), penalties, &mut touched)?;
            }
            Some(optimizer) => {
                optimizer.zero_grad();
                loss.f_backward()?;
                // The penalty's gradient goes straight into the gradients: the same
                // step as back-propagating λ/2·Σ F(θ−θ*)², at a fraction of the cost.
                for (ewc, lambda) in penalties {
                    ewc.add_penalty_gradient(model.var_store(), *lambda)?;
                }
                optimizer.step();
            }
        }
        total += value * chunk.len() as f64;
    }
    if let Some(mut optimizer) = adam {
        // libtorch's zero_grad sets the gradients to none: the model does not
        // carry them (memory), and the Fisher's gradients start sparse where the
        // model makes them so.
        optimizer.zero_grad();
        touched = Touched::everything(model.var_store());
    }
    Ok((total / examples.len().max(1) as f64, touched))
}
