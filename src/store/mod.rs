//! Persistence: every accepted example, every state change of an example,
//! every update record and every checkpoint, in PostgreSQL (through an r2d2
//! pool) or in an embedded SQLite file when no server is configured.
//!
//! Callers never wait for the database: they hand [`StoreOp`]s to the
//! [`StoreWriter`], whose own thread writes them in batches (COPY for
//! PostgreSQL, one transaction per batch for SQLite). While the database is
//! unreachable the writer keeps a bounded backlog in memory, then appends to an
//! fsynced spool file in the data folder, and replays both, in order, once the
//! database answers again. Replays are idempotent: an insert of an id already
//! stored does nothing, a state change sets the same state again.
//!
//! # Durability
//!
//! - After [`StoreWriter::flush`] returns `Ok`, every operation handed over
//!   before the call is in the database or in the fsynced spool file, which
//!   the next start replays before anything else: it survives a `kill -9` of
//!   the process (and, for PostgreSQL and SQLite with their default
//!   synchronous commit, a power loss).
//! - Operations handed over since the last flush are written continuously (the
//!   writer never waits to fill a batch), but a `kill -9` may lose those not yet
//!   committed or spooled: typically the last few milliseconds.
//!   [`StoreStatus::durable`] counts the operations that are safe.
//! - `shutdown` flushes everything.
//!
//! One schema, created and upgraded by the library's own migrations
//! ([`schema`]), the same in both backends apart from column types.

mod adopt;
mod decode;
pub(crate) mod postgres;
mod recovery;
mod retention;
pub mod schema;
mod settings;
mod spool;
mod sqlite;
mod writer;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::base::{ExampleId, LabelForm, ModelPerformance, Target, TargetKind, TrainingExample};
pub(crate) use decode::example_from_row;
pub(crate) use settings::default_pool_size;
pub use settings::{DatabaseConfig, RetentionConfig, StoreConfig};

pub use self::adopt::{adopt_original_database, Adoption, MOVED_PREFIX};
pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;
pub use self::writer::{StoreStatus, StoreWriter};

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (down, restarting, out of connections);
    /// the writer retries.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// The database refused an operation (a constraint, a type); retrying the
    /// same operation would fail again.
    #[error("the database refused the operation: {0}")]
    Refused(String),
    /// A stored row is not what this version of the library expects.
    #[error("a stored row cannot be read: {0}")]
    Corrupt(String),
    /// The schema was created by a newer version of the library.
    #[error(
        "the database schema is at version {found}, newer than the {supported} this library knows; upgrade the library"
    )]
    SchemaTooNew {
        /// The schema version found.
        found: i64,
        /// The newest this library knows.
        supported: i64,
    },
    /// The spool file could not be written or read.
    #[error("spool file {path}: {message}")]
    Spool {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A block of ids could not be reserved (see `ids`): no id is handed
    /// out that a restart might hand out again.
    #[error("id reservation file {path}: {message}")]
    IdReservation {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// `flush` did not finish in time.
    #[error("the store did not flush within {0:?}")]
    FlushTimeout(std::time::Duration),
    /// The writer was shut down.
    #[error("the store writer has been shut down")]
    Closed,
    /// At shutdown, operations that could be neither written nor spooled
    /// (the database and the spool's disk both failing) were dropped.
    #[error(
        "{operations} accepted operations could be neither written nor spooled and are lost (last error: {reason})"
    )]
    Lost {
        /// How many.
        operations: u64,
        /// The last error the writer saw.
        reason: String,
    },
}

impl StoreError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Whether an example trains models or judges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Trained on.
    Train,
    /// Held out for evaluation, never trained on.
    HeldOut,
}

