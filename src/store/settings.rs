//! The store's settings: the embedded SQLite or a PostgreSQL server, and
//! how the writer batches and retries (re-exported by [`crate::config`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How to reach PostgreSQL. The URL may carry a password, so `Debug` never
/// prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            enabled: true,
            batch_size: 1000,
            memory_backlog: 10_000,
            retry_max_ms: 2_000,
            connect_timeout_ms: 5_000,
        }
    }
}
