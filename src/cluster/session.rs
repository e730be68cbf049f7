//! One instance's turn at training one (agent, task): the advisory lock, the
//! claimed examples, the shared held-out window, and the publication of the
//! outcome, all on one connection of its own.

use postgres::Client;

use super::{lock_key, Cluster, CHANNEL};
use crate::base::{ExampleId, ModelPerformance, TargetKind, TrainingExample};
use crate::replay::ReplayChange;
use crate::store::example_from_row;
use crate::store::postgres::{classify, insert_performance, set_replay};
use crate::store::{
    id_from_stored, id_to_stored, target_kind_str, CheckpointRecord, ExampleState, StoreError, EXAMPLE_COLUMNS,
};

/// What one finished update writes, in one transaction with its claim.
pub(crate) struct Publication<'a> {
    /// The examples it trained.
    pub ids: &'a [ExampleId],
    /// `trained` (accepted) or `discarded` (rolled back).
    pub state: ExampleState,
    /// The update record.
    pub record: &'a ModelPerformance,
    /// The accepted version's checkpoint: its record, and its bytes when
    /// checkpoints live in the database.
    pub checkpoint: Option<(CheckpointRecord, Option<Vec<u8>>)>,
    /// What the accepted update changed in the task's replay memory.
    pub replay: &'a ReplayChange,
}

/// The newest published version of the (agent, task) bound to `$4` and
/// `$5`, 0 when none.
const PUBLISHED_SQL: &str = "SELECT COALESCE(max(version), 0) FROM model_checkpoints \
     WHERE agent_name = $4 AND task_type = $5 AND accepted AND instance_id IS NOT NULL";

/// The training lock of one (agent, task), held while this value lives.
pub(crate) struct TaskSession {
    client: Client,
    /// The advisory lock's key, unlocked explicitly when the session ends.
    key: i64,
    in_transaction: bool,
    /// The highest version number the task has in the database (published
    /// or recorded by an earlier single instance): the next is one more.
    highest: u64,
}

impl TaskSession {
    /// Takes the (agent, task)'s lock on a new connection; `None` when another
    /// instance holds it.
    pub fn try_lock(cluster: &Cluster, agent: &str, task: &str) -> Result<Option<TaskSession>, StoreError> {
        let mut client = cluster.connect()?;
        let key = lock_key(agent, task);
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(classify)?
            .get(0);
        if !locked {
            return Ok(None);
        }
        // The claim stays open while the model trains: a server-wide idle
        // timeout shorter than an update would cut every update.
        client
            .batch_execute("SET idle_in_transaction_session_timeout = 0")
            .map_err(classify)?;
        let highest: Option<i64> = client
            .query_one(
                "SELECT max(version) FROM model_checkpoints WHERE agent_name = $1 AND task_type = $2",
                &[&agent, &task],
            )
            .map_err(classify)?
            .get(0);
        Ok(Some(TaskSession {
            client,
            key,
            in_transaction: false,
            highest: highest.map_or(0, |v| v.max(0) as u64),
        }))
    }

    /// The connection, for reading published checkpoints.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The number the next accepted version of the task gets.
    pub fn next_version(&self) -> u64 {
        self.highest + 1
    }

    /// Claims buffered examples for one update: the most valuable `limit`
    /// ones (the local buffer's order: priority, importance, uncertainty,
    /// then the newest, by arrival time across instances), or (`only`) those of a smaller retry that are still buffered.
    /// Rows another session holds are skipped. The claim lasts until
    /// [`publish`](Self::publish) or [`release`](Self::release).
    pub fn claim(
        &mut self,
        agent: &str,
        task: &str,
        kind: TargetKind,
        only: Option<&[ExampleId]>,
        limit: usize,
    ) -> Result<Vec<TrainingExample>, StoreError> {
        self.claim_where(agent, task, kind, only, limit, (None, &[]))
    }

