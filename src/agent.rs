//! The state the library keeps for one agent: its priority buffer, its tasks
//! (target kind, held-out window, live model), the predictions waiting for a
//! label, and its counters. Every field has its own lock, held briefly; no lock
//! is held while a model trains.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::base::kind_matches;
use crate::base::ValidationError;
use crate::base::{ExampleId, LabelForm, TargetKind, TrainingExample};
use crate::buffer::PriorityBuffer;
use crate::eval::HeldOutWindow;
use crate::live::LiveModel;
use crate::models::ModelKind;
use crate::replay::ReplayMemory;
use crate::review::ReviewQueue;

/// One task of an agent.
pub(crate) struct TaskState {
    pub target_kind: TargetKind,
    /// How its labels are written, once a caller wrote one as JSON.
    pub label_form: Option<LabelForm>,
    pub held_out: HeldOutWindow,
    /// An evaluation set the user registered; used instead of the window.
    pub fixed_eval: Option<Arc<[TrainingExample]>>,
    pub model: Option<Arc<LiveModel>>,
    /// Examples the task's model learned, sampled into its updates; here
    /// rather than with the model so the store's copy can come back before
    /// the model is built. Locked after the model's EWC state and copy.
    pub replay: Arc<Mutex<ReplayMemory>>,
}

impl TaskState {
    /// A task learning `target_kind`, without a model yet.
    pub fn new(target_kind: TargetKind, window: usize) -> TaskState {
        TaskState {
            target_kind,
            label_form: None,
            held_out: HeldOutWindow::new(window),
            fixed_eval: None,
            model: None,
            replay: Arc::new(Mutex::new(ReplayMemory::new(0, 0x5eed))),
        }
    }

    /// The examples an update is judged on: the registered set, or the
    /// window of recent held-out examples.
    pub fn evaluation_examples(&self) -> Arc<[TrainingExample]> {
        match &self.fixed_eval {
            Some(set) => Arc::clone(set),
            None => self.held_out.snapshot(),
        }
    }

    /// Whether the task can be trained: it has a model, or a built-in model
    /// learns its kind of target.
    pub fn trainable(&self) -> bool {
        self.model.is_some() || ModelKind::for_target(self.target_kind).is_some()
    }
}

/// The task `task` of `agent`, created with `kind` if new; an error when it
/// exists and learns another kind of target. Called under the agent's task
/// lock, so two first examples of different kinds cannot both win.
pub(crate) fn task_of_kind<'a>(
    tasks: &'a mut BTreeMap<String, TaskState>,
    agent: &str,
    task: &str,
    kind: TargetKind,
    window: usize,
) -> Result<&'a mut TaskState, ValidationError> {
    let state = tasks
        .entry(task.to_string())
        .or_insert_with(|| TaskState::new(kind, window));
    kind_matches(agent, task, state.target_kind, kind)?;
    Ok(state)
}

/// Counters and last events of an agent, kept in the shape of its status
/// (whose other fields, read when the status is made, stay empty here), so
/// the counters a status reports are the ones counted.
pub(crate) type AgentStats = crate::status::AgentStatus;

pub(crate) struct AgentState {
    pub name: String,
    pub buffer: Mutex<PriorityBuffer>,
    pub tasks: Mutex<BTreeMap<String, TaskState>>,
    /// Predictions waiting for a label, per task.
    pub reviews: Mutex<BTreeMap<String, ReviewQueue>>,
    /// Examples of tasks no model learns, kept (most recent first out when
    /// full) for export as a fine-tuning data set.
    pub kept: Mutex<VecDeque<TrainingExample>>,
    pub stats: Mutex<AgentStats>,
    /// Set while an update of this agent is queued or running, so at most one
    /// is in flight.
    pub scheduled: AtomicBool,
    /// Set while an update of this agent is running.
    pub updating: AtomicBool,
    /// Set by a forced update; an update clears it when it starts, so a force
    /// that arrives during an update queues another one.
    pub force_requested: AtomicBool,
    /// Whether the store may hold evicted examples of this agent to take
    /// back (see [`crate::catch_up`]): set by every eviction and at start.
    pub may_reclaim: AtomicBool,
    /// Failed update attempts per buffered example.
    failures: Mutex<Strikes>,
    /// Per buffered example, how often the harmful part of a rolled-back
    /// update it was in could not be narrowed down without it.
    rejections: Mutex<Rejections>,
    /// Tasks whose model could not be created in this run (a configuration
    /// error, said in the status's `last_error`): their examples stay
    /// buffered but out of the batches, which they filled at every update
    /// while the agent's other tasks never trained.
    pub unbuildable: Mutex<std::collections::BTreeSet<String>>,
}