/// Where an example is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleState {
    /// Waiting in its agent's buffer.
    Buffered,
    /// Trained by an accepted update (`update_id` names it).
    Trained,
    /// Trained by an update that was rolled back (`update_id` names it);
    /// written by earlier versions, which did not isolate the harmful part.
    Discarded,
    /// Left the full buffer for a more valuable example.
    Evicted,
    /// Failed updates on its own until it was given up.
    Failed,
    /// Isolated as harmful: the update that trained it (alone or with the
    /// other examples of its share of a rolled-back batch) was rolled back;
    /// `update_id` names that update. Never trained; kept for a person to
    /// look at.
    Quarantined,
    /// Of a task no model learns: kept for export as a data set.
    Kept,
    /// Held out: judges updates.
    Evaluation,
    /// A prediction waiting for a person's label (`update_id` unused).
    PendingReview,
    /// A prediction a person labelled (the label is a new correction row).
    Reviewed,
    /// A quarantined example whose review is settled: a person labelled it
    /// (the label is a new correction row) or a later example answered its
    /// input. Still counted as quarantined (as `reviewed` it left the
    /// counts at a restart), no longer offered.
    QuarantineReviewed,
    /// A prediction that left its task's full review queue for more useful
    /// ones, never labelled: not an example (its target is the model's own
    /// answer), so never trained, taken back or counted; retention deletes it.
    Unreviewed,
}

macro_rules! string_forms {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The form stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Reads the stored form.
            pub fn parse(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!(
                        "unknown {} {other:?}", stringify!($ty)
                    ))),
                }
            }
        }
    };
}

string_forms!(Split { Train => "train", HeldOut => "held_out" });
string_forms!(ExampleState {
    Buffered => "buffered",
    Trained => "trained",
    Discarded => "discarded",
    Quarantined => "quarantined",
    Evicted => "evicted",
    Failed => "failed",
    Kept => "kept",
    Evaluation => "evaluation",
    PendingReview => "pending_review",
    Reviewed => "reviewed",
    QuarantineReviewed => "quarantine_reviewed",
    Unreviewed => "unreviewed",
});

/// A saved checkpoint, as recorded in `model_checkpoints`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The agent.
    pub agent_name: String,
    /// The task.
    pub task_type: String,
    /// The model version it holds.
    pub version: u64,
    /// The checkpoint file.
    pub path: String,
    /// Whether the version was accepted (served).
    pub accepted: bool,
    /// The held-out metric before and after the update that made it.
    pub metrics: serde_json::Value,
    /// When it was written, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// A task as declared, or as its first label fixed it: what it learns and
/// how its labels are written (so answers go back in that form after a
/// restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The agent.
    pub agent_name: String,
    /// The task.
    pub task_type: String,
    /// What it learns.
    pub target_kind: TargetKind,
    /// How its labels are written, once known; a stored form is kept.
    pub label_form: Option<LabelForm>,
}

/// One change to persist. Operations are applied in the order they were
/// handed to the writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreOp {
    /// A newly accepted example.
    Insert {
        /// The example.
        example: TrainingExample,
        /// Train or held-out.
        split: Split,
        /// Its first state.
        state: ExampleState,
    },
    /// Examples moved to another state.
    SetState {
        /// The examples.
        ids: Vec<ExampleId>,
        /// Their new state.
        state: ExampleState,
        /// The update that trained them, if one did.
        update_id: Option<u64>,
    },
    /// Held-out examples that left a judging window, buffered to be
    /// trained. Only rows still judging change: with several instances,
    /// another one may have released and trained a row first.
    ReleaseHeldOut {
        /// The examples.
        ids: Vec<ExampleId>,
    },
    /// The record of an update (or a restore on request).
    Performance(ModelPerformance),
    /// A checkpoint written.
    Checkpoint(CheckpointRecord),
    /// A task declared, or its label form fixed.
    Task(TaskRecord),
    /// Examples that joined or left their task's replay memory.
    Replay {
        /// Now remembered.
        added: Vec<ExampleId>,
        /// No longer remembered.
        removed: Vec<ExampleId>,
    },
}

/// An example as stored, with its split, state and update.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredExample {
    /// The example.
    pub example: TrainingExample,
    /// Train or held-out.
    pub split: Split,
    /// Its current state.
    pub state: ExampleState,
    /// The update that trained it.
    pub update_id: Option<u64>,
}

