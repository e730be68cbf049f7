//! A database that one instance trained on, joined by a group: each task's
//! newest accepted version becomes the group's first published one, so the
//! group continues the lineage instead of starting from an untrained model.

use crate::checkpoint;
use crate::cluster::{Cluster, TaskSession};
use crate::error::Error;
use crate::runtime::Shared;
use crate::store::id_from_stored;
use crate::store::postgres::classify;

/// The tasks whose accepted versions were all recorded by a single
/// instance (no row names an instance), with the newest of them.
const UNPUBLISHED_LINEAGES_SQL: &str = "SELECT agent_name, task_type, max(version) FROM model_checkpoints \
     WHERE accepted GROUP BY agent_name, task_type HAVING bool_and(instance_id IS NULL)";

/// Publishes, for each task with accepted versions but none published, the
/// newest one from this instance's `data_dir` (in full, with its EWC state).
/// A task whose file this instance does not have is named in its agent's
/// `last_error`: the instance that trained it publishes it when it joins.
pub(crate) fn publish_earlier_lineages(shared: &Shared, cluster: &Cluster) -> Result<(), Error> {
    let rows = cluster
        .connect()?
        .query(UNPUBLISHED_LINEAGES_SQL, &[])
        .map_err(classify)?;
    for row in rows {
        let (agent, task): (String, String) = (row.get(0), row.get(1));
        let version = id_from_stored(row.get::<_, i64>(2))?;
        let dir = shared.config.model_dir(&agent).join(&task);
        let Some(file) = checkpoint::file_of(&dir, version) else {
            shared.agent_or_create(&agent).record_error(format!(
                "version {version} of task {task:?} was trained before this group of instances and its \
                 checkpoint is not under {}: the instance that has it publishes it when it starts in the \
                 group; until then updates of the task start from an untrained model",
                dir.display()
            ));
            continue;
        };
        let Some(mut session) = TaskSession::try_lock(cluster, &agent, &task)? else {
            continue; // Another instance is at it.
        };
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
                let folder = shared_dir.join(&agent).join(&task);
                // Named by the version alone: no update published it.
                let target = folder.join(full.file_name().unwrap_or_default());
                super::write_atomically(&folder, &target, &bytes)?;
                (target.display().to_string(), None)
            }
        };
        match session.publish_earlier(cluster, (&agent, &task, version), &path, data) {
            Ok(()) => tracing::info!(
                agent,
                task,
                version,
                "a single instance's version published for the group"
            ),
            // Published meanwhile by another instance joining at the same time.
            Err(crate::store::StoreError::Refused(why)) => tracing::debug!(agent, task, why, "not published"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
