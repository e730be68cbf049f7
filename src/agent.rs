//! The state the library keeps for one agent: its priority buffer, its tasks
//! (target kind, held-out window, live model), the predictions waiting for a
//! label, and its counters. Every field has its own lock, held briefly; no lock
//! is held while a model trains.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use crate::buffer::PriorityBuffer;
use crate::eval::HeldOutWindow;
use crate::example::{TargetKind, TrainingExample};
use crate::feedback::PredictionFeedback;
use crate::models::{AgentModel, ModelKind};

/// The model currently serving one (agent, task), and its version.
pub(crate) struct LiveModel {
    pub kind: ModelKind,
    pub model: Mutex<Box<dyn AgentModel>>,
    /// 0 for a freshly initialised model; +1 per accepted update.
    pub version: AtomicU64,
}

impl LiveModel {
    pub fn new(model: Box<dyn AgentModel>) -> LiveModel {
        LiveModel {
            kind: model.kind(),
            model: Mutex::new(model),
            version: AtomicU64::new(0),
        }
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// One task of an agent.
pub(crate) struct TaskState {
    pub target_kind: TargetKind,
    pub held_out: HeldOutWindow,
    pub model: Option<Arc<LiveModel>>,
}

/// Counters and last events of an agent, for the status.
#[derive(Debug, Default, Clone)]
pub(crate) struct AgentStats {
    pub examples_received: u64,
    pub examples_held_out: u64,
    pub examples_trained: u64,
    pub examples_evicted: u64,
    pub updates_accepted: u64,
    pub updates_rolled_back: u64,
    pub updates_failed: u64,
    pub last_update: Option<SystemTime>,
    pub last_error: Option<String>,
}

pub(crate) struct AgentState {
    pub name: String,
    pub buffer: Mutex<PriorityBuffer>,
    pub tasks: Mutex<BTreeMap<String, TaskState>>,
    pub pending_review: Mutex<VecDeque<PredictionFeedback>>,
    pub stats: Mutex<AgentStats>,
    /// Set while an update of this agent is queued or running, so at most one
    /// is in flight.
    pub scheduled: AtomicBool,
    /// Set while an update of this agent is running.
    pub updating: AtomicBool,
}

impl AgentState {
    pub fn new(name: String, buffer_capacity: usize) -> AgentState {
        AgentState {
            name,
            buffer: Mutex::new(PriorityBuffer::new(buffer_capacity)),
            tasks: Mutex::new(BTreeMap::new()),
            pending_review: Mutex::new(VecDeque::new()),
            stats: Mutex::new(AgentStats::default()),
            scheduled: AtomicBool::new(false),
            updating: AtomicBool::new(false),
        }
    }

    /// The live model of a task, if one exists.
    pub fn live_model(&self, task: &str) -> Option<Arc<LiveModel>> {
        self.tasks.lock().get(task).and_then(|t| t.model.clone())
    }

    /// Records an error for the status.
    pub fn record_error(&self, message: String) {
        let mut stats = self.stats.lock();
        stats.updates_failed += 1;
        stats.last_error = Some(message);
    }

    /// Buffered examples of tasks no built-in model learns (they wait in the
    /// buffer and are not counted towards the update threshold).
    pub fn trainable_len(&self) -> usize {
        let untrainable: Vec<String> = self
            .tasks
            .lock()
            .iter()
            .filter(|(_, t)| ModelKind::for_target(t.target_kind).is_none())
            .map(|(name, _)| name.clone())
            .collect();
        let buffer = self.buffer.lock();
        if untrainable.is_empty() {
            return buffer.len();
        }
        buffer.iter().filter(|e| !untrainable.contains(&e.task_type)).count()
    }

    /// Adds a copy of the example to its task's held-out window.
    pub fn hold_out(&self, example: TrainingExample) {
        if let Some(task) = self.tasks.lock().get_mut(&example.task_type) {
            task.held_out.push(example);
        }
    }
}