/// Per rejected example (see [`AgentState::count_rejection`]): how often it
/// was rejected, and which live version and window of its task judged it
/// last.
#[derive(Debug, Default)]
struct Rejections(HashMap<ExampleId, Rejection>);

#[derive(Debug)]
struct Rejection {
    strikes: u32,
    task: String,
    judged_by: Judge,
}

/// What judged an update: its task's live version and the generation of
/// its held-out window (see [`crate::eval::HeldOutWindow::generation`]).
pub(crate) type Judge = (u64, u64);

impl Rejections {
    fn forget(&mut self, ids: &[ExampleId]) {
        if !self.0.is_empty() {
            for id in ids {
                self.0.remove(id);
            }
        }
    }

    /// Whether the example waits for its task's live model or held-out
    /// window to change: judged again by the same model on the same window
    /// that rejected it, it would be rejected again for the same reason.
    fn waiting(&self, id: ExampleId, judges: &BTreeMap<String, Judge>) -> bool {
        self.0
            .get(&id)
            .is_some_and(|r| judges.get(&r.task).is_none_or(|j| *j == r.judged_by))
    }
}

/// A count per example of something that went wrong with it; the examples
/// whose count reaches a limit are handed back (and forgotten).
#[derive(Debug, Default)]
struct Strikes(HashMap<ExampleId, u32>);

impl Strikes {
    /// Counts one strike for each id (with `known_only`, only for ids
    /// struck before); returns the ids that reached `limit`.
    fn count(&mut self, ids: &[ExampleId], limit: u32, known_only: bool) -> Vec<ExampleId> {
        let mut reached = Vec::new();
        for id in ids {
            if known_only && !self.0.contains_key(id) {
                continue;
            }
            let strikes = self.0.entry(*id).or_insert(0);
            *strikes += 1;
            if *strikes >= limit {
                self.0.remove(id);
                reached.push(*id);
            }
        }
        reached
    }

    fn forget(&mut self, ids: &[ExampleId]) {
        if !self.0.is_empty() {
            for id in ids {
                self.0.remove(id);
            }
        }
    }
}