/// How much of the stored state comes back at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryLimits {
    /// Buffered examples per agent (the most valuable); the rest become
    /// evicted. `None` leaves buffered rows where they are and takes none back:
    /// instances sharing a database claim them from the table instead.
    pub buffered_per_agent: Option<usize>,
    /// Most recent held-out examples per (agent, task); those beyond it
    /// become evicted (to be trained). `None` leaves held-out rows where
    /// they are and takes none back: instances sharing a database judge on
    /// the table's newest rows, other instances' windows among them, and
    /// the training lock's holder releases the older ones.
    pub held_out_per_task: Option<usize>,
    /// Most recent kept examples per agent.
    pub kept_per_agent: usize,
    /// Most recent performance records.
    pub history: usize,
    /// Most recent predictions waiting for review, per (agent, task).
    pub pending_per_task: usize,
}

/// What a restarted coordinator takes back from the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// Above every id (example or update) stored so far.
    pub next_id: u64,
    /// Examples still waiting for training, most valuable first per agent.
    pub buffered: Vec<TrainingExample>,
    /// Held-out examples, oldest first.
    pub held_out: Vec<TrainingExample>,
    /// Examples of tasks no model learns, oldest first.
    pub kept: Vec<TrainingExample>,
    /// Predictions waiting for review (the row's target is the prediction,
    /// its uncertainty 1 − confidence, its importance the usefulness), oldest first.
    pub pending_review: Vec<TrainingExample>,
    /// Quarantined examples (offered for review), oldest first, at most
    /// `pending_per_task` per (agent, task).
    pub quarantined: Vec<TrainingExample>,
    /// The most recent performance records, oldest first.
    pub history: Vec<ModelPerformance>,
    /// Performance records stored in all.
    pub history_total: u64,
    /// Buffered examples beyond the limits, now marked evicted.
    pub evicted: u64,
    /// The replay memories: their examples and each pool's count of examples offered.
    pub replay: Vec<ReplayMembers>,
    /// Per agent, how many rows are in each state that ends an example's
    /// way (trained, evicted, discarded, quarantined, failed): the status
    /// counters start from them, so they survive a restart.
    pub settled: Vec<(String, ExampleState, u64)>,
    /// The tasks declared or given a label form.
    pub tasks: Vec<TaskRecord>,
    /// Per agent, the updates kept and those rolled back (not a restore on
    /// request) in all runs: the status counters start from them.
    pub updates: Vec<(String, u64, u64)>,
}

/// Writes a [`TaskRecord`]; a form already stored is kept (the first label
/// fixed it). `$1`… are the agent, the task, the kind and the form.
pub(crate) const UPSERT_TASK_SQL: &str = "INSERT INTO onthefly_tasks (agent_name, task_type, target_kind, label_form) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (agent_name, task_type) DO UPDATE SET \
     label_form = COALESCE(onthefly_tasks.label_form, excluded.label_form)";

/// Reads every [`TaskRecord`] (the same in both stores).
pub(crate) const TASKS_SQL: &str = "SELECT agent_name, task_type, target_kind, label_form FROM onthefly_tasks";

/// A row of [`TASKS_SQL`], read.
pub(crate) fn task_from_stored(
    agent_name: String,
    task_type: String,
    kind: &str,
    form: Option<&str>,
) -> Result<TaskRecord, StoreError> {
    let target_kind = target_kind_from_stored(kind)?;
    let label_form = match form {
        None => None,
        Some(name) => Some(
            LabelForm::from_name(name)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown label form {name:?} of task {task_type:?}")))?,
        ),
    };
    Ok(TaskRecord {
        agent_name,
        task_type,
        target_kind,
        label_form,
    })
}

/// The query behind [`Recovered::settled`] (the same in both stores).
/// Rows retention deleted count too (`onthefly_retired`).
pub(crate) const SETTLED_COUNTS_SQL: &str = "SELECT agent_name, state, CAST(sum(n) AS BIGINT) FROM (\
     SELECT agent_name, state, count(*) AS n FROM training_examples \
     WHERE state IN ('trained', 'evicted', 'discarded', 'quarantined', 'quarantine_reviewed', 'failed', 'kept') GROUP BY agent_name, state \
     UNION ALL SELECT agent_name, state, retired AS n FROM onthefly_retired \
     WHERE state IN ('trained', 'evicted', 'discarded', 'quarantined', 'quarantine_reviewed', 'failed', 'kept')) AS counted \
     GROUP BY agent_name, state";

