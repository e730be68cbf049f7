//! The checkpoint versions a task keeps, with how each was judged, so a
//! person can choose one for [`Coordinator::rollback_model`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::check_name;
use super::Coordinator;
use crate::checkpoint;
use crate::error::{Error, Result};

/// One kept checkpoint version of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The version, as `rollback_model` takes it.
    pub version: u64,
    /// Whether this version serves now.
    pub serving: bool,
    /// The held-out metric of the update that made it (`accuracy`,
    /// `mean_absolute_error`, `entity_f1`), when the store recorded it.
    pub metric: Option<String>,
    /// That metric before the update.
    pub before: Option<f64>,
    /// That metric after it (the version's own).
    pub after: Option<f64>,
    /// When it was written, in milliseconds since the Unix epoch, when the
    /// store recorded it.
    pub created_ms: Option<u64>,
}

impl Coordinator {
    /// The checkpoint versions of (agent, task) kept on disk, oldest first,
    /// each with the judgement of the update that made it and its time
    /// (from the store, when one is configured).
    pub fn list_checkpoints(&self, agent_name: &str, task_type: &str) -> Result<Vec<CheckpointInfo>> {
        self.ensure_running()?;
        // The names become a folder's path: "../scout/news" listed another
        // agent's versions as this one's, an absolute path any folder's.
        let max = self.shared.config.max_name_bytes;
        check_name("agent_name", agent_name, max)?;
        check_name("task_type", task_type, max)?;
        let agent = self.agent(agent_name)?;
        let serving = agent.live_model(task_type).map(|live| live.version());
        let dir = self.shared.config.model_dir(agent_name).join(task_type);
        let versions = checkpoint::versions(&dir)?;
        let recorded: BTreeMap<u64, crate::store::CheckpointRecord> = match self.store() {
            Some(store) => {
                // The records of the newest versions may still be on their way.
                self.flush(std::time::Duration::from_secs(60))?;
                store
                    .checkpoints(agent_name, task_type)
                    .map_err(Error::from)?
                    .into_iter()
                    .map(|record| (record.version, record))
                    .collect()
            }
            None => BTreeMap::new(),
        };
        Ok(versions
            .into_iter()
            .map(|version| {
                let record = recorded.get(&version);
                let metrics = record.map(|r| &r.metrics);
                CheckpointInfo {
                    version,
                    serving: serving == Some(version),
                    metric: metrics.and_then(|m| m["metric"].as_str()).map(str::to_string),
                    before: metrics.and_then(|m| m["before"].as_f64()),
                    after: metrics.and_then(|m| m["after"].as_f64()),
                    created_ms: record.map(|r| r.created_ms),
                }
            })
            .collect())
    }
}
