//! The settings of several instances sharing one PostgreSQL database
//! (re-exported by [`crate::config`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Several instances sharing one PostgreSQL database (see [`crate::cluster`]).
/// Every instance that shares the database must run with a `ClusterConfig`:
/// ids then come from blocks the database hands out, training of an
/// (agent, task) is serialised by an advisory lock, and accepted versions are
/// published in `model_checkpoints` and announced with `NOTIFY`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This instance's name, unique among the instances running at once
    /// (1 to 40 characters: letters, digits, `_`, `-`, `.`). It is shown in
    /// the status and in PostgreSQL's `application_name`.
    pub instance_id: String,
    /// Where published checkpoints live: `None` puts their bytes in the
    /// database (works everywhere, costs the checkpoint's size per accepted
    /// update in the database); a folder every instance mounts (shared
    /// storage) keeps only the path in the database.
    pub shared_checkpoint_dir: Option<PathBuf>,
    /// How often, in milliseconds, an instance checks for a newer published
    /// version even without a notification, refreshes its heartbeat and the
    /// cluster part of the status. A lost notification delays a new version
    /// by at most this long.
    pub poll_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            instance_id: String::new(),
            shared_checkpoint_dir: None,
            poll_interval_ms: 2_000,
        }
    }
}