/// Per agent: updates kept, and rolled back (a restore on request is one that trained nothing).
pub(crate) const UPDATE_COUNTS_SQL: &str = "SELECT agent_name, \
     CAST(sum(CASE WHEN rollback_triggered THEN 0 ELSE 1 END) AS BIGINT), \
     CAST(sum(CASE WHEN rollback_triggered AND examples_trained > 0 THEN 1 ELSE 0 END) AS BIGINT) \
     FROM model_performance GROUP BY agent_name";

/// One row of [`SETTLED_COUNTS_SQL`], read.
pub(crate) fn settled_count(agent: String, state: &str, n: i64) -> Result<(String, ExampleState, u64), StoreError> {
    let n = u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("a count of {n} rows")))?;
    Ok((agent, ExampleState::parse(state)?, n))
}

/// The stored replay memory of one (agent, task).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayMembers {
    /// The agent.
    pub agent_name: String,
    /// The task.
    pub task_type: String,
    /// The remembered examples, by id.
    pub examples: Vec<TrainingExample>,
    /// Per pool (a label, or `None` for other targets), how many trained
    /// examples were offered to the memory: the task's trained examples.
    pub seen: std::collections::BTreeMap<Option<String>, u64>,
}

/// Groups remembered examples and trained counts into memories per (agent, task).
/// `counts` holds (agent, task, label or `None`, trained examples).
pub(crate) fn group_replay(
    examples: Vec<TrainingExample>,
    counts: Vec<(String, String, Option<String>, u64)>,
) -> Vec<ReplayMembers> {
    let mut by_task: std::collections::BTreeMap<(String, String), ReplayMembers> = Default::default();
    for example in examples {
        let key = (example.agent_name.clone(), example.task_type.clone());
        let members = by_task.entry(key).or_insert_with(|| ReplayMembers {
            agent_name: example.agent_name.clone(),
            task_type: example.task_type.clone(),
            ..ReplayMembers::default()
        });
        members.examples.push(example);
    }
    for (agent, task, pool, n) in counts {
        if let Some(members) = by_task.get_mut(&(agent, task)) {
            *members.seen.entry(pool).or_default() += n;
        }
    }
    by_task.into_values().collect()
}

