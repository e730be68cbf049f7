//! One task's batch through the pipeline, and what happens when an update
//! fails or is rolled back: failures are narrowed down by halving, harmful
//! examples are isolated and judged again before they are quarantined.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::commit::{ClusterCommit, Commit, LocalCommit};
use super::task::update_task;
use super::verdict::Judging;
use crate::agent::AgentState;
use crate::base::ModelError;
use crate::base::{ExampleId, ModelPerformance, TrainingExample};
use crate::cluster::{Cluster, TaskSession};
use crate::grad;
use crate::live::LiveModel;
use crate::runtime::Shared;
use crate::store::{ExampleState, StoreOp};

/// Failed updates after which an example that fails on its own leaves the
/// buffer, so one poisonous example cannot block its agent for ever.
pub(crate) const MAX_UPDATE_ATTEMPTS: u32 = 3;

/// Rejections (see [`isolate_harm`]) after which an example is quarantined.
/// Early in a stream one update of correct examples can cost a window 10–15
/// points (a shuffled news stream at its 300th article, a tagger at its
/// 250th tweet), and again after the next update: three judgements, each
/// beside fresh examples, quarantined none of a clean stream of any built-in
/// kind (`examples/judge_clean.rs`; two quarantined 46 correct tweets) and
/// 50 of 60 wrong corrections amid a clean news stream; four let all 60 in
/// (`tests/rollback.rs`).
pub(crate) const MAX_REJECTIONS: u32 = 3;

