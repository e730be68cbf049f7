//! The store's settings: the embedded SQLite or a PostgreSQL server, and
//! how the writer batches and retries (re-exported by [`crate::config`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How to reach PostgreSQL. The URL may carry a password, so `Debug` never
/// prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A `postgresql://user:password@host:port/db` URL or a libpq key=value string.
    pub url: String,
    /// Connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

pub(crate) fn default_pool_size() -> u32 {
    4
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Where and how the library persists what it receives (see [`crate::store`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Persist at all. Off, nothing is written or recovered (examples live in
    /// memory only); for throwaway experiments, not for production.
    pub enabled: bool,
    /// Most operations the writer sends to the database in one batch.
    pub batch_size: usize,
    /// Most operations held in memory while the database is unreachable;
    /// beyond it they go to the spool file.
    pub memory_backlog: usize,
    /// Longest wait between reconnection attempts, in milliseconds (the wait
    /// doubles from 50 ms up to this).
    pub retry_max_ms: u64,
    /// How long getting a PostgreSQL connection may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Which settled examples the store deletes, so that it does not grow
    /// without bound.
    pub retention: RetentionConfig,
}

/// Which settled examples the store deletes: those whose way has ended
/// (trained, discarded, failed, answered in review) and that no replay
/// memory holds. Buffered, held-out, evicted (waiting to be taken back),
/// kept (for export), quarantined and pending-review rows, and the
/// performance history, are never deleted.
/// The status counters survive the deletion (each agent's deleted rows are
/// counted in `onthefly_retired`).
///
/// The defaults keep a day: at the original system's 1,000 examples/s,
/// about 86 million rows (docs/operations.md gives the measured bytes per
/// row of each store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Settled examples older than this many hours go; `None` keeps them
    /// whatever their age.
    pub max_age_hours: Option<f64>,
    /// At most this many settled examples per agent are kept, the newest;
    /// `None` for no bound by count.
    pub max_settled_per_agent: Option<u64>,
    /// How often the writer deletes, in milliseconds.
    pub interval_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age_hours: Some(24.0),
            max_settled_per_agent: None,
            interval_ms: 600_000,
        }
    }
}

impl RetentionConfig {
    /// Whether it deletes anything at all.
    pub fn is_active(&self) -> bool {
        self.max_age_hours.is_some() || self.max_settled_per_agent.is_some()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            enabled: true,
            batch_size: 1000,
            memory_backlog: 10_000,
            retry_max_ms: 2_000,
            connect_timeout_ms: 5_000,
            retention: RetentionConfig::default(),
        }
    }
}