/// The pool a stored target belongs to in the replay memory, from its kind
/// and stored JSON value (see [`crate::replay::pool_of`]).
pub(crate) fn replay_pool(kind: &str, value: &serde_json::Value) -> Option<String> {
    match kind {
        "label" => value.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Per (agent, task, target kind, label), the trained examples of tasks
/// with a replay memory, labels only for label targets (the replay memory's
/// counts of examples offered); `filter` narrows the rows (`t` is the
/// table). The same SQL in both backends.
pub(crate) fn replay_counts_sql(filter: &str) -> String {
    let pool = "CASE WHEN target_kind = 'label' THEN expected_output END";
    format!(
        "SELECT agent_name, task_type, target_kind, {pool}, count(*) FROM training_examples t \
         WHERE state = 'trained' AND {filter} AND EXISTS (SELECT 1 FROM training_examples r WHERE r.replay \
         AND r.agent_name = t.agent_name AND r.task_type = t.task_type) \
         GROUP BY agent_name, task_type, target_kind, {pool}"
    )
}

/// The connection pool's state (PostgreSQL only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Most connections the pool opens.
    pub max_size: u32,
    /// Connections open now.
    pub connections: u32,
    /// Open connections checked out.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Check-outs that found no idle connection and had to wait.
    pub waits: u64,
}

/// A place where examples, updates and checkpoints are kept.
///
/// Both backends apply [`schema`]'s migrations when opened.
pub trait ExampleStore: Send + Sync {
    /// `"postgres"` or `"sqlite"`.
    fn backend(&self) -> &'static str;

    /// Applies `ops` in order, in one transaction: all or none.
    fn write(&self, ops: &[StoreOp]) -> Result<(), StoreError>;

    /// Reads back what a restarted coordinator needs, marking buffered
    /// examples beyond the limits as evicted.
    fn recover(&self, limits: &RecoveryLimits) -> Result<Recovered, StoreError>;

    /// Every stored example of an agent (all agents with `None`), by id.
    fn examples(&self, agent: Option<&str>) -> Result<Vec<StoredExample>, StoreError>;

    /// Takes back up to `limit` of an agent's evicted examples, the most
    /// valuable first (the buffer's order), marking them buffered again:
    /// a trainer that caught up trains what a burst pushed out.
    fn reclaim_evicted(&self, agent: &str, limit: usize) -> Result<Vec<TrainingExample>, StoreError>;

    /// The recorded checkpoints of an (agent, task), by version.
    fn checkpoints(&self, agent: &str, task: &str) -> Result<Vec<CheckpointRecord>, StoreError>;

    /// Deletes the settled examples `policy` lets go (see
    /// [`RetentionConfig`]) as of `now_ms`; returns how many.
    fn retire(&self, policy: &RetentionConfig, now_ms: u64) -> Result<u64, StoreError>;

    /// The schema version the database is at.
    fn schema_version(&self) -> Result<i64, StoreError>;

    /// The connection pool's state, for backends with a pool.
    fn pool_stats(&self) -> Option<PoolStats>;
}

/// Opens the configured store: PostgreSQL when `config.database` is set,
/// otherwise the SQLite file `data_dir/onthefly.sqlite3`. Migrates the schema.
pub fn open(
    database: Option<&DatabaseConfig>,
    settings: &StoreConfig,
    data_dir: &std::path::Path,
) -> Result<Arc<dyn ExampleStore>, StoreError> {
    match database {
        Some(DatabaseConfig { url, pool_size }) => Ok(Arc::new(PostgresStore::connect(
            url,
            *pool_size,
            std::time::Duration::from_millis(settings.connect_timeout_ms),
        )?)),
        None => Ok(Arc::new(SqliteStore::open(&data_dir.join(SQLITE_FILE))?)),
    }
}

/// The embedded store's file name in the data folder.
pub const SQLITE_FILE: &str = "onthefly.sqlite3";

/// The columns of `training_examples`, in table order.
pub(crate) const EXAMPLE_COLUMNS: &str = "id, agent_name, task_type, input_text, target_kind, expected_output, \
     uncertainty_score, importance_score, source_url, \"timestamp\", user_feedback, correction_priority, \
     split, state, update_id";

/// The buffer's order (see [`crate::buffer`]) as SQL: priority, importance,
/// uncertainty, then the newest.
pub(crate) const BUFFER_ORDER: &str =
    "correction_priority DESC, importance_score DESC, uncertainty_score DESC, \"timestamp\" DESC, id DESC";

/// The columns of `model_performance`, in table order.
pub(crate) const PERFORMANCE_COLUMNS: &str = "update_id, agent_name, task_type, model_name, metric, \
     accuracy_before, accuracy_after, held_out_examples, examples_trained, train_loss, update_timestamp, \
     rollback_triggered, rollback_reason, model_version, duration_ms";

/// The stored text of a target kind.
pub(crate) fn target_kind_str(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Label => "label",
        TargetKind::Score => "score",
        TargetKind::Tags => "tags",
        TargetKind::Json => "json",
    }
}

/// A target kind from its stored text.
pub(crate) fn target_kind_from_stored(kind: &str) -> Result<TargetKind, StoreError> {
    [TargetKind::Label, TargetKind::Score, TargetKind::Tags, TargetKind::Json]
        .into_iter()
        .find(|k| target_kind_str(*k) == kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown target kind {kind:?}")))
}

/// Rebuilds a target from its stored kind and plain JSON value.
pub(crate) fn target_from_stored(kind: &str, value: serde_json::Value) -> Result<Target, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("expected_output of kind {kind:?} is not {what}: {value}"));
    Ok(match kind {
        "label" => Target::Label(value.as_str().ok_or_else(|| bad("a string"))?.to_string()),
        "score" => Target::Score(value.as_f64().ok_or_else(|| bad("a number"))?),
        "tags" => Target::Tags(
            value
                .as_array()
                .and_then(|items| items.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                .ok_or_else(|| bad("an array of strings"))?,
        ),
        "json" => Target::Json(value),
        other => return Err(StoreError::Corrupt(format!("unknown target kind {other:?}"))),
    })
}

/// A stored id (BIGINT) as the library's unsigned id.
pub(crate) fn id_from_stored(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative id {value}")))
}

/// The library's unsigned id as a BIGINT.
pub(crate) fn id_to_stored(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Refused(format!("id {value} does not fit a BIGINT")))
}