    /// [`claim`](Self::claim) of an update's first batch: never one of the
    /// rows it is judged on (`judging`: another instance may release one
    /// meanwhile), nor, with `skip_rejected_at`, the rows that published
    /// version rejected (see [`publish`](Self::publish)): judged again by
    /// the same model they would be rejected again, and three such
    /// verdicts quarantine correct examples.
    pub fn claim_batch(
        &mut self,
        (agent, task, kind): (&str, &str, TargetKind),
        limit: usize,
        skip_rejected_at: Option<u64>,
        judging: &[ExampleId],
    ) -> Result<Vec<TrainingExample>, StoreError> {
        self.claim_where(agent, task, kind, None, limit, (skip_rejected_at, judging))
    }

    fn claim_where(
        &mut self,
        agent: &str,
        task: &str,
        kind: TargetKind,
        only: Option<&[ExampleId]>,
        limit: usize,
        (skip_rejected_at, judging): (Option<u64>, &[ExampleId]),
    ) -> Result<Vec<TrainingExample>, StoreError> {
        let kind = target_kind_str(kind);
        let skip = skip_rejected_at.map(id_to_stored).transpose()?;
        let judging = stored_ids(judging)?;
        self.release();
        self.client.batch_execute("BEGIN").map_err(classify)?;
        self.in_transaction = true;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match only {
            None => self.client.query(
                &format!(
                    "SELECT {EXAMPLE_COLUMNS} FROM training_examples \
                     WHERE agent_name = $1 AND task_type = $2 AND state = 'buffered' AND target_kind = $4 \
                     AND ($5::bigint IS NULL OR rejected_at IS DISTINCT FROM $5::bigint) \
                     AND NOT (id = ANY($6)) \
                     ORDER BY correction_priority DESC, importance_score DESC, uncertainty_score DESC, \
                     \"timestamp\" DESC, id DESC LIMIT $3 \
                     FOR UPDATE SKIP LOCKED"
                ),
                &[&agent, &task, &limit, &kind, &skip, &judging],
            ),
            Some(ids) => {
                let ids = stored_ids(ids)?;
                self.client.query(
                    &format!(
                        "SELECT {EXAMPLE_COLUMNS} FROM training_examples \
                         WHERE id = ANY($1) AND state = 'buffered' AND target_kind = $2 ORDER BY id \
                         FOR UPDATE SKIP LOCKED"
                    ),
                    &[&ids, &kind],
                )
            }
        }
        .map_err(classify)?;
        rows.iter()
            .map(|row| example_from_row(row).map(|s| s.example))
            .collect()
    }

    /// The task's newest `window` held-out examples, whichever instance
    /// received them, oldest first.
    pub fn held_out(&mut self, agent: &str, task: &str, window: usize) -> Result<Vec<TrainingExample>, StoreError> {
        let window = i64::try_from(window).unwrap_or(i64::MAX);
        let mut examples = self
            .client
            .query(
                &format!(
                    "SELECT {EXAMPLE_COLUMNS} FROM training_examples \
                     WHERE agent_name = $1 AND task_type = $2 AND state = 'evaluation' \
                     ORDER BY \"timestamp\" DESC, id DESC LIMIT $3"
                ),
                &[&agent, &task, &window],
            )
            .map_err(classify)?
            .iter()
            .map(|row| example_from_row(row).map(|s| s.example))
            .collect::<Result<Vec<_>, _>>()?;
        examples.reverse();
        Ok(examples)
    }

    /// Buffers, to be trained, the task's held-out rows beyond its newest
    /// `window` (the ones [`held_out`](Self::held_out) judges on); returns
    /// how many. Each instance releases the rows that leave its own window,
    /// but the rows of an instance that stopped or restarted would judge
    /// nothing and never be trained. Rows another session holds (a store
    /// writer's batch) are left for the next update.
    pub fn release_beyond_window(&mut self, agent: &str, task: &str, window: usize) -> Result<u64, StoreError> {
        let window = i64::try_from(window).unwrap_or(i64::MAX);
        self.client
            .execute(
                "UPDATE training_examples SET state = 'buffered' WHERE id IN ( \
                     SELECT id FROM training_examples \
                     WHERE agent_name = $1 AND task_type = $2 AND state = 'evaluation' AND id NOT IN ( \
                         SELECT id FROM training_examples \
                         WHERE agent_name = $1 AND task_type = $2 AND state = 'evaluation' \
                         ORDER BY \"timestamp\" DESC, id DESC LIMIT $3) \
                     ORDER BY id FOR UPDATE SKIP LOCKED)",
                &[&agent, &task, &window],
            )
            .map_err(classify)
    }

