//! A database that one instance trained on, joined by a group: each task's
//! version that instance served becomes the group's first published one, so
//! the group continues the lineage instead of starting from an untrained
//! model.

use crate::checkpoint;
use crate::cluster::{Cluster, TaskSession};
use crate::error::Error;
use crate::runtime::Shared;
use crate::store::id_from_stored;
use crate::store::postgres::classify;

/// The tasks with accepted versions, all recorded by a single instance (no
/// row names an instance): a lineage the group has not taken over.
const UNPUBLISHED_LINEAGES_SQL: &str = "SELECT agent_name, task_type FROM model_checkpoints \
     WHERE accepted GROUP BY agent_name, task_type HAVING bool_and(instance_id IS NULL)";

/// What [`publish_earlier_lineage`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lineage {
    /// No earlier lineage to take over (none, or one is published).
    None,
    /// This version was published from this instance's files.
    Published(u64),
    /// There is one, newest `u64`, and this instance has none of its files.
    NotHere(u64),
}

/// At start-up: for each task with an earlier lineage whose training lock
/// this instance gets, publishes it (see [`publish_earlier_lineage`]). A
/// task it cannot take over now is taken over by its next update.
pub(crate) fn publish_earlier_lineages(shared: &Shared, cluster: &Cluster) -> Result<(), Error> {
    let rows = cluster
        .connect()?
        .query(UNPUBLISHED_LINEAGES_SQL, &[])
        .map_err(classify)?;
    for row in rows {
        let (agent, task): (String, String) = (row.get(0), row.get(1));
        let Some(mut session) = TaskSession::try_lock(cluster, &agent, &task)? else {
            continue; // Another instance is at it.
        };
        match publish_earlier_lineage(shared, cluster, &mut session, &agent, &task) {
            Ok(Lineage::NotHere(version)) => shared.agent_or_create(&agent).note_error(not_here(&task, version)),
            Ok(_) => {}
            Err(e) => shared.agent_or_create(&agent).note_error(format!(
                "version of task {task:?} trained before the group not published: {e}"
            )),
        }
    }
    Ok(())
}

/// Why a task with an earlier lineage does not train here.
pub(crate) fn not_here(task: &str, version: u64) -> String {
    format!(
        "task {task:?} has versions up to {version} trained by one instance before this group, and their \
         checkpoints are not in this instance's data_dir: it does not train the task until the instance \
         that has them publishes one (or force_update_agent starts a new lineage)"
    )
}

/// With the task's training lock held (`session`), and no version of it
/// published: publishes the version of the earlier lineage this instance
/// served (its `current`; a person may have restored an older one), else
/// the newest one it has a file of, in full with its EWC state.
pub(crate) fn publish_earlier_lineage(
    shared: &Shared,
    cluster: &Cluster,
    session: &mut TaskSession,
    agent: &str,
    task: &str,
) -> Result<Lineage, Error> {
    let versions: Vec<u64> = session
        .client()
        .query(
            "SELECT version FROM model_checkpoints WHERE agent_name = $1 AND task_type = $2 AND accepted \
             AND instance_id IS NULL AND NOT EXISTS (SELECT 1 FROM model_checkpoints \
               WHERE agent_name = $1 AND task_type = $2 AND accepted AND instance_id IS NOT NULL) \
             ORDER BY version DESC",
            &[&agent, &task],
        )
        .map_err(classify)?
        .iter()
        .map(|r| id_from_stored(r.get(0)))
        .collect::<Result<_, _>>()?;
    let Some(&newest) = versions.first() else {
        return Ok(Lineage::None);
    };
    let dir = shared.config.model_dir(agent).join(task);
    let served = checkpoint::current(&dir).filter(|v| versions.contains(v));
    let version = served
        .into_iter()
        .chain(versions.iter().copied())
        .find(|v| checkpoint::file_of(&dir, *v).is_some());
    let Some(version) = version else {
        return Ok(Lineage::NotHere(newest));
    };
    let file = checkpoint::file_of(&dir, version).unwrap_or_else(|| checkpoint::path_of(&dir, version));
    let full = match checkpoint::is_delta(&file) {
        true => checkpoint::write_full_of(&dir, &checkpoint::load(&dir, version)?)?,
        false => file,
    };
    let bytes = std::fs::read(&full).map_err(|e| Error::Io {
        path: full.display().to_string(),
        message: e.to_string(),
    })?;
    let (path, data) = match &cluster.config.shared_checkpoint_dir {
        None => (full.display().to_string(), Some(bytes)),
        Some(shared_dir) => {
            let folder = shared_dir.join(agent).join(task);
            // Named by the version alone: no update published it.
            let target = folder.join(full.file_name().unwrap_or_default());
            super::write_atomically(&folder, &target, &bytes)?;
            (target.display().to_string(), None)
        }
    };
    session.publish_earlier(cluster, (agent, task, version), &path, data)?;
    tracing::info!(
        agent,
        task,
        version,
        "a single instance's version published for the group"
    );
    Ok(Lineage::Published(version))
}
