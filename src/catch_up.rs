//! Bursts are not lost to training: an example a full buffer pushes out is
//! only marked `evicted` in the store, and once the trainer has caught up
//! with the arrivals (the buffer is below the update threshold) it takes
//! evicted examples back from the store, the most valuable first, and
//! trains them like any other. In the fast regime of the news stream (the
//! caller never waits), most of a burst used to leave the buffer untrained.
//!
//! With several instances the rows go back to `buffered` in the shared
//! table (a row another session holds is skipped), where any instance's
//! claim takes them. An instance takes back any evicted rows of the agent
//! once an eviction of its own (or its start) says there may be some, so
//! its counters may count as received what another instance evicted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::agent::AgentState;
use crate::buffer::Insert;
use crate::runtime::Shared;
use crate::store::{ExampleState, StoreOp};

/// How long taking back waits for the store writer to write the evictions
/// handed to it (they are then visible to the query).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Takes evicted examples of `agent` back into its buffer when the trainer
/// has caught up: up to one update's worth, never more than the buffer has
/// room for. Returns whether the agent should update again at once: some
/// came back, or an eviction happened meanwhile (it may have missed the
/// query). Not after an error: the next eviction or update tries again.
pub(crate) fn reclaim_evicted(shared: &Shared, agent: &AgentState) -> bool {
    let Some(store) = &shared.store else { return false };
    if shared.is_shutting_down() || !agent.may_reclaim.load(Ordering::Acquire) {
        return false;
    }
    // Rejected examples waiting for the model to change do not count as
    // arrivals still to train: with them counted, a backlog that ended on a
    // rejection was never taken back.
    if agent.fresh_buffered() >= shared.config.update_threshold {
        return false; // Still behind the arrivals: they come first.
    }
    let room = {
        let buffer = agent.buffer.lock();
        buffer.capacity() - buffer.len()
    };
    let limit = room.min(shared.config.max_examples_per_update);
    if limit == 0 {
        return false;
    }
    // Cleared first: an eviction from now on sets it again.
    agent.may_reclaim.store(false, Ordering::Release);
    let taken = store.flush(FLUSH_TIMEOUT).and_then(|()| {
        // Flushed may mean spooled: the evictions are then not in the
        // database yet, and the query would find none of them.
        let written = store.status();
        if written.spooled > 0 || !written.connected {
            return Err(crate::store::StoreError::Unavailable(
                "the database has not caught up with the writer's spool yet".into(),
            ));
        }
        store.store().reclaim_evicted(&agent.name, limit)
    });
    let examples = match taken {
        Ok(examples) => examples,
        Err(e) => {
            agent.may_reclaim.store(true, Ordering::Release);
            tracing::warn!(agent = %agent.name, error = %e, "evicted examples not taken back");
            agent.note_error(format!("evicted examples not taken back from the store: {e}"));
            return false;
        }
    };
    // Set again by an eviction since it was cleared: the query may have missed it.
    let evicted_meanwhile = agent.may_reclaim.load(Ordering::Acquire);
    if examples.len() == limit {
        agent.may_reclaim.store(true, Ordering::Release); // There may be more.
    }
    let n = examples.len();
    let (examples, judging) = refresh_windows(shared, agent, examples);
    let mut buffer = agent.buffer.lock();
    let mut stats = agent.stats.lock();
    stats.examples_taken_back += n as u64;
    // Evicted in this run: counted as evicted, now back. Evicted in an
    // earlier run: not received in this one until now.
    let back = |stats: &mut crate::agent::AgentStats| match stats.examples_evicted {
        0 => stats.examples_received += 1,
        _ => stats.examples_evicted -= 1,
    };
    for _ in 0..judging {
        back(&mut stats);
        stats.examples_held_out += 1;
    }
    for (example, left_window) in examples {
        if left_window {
            // Held out until now: it judged updates and is trained now.
            stats.examples_held_out -= 1;
            if let Insert::BufferedEvicting(gone) | Insert::Rejected(gone) = buffer.insert(example) {
                shared.record_eviction(agent, &mut stats, gone.id);
            }
            continue;
        }
        back(&mut stats);
        // Arrivals since the check may have taken the room: the least
        // valuable then leaves again, to be taken back later.
        if let Insert::BufferedEvicting(gone) | Insert::Rejected(gone) = buffer.insert(example) {
            shared.record_eviction(agent, &mut stats, gone.id);
        }
    }
    if n > 0 {
        tracing::info!(agent = %agent.name, examples = n, "evicted examples taken back from the store");
    }
    n > 0 || evicted_meanwhile
}

/// Whether an example taken back may go into a window: not one intake
/// would never have held out. A person's correction is trained, not spent
/// on judging (held out after a take-back, 90 of 600 corrections into a
/// small buffer were never trained); a correction's row carries the
/// uncertainty and importance 1 and a note it was given at intake (an
/// example handed in alike is trained too, the safe side). An urgent one
/// trains at once.
fn may_judge(example: &crate::base::TrainingExample, immediate_update_priority: u8) -> bool {
    let correction =
        example.uncertainty_score >= 1.0 && example.importance_score >= 1.0 && example.user_feedback.is_some();
    let urgent = u8::from(example.correction_priority) >= immediate_update_priority;
    !correction && !urgent
}

/// Puts a share of the examples taken back (`held_out_fraction` of them, by
/// [`crate::eval::refreshes_window`]) into their task's held-out window, as
/// if held out when they arrived; those leaving the full window are trained
/// instead. A backlog is trained after its stream ended, when no new
/// held-out example arrives: judged sixty times on one window, which the
/// accepted updates had been chosen on, a share of correct updates looked
/// harmful (the live model's accuracy there rose to 0.71 while on unseen
/// snippets it was 0.64) and 256 or 512 correct VADER snippets were
/// quarantined in 2 runs of 3. Returns the examples for the buffer, each
/// with whether it left a window, and how many went into a window. Not
/// with several instances (their window is the shared table's) nor for a
/// task judged on a registered set.
fn refresh_windows(
    shared: &Shared,
    agent: &AgentState,
    examples: Vec<crate::base::TrainingExample>,
) -> (Vec<(crate::base::TrainingExample, bool)>, usize) {
    let fraction = shared.config.held_out_fraction;
    if shared.cluster.is_some() || fraction <= 0.0 {
        return (examples.into_iter().map(|e| (e, false)).collect(), 0);
    }
    let mut out = Vec::with_capacity(examples.len());
    let mut judging = Vec::new();
    {
        let mut tasks = agent.tasks.lock();
        for example in examples {
            let task = tasks
                .get_mut(&example.task_type)
                .filter(|t| t.fixed_eval.is_none() && t.trainable())
                .filter(|_| may_judge(&example, shared.config.immediate_update_priority));
            match task {
                Some(task) if crate::eval::refreshes_window(&example.input_text, fraction) => {
                    judging.push(example.id);
                    if let Some(leaving) = task.held_out.push(example) {
                        out.push((leaving, true));
                    }
                }
                _ => out.push((example, false)),
            }
        }
    }
    let moved = judging.len();
    if moved > 0 {
        shared.persist(StoreOp::SetState {
            ids: judging,
            state: ExampleState::Evaluation,
            update_id: None,
        });
        let left: Vec<_> = out.iter().filter(|(_, left)| *left).map(|(e, _)| e.id).collect();
        if !left.is_empty() {
            shared.persist(StoreOp::ReleaseHeldOut { ids: left });
        }
    }
    (out, moved)
}