    /// Publishes `version`, accepted by one instance before the group
    /// existed (its row has no instance): the row gets this instance, the
    /// file's place (`path`) and, unless checkpoints live in a shared
    /// folder, its bytes; announced on commit. Refused when the task has a
    /// published version already.
    pub fn publish_earlier(
        &mut self,
        cluster: &Cluster,
        (agent, task, version): (&str, &str, u64),
        path: &str,
        data: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        self.release();
        let stored = id_to_stored(version)?;
        let mut tx = self.client.transaction().map_err(classify)?;
        let published = tx
            .execute(
                "UPDATE model_checkpoints SET instance_id = $4, path = $5, data = $6 \
                 WHERE agent_name = $1 AND task_type = $2 AND version = $3 AND accepted AND instance_id IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM model_checkpoints WHERE agent_name = $1 AND task_type = $2 \
                                 AND accepted AND instance_id IS NOT NULL)",
                &[&agent, &task, &stored, &cluster.instance_id(), &path, &data],
            )
            .map_err(classify)?;
        if published != 1 {
            return Err(StoreError::Refused(format!(
                "version {version} of {agent}/{task} is not an unpublished accepted version of a task with none published"
            )));
        }
        let payload = serde_json::json!({
            "agent": agent,
            "task": task,
            "version": version,
            "instance": cluster.instance_id(),
        })
        .to_string();
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .map_err(classify)?;
        tx.commit().map_err(classify)
    }

