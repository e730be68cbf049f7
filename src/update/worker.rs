//! The background side: worker threads that run queued updates of an
//! agent (each task's batch, in local or cluster mode) and the periodic
//! check that schedules them.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::{select, Receiver};

use super::batches::train_batches;
use super::snapshot::prepare_task;
use crate::agent::AgentState;
use crate::base::TrainingExample;
use crate::cluster::{latest_version, Cluster, TaskSession};
use crate::follow::{install_published, not_here, prune_buffer, publish_earlier_lineage, Lineage};
use crate::grad;
use crate::runtime::Shared;

/// Runs queued updates until the job channel closes.
pub(crate) fn worker_loop(shared: Arc<Shared>, jobs: Receiver<Arc<AgentState>>) {
    while let Ok(agent) = jobs.recv() {
        // A caller waiting for idle may hold a permit: waits for it.
        let _slot = shared.update_slots.acquire();
        run_job(&shared, agent);
    }
}

/// Runs one queued update of `agent` (on a worker, or on a caller waiting
/// for idle), schedules the next one when more is to learn, and brings the
/// trainer's copies level once the update is over for callers.
pub(crate) fn run_job(shared: &Shared, agent: Arc<AgentState>) {
    let finishing = Finishing(shared);
    let received_before = agent.stats.lock().examples_received;
    let mut progress = false;
    if !shared.is_shutting_down() {
        let forced = agent.force_requested.swap(false, Ordering::AcqRel);
        agent.updating.store(true, Ordering::Release);
        match catch_unwind(AssertUnwindSafe(|| update_agent(shared, &agent, forced))) {
            Ok(removed) => progress = removed > 0,
            Err(panic) => {
                let message = grad::panic_message(&*panic);
                tracing::error!(agent = %agent.name, %message, "update panicked");
                agent.record_error(format!("update panicked: {message}"));
            }
        }
        agent.updating.store(false, Ordering::Release);
        crate::runtime::update_finished();
    }
    // Caught up with the arrivals: what a burst evicted comes back, and
    // is trained by the next update even below the threshold.
    let reclaimed = crate::catch_up::reclaim_evicted(shared, &agent);
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
    drop(finishing);
    // The update is over for the caller (a new version serves); what it
    // left for the trainer's copies is done now, while the caller goes
    // on. A panic in a user's model here drops the copy: the next update
    // copies the live model.
    let _ = catch_unwind(AssertUnwindSafe(|| crate::update::catch_up_trainer_copies(&agent)));
}

/// Counts a job as finished when dropped, also when the job panics outside
/// the update's own guard: `wait_for_idle` and `shutdown` wait for the
/// count, and a job run by a waiting caller has no thread of its own that a
/// shutdown could join instead.
struct Finishing<'a>(&'a Shared);

impl Drop for Finishing<'_> {
    fn drop(&mut self) {
        self.0.finish_job();
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

/// Updates every task in the agent's best batch (see [`train_batches`]).
/// A `forced` update takes rejected examples that wait for their model or
/// window to change too (a person asked for it; see
/// [`AgentState::best_batch`]). Returns how many examples left the buffer.
fn update_agent(shared: &Shared, agent: &AgentState, forced: bool) -> usize {
    if let Some(cluster) = &shared.cluster {
        return update_agent_shared(shared, cluster, agent, forced);
    }
    let n = shared.config.max_examples_per_update;
    let batch = match forced {
        true => agent.forced_batch(n),
        false => agent.best_batch(n),
    };
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
/// shared held-out window; tasks another instance is training are skipped
/// (that instance trains what is buffered, and its version arrives here as
/// a publication). A `forced` update tries every task's lock, also one
/// found busy less than a poll interval ago.
fn update_agent_shared(shared: &Shared, cluster: &Cluster, agent: &AgentState, forced: bool) -> usize {
    let tasks: Vec<String> = agent
        .tasks
        .lock()
        .iter()
        .filter(|(_, t)| t.trainable())
        .map(|(name, _)| name.clone())
        .collect();
    let mut removed = 0;
    for task in tasks {
        match update_task_shared(shared, cluster, agent, &task, forced) {
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
    forced: bool,
) -> Result<usize, crate::error::Error> {
    if !forced && cluster.recently_busy(&agent.name, task) {
        return Ok(0);
    }
    let Some(mut session) = TaskSession::try_lock(cluster, &agent.name, task)? else {
        // Another instance is training it: try again after a poll interval.
        cluster.mark_busy(&agent.name, task);
        return Ok(0);
    };
    let mut latest = latest_version(session.client(), &agent.name, task)?;
    if latest == 0 && session.next_version() > 1 {
        // Versions one instance trained before the group: taken over from
        // this instance's files, or left for the instance that has them
        // (an update here would start a new lineage over them).
        match publish_earlier_lineage(shared, cluster, &mut session, &agent.name, task)? {
            Lineage::Published(version) => latest = version,
            Lineage::NotHere(version) if !forced => {
                agent.note_error(not_here(task, version));
                return Ok(0);
            }
            _ => {}
        }
    }
    let serving = agent.live_model(task).map(|live| live.version());
    if latest > 0 && serving.is_none_or(|v| v < latest) {
        install_published(shared, session.client(), &agent.name, task, latest)?;
    }
    let Some((live, registered)) = prepare_task(shared, agent, task) else {
        return Ok(0);
    };
    // Before the window is read (a row inserted in between would shift it
    // and release a row it judges on) and before the claim (the rows
    // released are trained by this update).
    session.release_beyond_window(&agent.name, task, shared.config.performance_window)?;
    let has_registered = agent.tasks.lock().get(task).is_some_and(|t| t.fixed_eval.is_some());
    let held_out = match has_registered {
        true => registered,
        false => session
            .held_out(&agent.name, task, shared.config.performance_window)?
            .into(),
    };
    let kind = live.serving().target_kind();
    let limit = shared.config.max_examples_per_update;
    let judging: Vec<_> = held_out.iter().map(|e| e.id).collect();
    // A forced update takes rejected rows too (a person asked for it).
    let skip_rejected_at = (!forced).then_some(latest);
    let first = session.claim_batch((&agent.name, task, kind), limit, skip_rejected_at, &judging)?;
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
