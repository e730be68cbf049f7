//! The training status: the original's fields, plus per-agent detail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::base::ModelPerformance;
use crate::store::StoreStatus;

/// A snapshot of the whole training system (serialisable to JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingStatus {
    /// Whether any agent is updating right now.
    pub is_training: bool,
    /// Buffered examples per agent.
    pub buffer_sizes: BTreeMap<String, usize>,
    /// Buffered examples over all agents.
    pub total_examples: usize,
    /// Updates recorded (in all runs, with the store on).
    pub performance_history_size: usize,
    /// The last five updates, oldest first.
    pub recent_performance: Vec<ModelPerformance>,
    /// Buffered examples that trigger an update.
    pub update_threshold: usize,
    /// Largest tolerated held-out drop.
    pub rollback_threshold: f64,
    /// Where models train (`cpu` or `cuda:0`).
    pub device: String,
    /// Agents with an update queued or running.
    pub updates_in_flight: usize,
    /// Per-agent detail, by agent name.
    pub agents: BTreeMap<String, AgentStatus>,
    /// The store: backend, backlog, spool, pool, last error; `None` when
    /// persistence is off.
    pub store: Option<StoreStatus>,
    /// The instances sharing the database; `None` for a single instance.
    #[serde(default)]
    pub cluster: Option<ClusterStatus>,
}

/// The state of one agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Examples waiting to be trained.
    pub buffer_size: usize,
    /// Most examples the buffer holds.
    pub buffer_capacity: usize,
    /// Whether an update of this agent is running.
    pub is_training: bool,
    /// Predictions without a known answer waiting for a label (all tasks).
    pub pending_review: usize,
    /// The review queue of each task that has one.
    pub reviews: BTreeMap<String, crate::review::ReviewStatus>,
    /// Examples accepted (buffered or held out).
    pub examples_received: u64,
    /// Examples kept out of training for evaluation.
    pub examples_held_out: u64,
    /// Examples trained into an accepted update. Every accepted example is in
    /// exactly one of: the buffer, held out, trained, evicted, discarded,
    /// quarantined, failed, kept (the buffer and these counters are read
    /// together).
    pub examples_trained: u64,
    /// Examples that left a full buffer (or were not buffered) as the least valuable.
    pub examples_evicted: u64,
    /// Examples of updates that were rolled back and never isolated: only
    /// rows restored from a store written by an earlier version (rolled-back
    /// examples are now retrained in halves, and quarantined when harmful).
    pub examples_discarded: u64,
    /// Examples isolated as harmful: a rolled-back batch is retrained in
    /// halves, and the examples of a share whose update was rolled back again
    /// (alone, or with both halves of it rolled back) end here, never trained.
    pub examples_quarantined: u64,
    /// Evicted examples taken back from the store once the trainer caught up
    /// (once the trainer caught up); each is counted again under its new state,
    /// so this is not part of the sum the other counters make.
    pub examples_taken_back: u64,
    /// Examples given up after failing `MAX_UPDATE_ATTEMPTS` (3) updates in a row.
    pub examples_failed: u64,
    /// Examples of tasks no model learns, kept for export rather than trained.
    pub examples_kept: u64,
    /// Updates kept (in all runs: counted from the store at a restart; with
    /// several instances, the group's, and this instance's since).
    pub updates_accepted: u64,
    /// Updates discarded because the held-out metric dropped (or a value
    /// was not finite), in all runs.
    pub updates_rolled_back: u64,
    /// Updates that failed with an error, since this start (a failure
    /// leaves no record in the store).
    pub updates_failed: u64,
    /// When the last kept update finished, in milliseconds since the Unix epoch.
    pub last_update_ms: Option<u64>,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Per-task models, by task name.
    pub models: BTreeMap<String, ModelStatus>,
}

/// The model of one (agent, task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStatus {
    /// The kind of target the task learns.
    pub target_kind: String,
    /// The model's kind, or `None` when no built-in model learns this target kind.
    pub model_kind: Option<String>,
    /// Version of the live model: 0 before the first accepted update.
    pub version: u64,
    /// Labels a classifier knows.
    pub labels: Vec<String>,
    /// Held-out examples in the evaluation window.
    pub held_out_window: usize,
    /// Learned examples in the task's replay memory (see [`crate::replay`]).
    pub replay_examples: usize,
}

/// Instances sharing the database, as this instance last saw them (refreshed
/// every `poll_interval_ms`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This instance.
    pub instance_id: String,
    /// Whether this instance's listening connection is up.
    pub connected: bool,
    /// When the picture below was taken, in milliseconds since the Unix
    /// epoch; `None` before the first refresh.
    pub refreshed_ms: Option<u64>,
    /// Instances with a recent heartbeat, by name.
    pub instances: BTreeMap<String, InstanceStatus>,
    /// Per agent, per task: the lock holder and the version each instance serves.
    pub agents: BTreeMap<String, BTreeMap<String, ClusterTaskStatus>>,
}

/// One instance of the group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Its last heartbeat, in milliseconds since the Unix epoch.
    pub heartbeat_ms: u64,
    /// The version it serves, by `agent/task`.
    pub serving: BTreeMap<String, u64>,
}

/// One (agent, task) across the group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterTaskStatus {
    /// The newest published version.
    pub published_version: u64,
    /// The instance holding the training lock, if one does.
    pub lock_holder: Option<String>,
    /// The version each instance serves, by instance.
    pub serving: BTreeMap<String, u64>,
    /// Examples waiting in the shared table.
    pub buffered: u64,
    /// Examples a full buffer pushed out, waiting in the shared table to be
    /// taken back (by any instance).
    pub evicted: u64,
}