    /// Writes the update's outcome with its claim and announces an accepted
    /// version, all in one commit: the other instances see the new version,
    /// its record, its examples' new state and its replay memory together,
    /// or none of them.
    /// Returns the oldest version whose checkpoint is still needed (older
    /// ones keep their row, not their bytes; 0 when nothing was dropped).
    pub fn publish(&mut self, cluster: &Cluster, p: &Publication<'_>) -> Result<u64, StoreError> {
        if !self.in_transaction {
            return Err(StoreError::Refused("publish without a claim".into()));
        }
        let mut kept_from = 0;
        let ids = stored_ids(p.ids)?;
        let update_id = id_to_stored(p.record.update_id)?;
        // Buffered again (rolled back): marked with the published version
        // that rejected them, which every instance's claims and triggers
        // respect until a newer version is published.
        self.client
            .execute(
                &format!(
                    "UPDATE training_examples SET state = $1, update_id = $2, rejected_at = CASE \
                     WHEN $1 = 'buffered' THEN ({PUBLISHED_SQL}) ELSE rejected_at END WHERE id = ANY($3)"
                ),
                &[
                    &p.state.as_str(),
                    &update_id,
                    &ids,
                    &p.record.agent_name,
                    &p.record.task_type,
                ],
            )
            .map_err(classify)?;
        insert_performance(&mut self.client, p.record)?;
        set_replay(&mut self.client, &p.replay.added, &p.replay.removed)?;
        if let Some((c, bytes)) = &p.checkpoint {
            let version = id_to_stored(c.version)?;
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(c.created_ms);
            // A plain INSERT: two instances publishing the same version would
            // be a broken lock, and must fail loudly rather than overwrite.
            self.client
                .execute(
                    "INSERT INTO model_checkpoints \
                     (agent_name, task_type, version, path, accepted, metrics, created_at, data, instance_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &c.agent_name,
                        &c.task_type,
                        &version,
                        &c.path,
                        &c.accepted,
                        &c.metrics,
                        &at,
                        bytes,
                        &cluster.instance_id(),
                    ],
                )
                .map_err(classify)?;
            // Older versions keep their row (the lineage) but not their bytes,
            // except the full version (and the deltas after it) that the
            // oldest kept version is loaded from.
            let keep = i64::try_from(cluster.checkpoints_kept).unwrap_or(i64::MAX);
            let kept: i64 = self
                .client
                .query_one(
                    "SELECT COALESCE((SELECT max(version) FROM model_checkpoints \
                       WHERE agent_name = $1 AND task_type = $2 AND path NOT LIKE '%.delta.ckpt' \
                       AND version <= $3::bigint - $4::bigint + 1), 0)",
                    &[&c.agent_name, &c.task_type, &version, &keep],
                )
                .map_err(classify)?
                .get(0);
            kept_from = id_from_stored(kept)?;
            self.client
                .execute(
                    "UPDATE model_checkpoints SET data = NULL WHERE agent_name = $1 AND task_type = $2 \
                     AND data IS NOT NULL AND version < $3",
                    &[&c.agent_name, &c.task_type, &kept],
                )
                .map_err(classify)?;
            let payload = serde_json::json!({
                "agent": c.agent_name,
                "task": c.task_type,
                "version": c.version,
                "instance": cluster.instance_id(),
            })
            .to_string();
            self.client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .map_err(classify)?;
        }
        self.client.batch_execute("COMMIT").map_err(classify)?;
        self.in_transaction = false;
        if let Some((c, _)) = &p.checkpoint {
            self.highest = self.highest.max(c.version);
        }
        Ok(kept_from)
    }

    /// Marks examples that failed too often as `failed`, in a transaction of
    /// their own.
    pub fn mark_failed(&mut self, ids: &[ExampleId]) -> Result<(), StoreError> {
        self.release();
        let ids = stored_ids(ids)?;
        self.client
            .execute(
                "UPDATE training_examples SET state = 'failed' WHERE id = ANY($1) AND state = 'buffered'",
                &[&ids],
            )
            .map_err(classify)?;
        Ok(())
    }

    /// Marks buffered examples quarantined (found harmful), with the
    /// rolled-back update that last trained them; ends any claim first.
    pub fn mark_quarantined(&mut self, ids: &[ExampleId], update_id: u64) -> Result<(), StoreError> {
        self.release();
        let ids = stored_ids(ids)?;
        let update_id = id_to_stored(update_id)?;
        self.client
            .execute(
                "UPDATE training_examples SET state = 'quarantined', update_id = $2 \
                 WHERE id = ANY($1) AND state = 'buffered'",
                &[&ids, &update_id],
            )
            .map_err(classify)?;
        Ok(())
    }

    /// Gives the claimed examples back (they are buffered again).
    pub fn release(&mut self) {
        if self.in_transaction {
            self.in_transaction = false;
            if let Err(e) = self.client.batch_execute("ROLLBACK") {
                // The connection is broken: its transaction is gone with it.
                tracing::debug!(error = %e, "rollback of a claim failed");
            }
        }
    }
}

impl Drop for TaskSession {
    fn drop(&mut self) {
        // Closing the connection alone would end the session too, but the
        // server's backend lets the lock go only once it has noticed the
        // close: this instance's next update (a forced one a moment later)
        // could find its own lock still held and skip the task. Rolled back
        // and unlocked here, both are gone when the drop returns.
        self.release();
        if let Err(e) = self.client.query_one("SELECT pg_advisory_unlock($1)", &[&self.key]) {
            // The connection is broken: the lock went with its session.
            tracing::debug!(error = %e, "unlocking a task's training lock failed");
        }
    }
}

/// The newest published version of an (agent, task), 0 when none.
pub(crate) fn latest_version(client: &mut Client, agent: &str, task: &str) -> Result<u64, StoreError> {
    let version: Option<i64> = client
        .query_one(
            "SELECT max(version) FROM model_checkpoints \
             WHERE agent_name = $1 AND task_type = $2 AND accepted AND instance_id IS NOT NULL",
            &[&agent, &task],
        )
        .map_err(classify)?
        .get(0);
    Ok(version.map_or(0, |v| v.max(0) as u64))
}

fn stored_ids(ids: &[ExampleId]) -> Result<Vec<i64>, StoreError> {
    ids.iter().map(|id| id_to_stored(id.0)).collect()
}