/// Most sub-updates one task's batch may take while failures are narrowed
/// down (one bad example in 256 needs 17).
const MAX_SUB_UPDATES: usize = 32;

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
pub(super) fn train_batches(
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
                let kind = live.serving().target_kind();
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
            let mut commit = commit_of(shared, &mut session, &agent.name, task, &ids);
            // A panic inside one update fails that update only.
            catch_unwind(AssertUnwindSafe(|| {
                grad::with_grad(|| {
                    let judging = Judging {
                        held_out,
                        strict: false,
                    };
                    update_task(shared, agent, task, live, &examples, judging, commit.as_mut())
                })
            }))
            .unwrap_or_else(|panic| Err(ModelError::Panicked(grad::panic_message(&*panic))))
        };
        // A publication that failed is the database's fault, not the
        // examples': no retrying halves (each would train again for nothing).
        let unpublished = matches!(outcome, Err(ModelError::Publish(_)));
        let outcome = outcome.map_err(|e| format!("update of task {task:?} failed: {e}"));
        match outcome {
            Ok(record) if record.rollback_triggered => {
                // The batch is not thrown away: its harmful part is isolated below.
                any_success = true;
                agent.forget_failures(&ids);
                agent.stats.lock().updates_rolled_back += 1;
                rejected.push(Rejected::by(examples, &record));
                commit_of(shared, &mut session, &agent.name, task, &ids).recorded(record);
            }
            Ok(record) => {
                any_success = true;
                removed += accepted(shared, &mut session, agent, task, record, &ids);
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
    removed += isolate_harm(shared, &mut session, agent, task, live, held_out, rejected, budget);
    if !suspects.is_empty() {
        removed += blame_failures(shared, &mut session, agent, &suspects, any_success);
    }
    removed
}

/// Counts a failed attempt for the examples that failed on their own;
/// blames an example only when others succeeded beside it, or when it was
/// already singled out by such a round. Those that failed
/// [`MAX_UPDATE_ATTEMPTS`] times leave the buffer as failed. Returns how
/// many left it.
fn blame_failures(
    shared: &Shared,
    session: &mut Option<(&Cluster, &mut TaskSession)>,
    agent: &AgentState,
    suspects: &[ExampleId],
    any_success: bool,
) -> usize {
    let given_up = agent.count_failure(suspects, MAX_UPDATE_ATTEMPTS, !any_success);
    if given_up.is_empty() {
        return 0;
    }
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
    agent.remove_examples(&given_up, |stats, n| stats.examples_failed += n as u64)
}

/// Retrains rolled-back batches in halves so that a few harmful examples do
/// not cost the batch. A half is judged as strictly as its batch's verdict
/// allows: it is kept only when the judging examples' loss does not rise at
/// all (otherwise harmless-looking halves of a harmful batch would pass one
/// after the other: 60 wrong corrections, rolled back as a whole, cost 6
/// points in two halves judged with the usual tolerance). A half rolled back
/// while its sibling was kept is split again. When both halves are rolled
/// back (the harm is spread through the batch), when a single example is
/// rolled back on its own, or when the `budget` of updates is spent, the
/// examples are rejected: they stay buffered, to be judged again with a
/// later update (a harmless batch rolled back on noise, whose halves then
/// also drop by an example or two, is not lost), one that fresh examples
/// trigger (see [`AgentState::fresh_buffered`]); after
/// [`MAX_REJECTIONS`] rejections they are quarantined. With several
/// instances each half is claimed again under the task's training lock and
/// published like any update; the rejections are counted by the instance
/// that judged them. Returns how many examples left the buffer.
#[allow(clippy::too_many_arguments)]
fn isolate_harm(
    shared: &Shared,
    session: &mut Option<(&Cluster, &mut TaskSession)>,
    agent: &AgentState,
    task: &str,
    live: &LiveModel,
    held_out: &[TrainingExample],
    rejected: Vec<Rejected>,
    mut budget: usize,
) -> usize {
    let mut removed = 0;
    let mut stack = rejected;
    while let Some(batch) = stack.pop() {
        if batch.examples.len() < 2 || budget < 2 {
            removed += reject(shared, session, agent, task, batch);
            continue;
        }
        let mut first = batch.examples;
        let second = first.split_off(first.len() / 2);
        let mut rolled_back = Vec::new();
        for half in [first, second] {
            budget -= 1;
            let ids: Vec<ExampleId> = half.iter().map(|e| e.id).collect();
            let half = match commit_of(shared, session, &agent.name, task, &ids).reclaim(half) {
                Ok(half) if !half.is_empty() => half,
                Ok(_) => continue, // Not buffered any more.
                Err(e) => {
                    agent.record_error(format!("update of task {task:?} failed: {e}"));
                    continue;
                }
            };
            let ids: Vec<ExampleId> = half.iter().map(|e| e.id).collect();
            let outcome = {
                let mut commit = commit_of(shared, session, &agent.name, task, &ids);
                catch_unwind(AssertUnwindSafe(|| {
                    // Part of a batch already found harmful: kept only if it does no
                    // harm at all on the judging examples.
                    let judging = Judging { held_out, strict: true };
                    grad::with_grad(|| update_task(shared, agent, task, live, &half, judging, commit.as_mut()))
                }))
                .unwrap_or_else(|panic| Err(ModelError::Panicked(grad::panic_message(&*panic))))
            };
            match outcome {
                Ok(record) if record.rollback_triggered => {
                    agent.stats.lock().updates_rolled_back += 1;
                    rolled_back.push(Rejected::by(half, &record));
                    commit_of(shared, session, &agent.name, task, &ids).recorded(record);
                }
                Ok(record) => {
                    removed += accepted(shared, session, agent, task, record, &ids);
                }
                // Not the examples' verdict: they stay buffered for a later update.
                Err(e) => {
                    if let Some((_, session)) = session.as_mut() {
                        session.release();
                    }
                    // The database's fault: the rest waits for a later update too.
                    let unpublished = matches!(e, ModelError::Publish(_));
                    agent.record_error(format!("update of task {task:?} failed: {e}"));
                    if unpublished {
                        return removed;
                    }
                }
            }
        }
        if rolled_back.len() == 2 {
            for half in rolled_back {
                removed += reject(shared, session, agent, task, half);
            }
        } else {
            stack.extend(rolled_back);
        }
    }
    removed
}

/// Settles the examples of an accepted update: they leave the buffer as
/// trained and the commit records them. Returns how many left the buffer.
fn accepted(
    shared: &Shared,
    session: &mut Option<(&Cluster, &mut TaskSession)>,
    agent: &AgentState,
    task: &str,
    record: ModelPerformance,
    ids: &[ExampleId],
) -> usize {
    // The record's time, which a restart reads back.
    let finished = record.update_timestamp_ms;
    let count = |stats: &mut crate::agent::AgentStats, n: usize| {
        stats.updates_accepted += 1;
        stats.examples_trained += n as u64;
        stats.last_update_ms = Some(finished);
    };
    let removed = match session.is_some() {
        // Claimed from the shared table: not all were in this buffer.
        true => agent.remove_examples(ids, count),
        false => agent.settle_examples(ids, count),
    };
    commit_of(shared, session, &agent.name, task, ids).settled(record, ids);
    removed
}

/// Counts a rejection of the examples; those rejected
/// [`MAX_REJECTIONS`] times (once for a non-finite loss) are quarantined
/// and offered for review, the others stay buffered for another judgement.
/// Returns how many left the buffer.
fn reject(
    shared: &Shared,
    session: &mut Option<(&Cluster, &mut TaskSession)>,
    agent: &AgentState,
    task: &str,
    rejected: Rejected,
) -> usize {
    let Rejected {
        examples,
        update_id,
        certain,
    } = rejected;
    let ids: Vec<ExampleId> = examples.iter().map(|e| e.id).collect();
    // A non-finite loss is no noise of the judging examples: no second judgement.
    let limit = if certain { 1 } else { MAX_REJECTIONS };
    let given_up = agent.count_rejection(&ids, limit, task, agent.judge_of(task));
    if given_up.len() < ids.len() {
        tracing::info!(agent = %agent.name, task, examples = ids.len() - given_up.len(), update_id, "rejected examples stay buffered for another judgement");
    }
    if given_up.is_empty() {
        return 0;
    }
    if let Err(e) = commit_of(shared, session, &agent.name, task, &given_up).quarantine(&given_up, update_id) {
        // Still buffered in the database: judged again by whoever trains next.
        agent.record_error(format!("examples of task {task:?} not quarantined: {e}"));
        return 0;
    }
    tracing::warn!(agent = %agent.name, task, examples = given_up.len(), update_id, "examples quarantined");
    let reason = format!(
        "update {update_id} trained it and was rolled back; so was every smaller part of its batch, \
         down to {} example(s), in each of {MAX_REJECTIONS} judgements",
        examples.len()
    );
    for example in examples.iter().filter(|e| given_up.contains(&e.id)) {
        crate::active::offer_quarantined(shared, agent, example.clone(), &reason);
    }
    let count = |stats: &mut crate::agent::AgentStats, n: usize| stats.examples_quarantined += n as u64;
    match session.is_some() {
        true => agent.remove_examples(&given_up, count),
        false => agent.settle_examples(&given_up, count),
    }
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

/// The commit of one update of `ids`: through the session that claimed
/// them with several instances, else the local one.
fn commit_of<'a>(
    shared: &'a Shared,
    session: &'a mut Option<(&Cluster, &mut TaskSession)>,
    agent: &'a str,
    task: &'a str,
    ids: &'a [ExampleId],
) -> Box<dyn Commit + 'a> {
    match session.as_mut() {
        Some((cluster, session)) => Box::new(ClusterCommit {
            shared,
            cluster,
            session,
            agent,
            task,
            ids,
        }),
        None => Box::new(LocalCommit { shared }),
    }
}