impl AgentState {
    pub fn new(name: String, buffer_capacity: usize) -> AgentState {
        AgentState {
            name,
            buffer: Mutex::new(PriorityBuffer::new(buffer_capacity)),
            tasks: Mutex::new(BTreeMap::new()),
            reviews: Mutex::new(BTreeMap::new()),
            kept: Mutex::new(VecDeque::new()),
            stats: Mutex::new(AgentStats::default()),
            scheduled: AtomicBool::new(false),
            updating: AtomicBool::new(false),
            force_requested: AtomicBool::new(false),
            may_reclaim: AtomicBool::new(true),
            failures: Mutex::new(Strikes::default()),
            rejections: Mutex::new(Rejections::default()),
            unbuildable: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    /// The live model of a task, if one exists.
    pub fn live_model(&self, task: &str) -> Option<Arc<LiveModel>> {
        self.tasks.lock().get(task).and_then(|t| t.model.clone())
    }

    /// Counts a failed attempt for each id (with `known_only`, only for ids
    /// that already failed before); returns the ids that have now failed
    /// `max_attempts` times (and forgets them).
    pub fn count_failure(&self, ids: &[ExampleId], max_attempts: u32, known_only: bool) -> Vec<ExampleId> {
        self.failures.lock().count(ids, max_attempts, known_only)
    }

    /// Forgets the failed attempts of examples that left the buffer or
    /// were trained without failing.
    pub fn forget_failures(&self, ids: &[ExampleId]) {
        self.failures.lock().forget(ids);
    }

    /// Counts a rejection for each id (see [`crate::update`]'s
    /// `isolate_harm`), judged by `judge` of `task` ([`Self::judge_of`]);
    /// returns the ids rejected `limit` times (and forgets them).
    pub fn count_rejection(&self, ids: &[ExampleId], limit: u32, task: &str, judge: Judge) -> Vec<ExampleId> {
        let mut rejections = self.rejections.lock();
        let mut reached = Vec::new();
        for id in ids {
            let r = rejections.0.entry(*id).or_insert_with(|| Rejection {
                strikes: 0,
                task: task.to_string(),
                judged_by: judge,
            });
            r.strikes += 1;
            r.judged_by = judge;
            if r.strikes >= limit {
                rejections.0.remove(id);
                reached.push(*id);
            }
        }
        reached
    }

    /// What judges an update of `task` now: its live version and window.
    pub fn judge_of(&self, task: &str) -> Judge {
        self.judges().remove(task).unwrap_or_default()
    }

    /// [`judge_of`](Self::judge_of) of every task.
    fn judges(&self) -> BTreeMap<String, Judge> {
        self.tasks
            .lock()
            .iter()
            .map(|(name, t)| {
                let version = t.model.as_ref().map_or(0, |m| m.version());
                (name.clone(), (version, t.held_out.generation()))
            })
            .collect()
    }

    /// The examples waiting for another judgement after a rejection.
    pub fn rejected_ids(&self) -> Vec<ExampleId> {
        self.rejections.lock().0.keys().copied().collect()
    }

    /// Buffered examples that count towards the update threshold: all but
    /// those rejected (see [`count_rejection`](Self::count_rejection)).
    /// Judged again at once, by nearly the same model on nearly the same
    /// window, they were rejected again for the same noise (a clean,
    /// shuffled news stream lost 150 of 3,823 correct articles so); they
    /// wait for fresh examples and are judged with them, by a model that has
    /// changed since.
    pub fn fresh_buffered(&self) -> usize {
        let buffer = self.buffer.lock();
        let rejected = self
            .rejections
            .lock()
            .0
            .keys()
            .filter(|id| buffer.contains(**id))
            .count();
        buffer.len() - rejected
    }

    /// The rejected examples that may not be judged again yet: their task's
    /// live model and window are those that rejected them, and the same
    /// experiment would be repeated (after a stream ended, each periodic
    /// check did, until three identical rejections quarantined them).
    fn waiting_ids(&self) -> std::collections::HashSet<ExampleId> {
        let judges = self.judges();
        let rejections = self.rejections.lock();
        rejections
            .0
            .keys()
            .copied()
            .filter(|id| rejections.waiting(*id, &judges))
            .collect()
    }

    /// The most valuable `n` buffered examples that may be taken into an
    /// update: all but those waiting (see [`waiting_ids`](Self::waiting_ids))
    /// and those of a task whose model cannot be created
    /// ([`unbuildable`](Self::unbuildable)).
    pub fn best_batch(&self, n: usize) -> Vec<TrainingExample> {
        let waiting = self.waiting_ids();
        let unbuildable = self.unbuildable.lock().clone();
        self.buffer
            .lock()
            .best_where(n, |e| !waiting.contains(&e.id) && !unbuildable.contains(&e.task_type))
    }

    /// The most valuable `n` buffered examples a forced update takes: those
    /// waiting too, but none of a task whose model cannot be created.
    pub fn forced_batch(&self, n: usize) -> Vec<TrainingExample> {
        let unbuildable = self.unbuildable.lock().clone();
        self.buffer
            .lock()
            .best_where(n, |e| !unbuildable.contains(&e.task_type))
    }

    /// The highest priority among the buffered examples that count towards
    /// an update (see [`fresh_buffered`](Self::fresh_buffered)): a rejected
    /// correction waits for fresh examples like any rejected example, rather
    /// than being judged again at the next check.
    pub fn fresh_max_priority(&self) -> Option<crate::base::Priority> {
        let buffer = self.buffer.lock();
        let rejections = self.rejections.lock();
        if rejections.0.is_empty() {
            return buffer.max_priority();
        }
        buffer
            .iter()
            .filter(|e| !rejections.0.contains_key(&e.id))
            .map(|e| e.correction_priority)
            .max()
    }

    /// Removes examples from the buffer and, in the same critical section,
    /// updates the counters with how many left, so the counters always add up.
    pub fn remove_examples(&self, ids: &[ExampleId], count: impl FnOnce(&mut AgentStats, usize)) -> usize {
        self.forget_strikes(ids);
        let mut buffer = self.buffer.lock();
        let n = buffer.remove(ids);
        count(&mut self.stats.lock(), n);
        n
    }

    /// Failures and rejections matter only while an example is buffered.
    fn forget_strikes(&self, ids: &[ExampleId]) {
        self.failures.lock().forget(ids);
        self.rejections.lock().forget(ids);
    }

    /// [`remove_examples`](Self::remove_examples) for the examples of a local
    /// update, which came from this buffer: one that a full buffer evicted
    /// while the update ran was decided by it all the same (the store records
    /// the update's state after the eviction), so it leaves the evicted count
    /// and `count` gets every id. Returns how many were still buffered.
    pub fn settle_examples(&self, ids: &[ExampleId], count: impl FnOnce(&mut AgentStats, usize)) -> usize {
        self.forget_strikes(ids);
        let mut buffer = self.buffer.lock();
        let n = buffer.remove(ids);
        let mut stats = self.stats.lock();
        let evicted_meanwhile = (ids.len() - n) as u64;
        stats.examples_evicted -= evicted_meanwhile.min(stats.examples_evicted);
        count(&mut stats, ids.len());
        n
    }

    /// Shows an error in the status without counting a failed update.
    pub fn note_error(&self, message: String) {
        self.stats.lock().last_error = Some(message);
    }

    /// Records an error for the status.
    pub fn record_error(&self, message: String) {
        let mut stats = self.stats.lock();
        stats.updates_failed += 1;
        stats.last_error = Some(message);
    }

    /// Adds the example to its task's held-out window; returns the example
    /// that left the full window, to be trained on.
    pub fn hold_out(&self, example: TrainingExample) -> Option<TrainingExample> {
        self.tasks.lock().get_mut(&example.task_type)?.held_out.push(example)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::{Target, TrainingExample};

    #[test]
    fn rejected_examples_do_not_count_towards_the_threshold_while_buffered() {
        let agent = AgentState::new("scout".into(), 10);
        for id in 0..4 {
            let example = TrainingExample::new(id, "scout", "news", format!("text {id}"), Target::Label("a".into()));
            let _ = agent.buffer.lock().insert(example);
        }
        assert_eq!(agent.fresh_buffered(), 4);
        let ids = [ExampleId(1), ExampleId(2)];
        assert!(agent.count_rejection(&ids, 3, "news", (0, 0)).is_empty());
        assert_eq!(agent.fresh_buffered(), 2);
        // Taken out of the buffer (trained, quarantined): counted nowhere.
        agent.buffer.lock().remove(&ids[..1]);
        assert_eq!(agent.fresh_buffered(), 2);
        agent.remove_examples(&ids[1..], |_, _| {});
        assert_eq!((agent.fresh_buffered(), agent.buffer.lock().len()), (2, 2));
    }
}
