//! The PostgreSQL backend: an r2d2 pool, migrations under an advisory lock
//! (several instances may start at once), examples written with binary COPY
//! into a session-local staging table and moved with `ON CONFLICT DO NOTHING`,
//! so a replayed batch never duplicates a row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postgres::types::Type;
use postgres::{NoTls, Transaction};
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;

use super::recovery::{newest_history_sql, recover_with, RecoveryReads, COUNTS_SQL};
use super::schema::{self, Ranked, VERSION_TABLE};
use super::ReplayMembers;
use super::{
    id_from_stored, id_to_stored, CheckpointRecord, ExampleState, ExampleStore, PoolStats, Recovered, RecoveryLimits,
    StoreError, StoreOp, StoredExample, EXAMPLE_COLUMNS, PERFORMANCE_COLUMNS,
};
use crate::base::{ModelPerformance, TrainingExample};

mod connect;
mod rows;

use crate::store::decode::{example_from_row, performance_from_row};
use connect::refuse_foreign_tables;
pub(crate) use connect::{classify, connect_one};
use rows::upsert_checkpoint;
pub(crate) use rows::{copy_examples, insert_performance, replay_members, set_replay};

type Manager = PostgresConnectionManager<NoTls>;

/// Key of the advisory lock that serialises migrations across instances.
pub(crate) const MIGRATION_LOCK: i64 = 0x6f74_665f_6d69_6772; // "otf_migr"

/// Examples, updates and checkpoints in PostgreSQL.
pub struct PostgresStore {
    pool: Pool<Manager>,
    waits: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: never printed.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects (a `postgresql://` URL or a libpq key=value string), builds a
    /// pool of at most `pool_size` connections and migrates the schema. The
    /// error never contains the URL or its password.
    pub fn connect(url: &str, pool_size: u32, timeout: Duration) -> Result<PostgresStore, StoreError> {
        // One connection first, for its own error: through the pool a
        // database that does not exist reads as "timed out … db error".
        let (config, _probe) = connect_one(url, timeout)?;
        let pool = Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(timeout)
            // Outages are reported once, by the writer, not per attempt.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = PostgresStore {
            pool,
            waits: AtomicU64::new(0),
        };
        store.migrate()?;
        Ok(store)
    }

    fn conn(&self) -> Result<PooledConnection<Manager>, StoreError> {
        if let Some(conn) = self.pool.try_get() {
            return Ok(conn);
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(classify)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(classify)?;
        schema::migrate_with(&mut Migrating(&mut tx), "postgres")?;
        tx.commit().map_err(classify)
    }
}

/// The steps of a migration on PostgreSQL (under the advisory lock).
struct Migrating<'a, 'b>(&'a mut postgres::Transaction<'b>);

impl schema::MigrationSteps for Migrating<'_, '_> {
    fn current_version(&mut self) -> Result<i64, StoreError> {
        self.0
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            ))
            .map_err(classify)?;
        Ok(self
            .0
            .query_one(&format!("SELECT COALESCE(max(version), 0) FROM {VERSION_TABLE}"), &[])
            .map_err(classify)?
            .get(0))
    }

    fn before_first(&mut self) -> Result<(), StoreError> {
        refuse_foreign_tables(self.0)
    }

    fn apply(&mut self, m: &schema::Migration) -> Result<(), StoreError> {
        self.0
            .batch_execute(&m.sql_for(schema::Dialect::Postgres))
            .map_err(classify)?;
        self.0
            .execute(
                &format!("INSERT INTO {VERSION_TABLE} (version, description) VALUES ($1, $2)"),
                &[&m.version, &m.description],
            )
            .map_err(classify)?;
        Ok(())
    }
}

/// The advisory lock a retention pass holds ("onthefly retention"): not
/// one the training locks (`cluster::lock_key`, hashes) are likely to take.
const RETENTION_LOCK: i64 = 0x6f74_665f_7265_746e;

impl ExampleStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn write(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(classify)?;
        // Inserts first, in one COPY: a state change always comes after its
        // example's insert, so applying every insert before the rest of the
        // batch keeps the order that matters.
        copy_examples(&mut tx, ops)?;
        let set_state = tx
            .prepare("UPDATE training_examples SET state = $1, update_id = COALESCE($2, update_id) WHERE id = ANY($3)")
            .map_err(classify)?;
        // A row leaving a buffer unused only leaves if it is still buffered and
        // nobody holds it: with several instances another one may have trained
        // it, or be training it (claimed rows are skipped, not waited for).
        let leave_buffer = tx
            .prepare(
                "UPDATE training_examples SET state = $1 WHERE id IN (SELECT id FROM training_examples \
                 WHERE id = ANY($2) AND state = 'buffered' FOR UPDATE SKIP LOCKED)",
            )
            .map_err(classify)?;
        for op in ops {
            match op {
                StoreOp::Insert { .. } => {}
                StoreOp::SetState { ids, state, update_id } => {
                    let ids = ids
                        .iter()
                        .map(|id| id_to_stored(id.0))
                        .collect::<Result<Vec<i64>, _>>()?;
                    let update_id = update_id.map(id_to_stored).transpose()?;
                    match state {
                        ExampleState::Evicted | ExampleState::Failed => {
                            tx.execute(&leave_buffer, &[&state.as_str(), &ids])
                        }
                        _ => tx.execute(&set_state, &[&state.as_str(), &update_id, &ids]),
                    }
                    .map_err(classify)?;
                }
                StoreOp::ReleaseHeldOut { ids } => {
                    let ids = ids
                        .iter()
                        .map(|id| id_to_stored(id.0))
                        .collect::<Result<Vec<i64>, _>>()?;
                    tx.execute(
                        "UPDATE training_examples SET state = 'buffered' WHERE id = ANY($1) AND state = 'evaluation'",
                        &[&ids],
                    )
                    .map_err(classify)?;
                }
                StoreOp::Performance(p) => insert_performance(&mut tx, p)?,
                StoreOp::Checkpoint(c) => upsert_checkpoint(&mut tx, c)?,
                StoreOp::Task(t) => {
                    let kind = super::target_kind_str(t.target_kind);
                    let form = t.label_form.map(crate::base::LabelForm::name);
                    tx.execute(super::UPSERT_TASK_SQL, &[&t.agent_name, &t.task_type, &kind, &form])
                        .map_err(classify)?;
                }
                StoreOp::Replay { added, removed } => set_replay(&mut tx, added, removed)?,
            }
        }
        tx.commit().map_err(classify)
    }

    fn recover(&self, limits: &RecoveryLimits) -> Result<Recovered, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(classify)?;
        let recovered = recover_with(&mut Reads(&mut tx), limits)?;
        tx.commit().map_err(classify)?;
        Ok(recovered)
    }

    fn examples(&self, agent: Option<&str>) -> Result<Vec<StoredExample>, StoreError> {
        let mut conn = self.conn()?;
        let rows = match agent {
            Some(agent) => conn.query(
                &format!("SELECT {EXAMPLE_COLUMNS} FROM training_examples WHERE agent_name = $1 ORDER BY id"),
                &[&agent],
            ),
            None => conn.query(
                &format!("SELECT {EXAMPLE_COLUMNS} FROM training_examples ORDER BY id"),
                &[],
            ),
        }
        .map_err(classify)?;
        rows.iter().map(example_from_row).collect()
    }

    fn reclaim_evicted(&self, agent: &str, limit: usize) -> Result<Vec<TrainingExample>, StoreError> {
        let mut conn = self.conn()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // One statement: the rows change state and come back together, and
        // a row another session holds is left to it.
        conn.query(
            &format!(
                "UPDATE training_examples SET state = 'buffered' WHERE id IN (SELECT id FROM training_examples \
                 WHERE agent_name = $1 AND state = 'evicted' ORDER BY {} LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING {EXAMPLE_COLUMNS}",
                super::BUFFER_ORDER
            ),
            &[&agent, &limit],
        )
        .map_err(classify)?
        .iter()
        .map(|row| example_from_row(row).map(|s| s.example))
        .collect()
    }

    fn checkpoints(&self, agent: &str, task: &str) -> Result<Vec<CheckpointRecord>, StoreError> {
        let mut conn = self.conn()?;
        conn.query(
            "SELECT agent_name, task_type, version, path, accepted, metrics, created_at FROM model_checkpoints \
             WHERE agent_name = $1 AND task_type = $2 ORDER BY version",
            &[&agent, &task],
        )
        .map_err(classify)?
        .iter()
        .map(|row| {
            Ok(CheckpointRecord {
                agent_name: row.get(0),
                task_type: row.get(1),
                version: id_from_stored(row.get(2))?,
                path: row.get(3),
                accepted: row.get(4),
                metrics: row.get(5),
                created_ms: crate::base::unix_millis(row.get(6)),
            })
        })
        .collect()
    }

    fn retire(&self, policy: &super::RetentionConfig, now_ms: u64) -> Result<u64, StoreError> {
        use super::retention::{cutoff_ms, keep_per_agent, retire_statements, Bound};
        let Some((statements, bound)) = retire_statements(policy, |i| format!("${i}")) else {
            return Ok(0);
        };
        let cutoff = std::time::UNIX_EPOCH + std::time::Duration::from_millis(cutoff_ms(policy, now_ms));
        let keep = keep_per_agent(policy);
        let values: Vec<&(dyn postgres::types::ToSql + Sync)> = bound
            .iter()
            .map(|b| -> &(dyn postgres::types::ToSql + Sync) {
                match b {
                    Bound::Cutoff => &cutoff,
                    Bound::Keep => &keep,
                }
            })
            .collect();
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(classify)?;
        // One pass at a time across the instances sharing the database: a
        // pass that counted rows another one was deleting would count them
        // again (its count's snapshot predates the other's commit).
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RETENTION_LOCK])
            .map_err(classify)?;
        tx.execute(statements[0].as_str(), &values).map_err(classify)?;
        let deleted = tx.execute(statements[1].as_str(), &values).map_err(classify)?;
        tx.commit().map_err(classify)?;
        Ok(deleted)
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        let mut conn = self.conn()?;
        Ok(conn
            .query_one(&format!("SELECT COALESCE(max(version), 0) FROM {VERSION_TABLE}"), &[])
            .map_err(classify)?
            .get(0))
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        let state = self.pool.state();
        Some(PoolStats {
            max_size: self.pool.max_size(),
            connections: state.connections,
            in_use: state.connections - state.idle_connections,
            idle: state.idle_connections,
            waits: self.waits.load(Ordering::Relaxed),
        })
    }
}

/// Column types of `training_examples`, in [`EXAMPLE_COLUMNS`] order.
const EXAMPLE_TYPES: [Type; 15] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
];

/// The reads of a recovery inside one PostgreSQL transaction.
struct Reads<'a, 'b>(&'a mut Transaction<'b>);

impl RecoveryReads for Reads<'_, '_> {
    fn evict_beyond(&mut self, which: Ranked, n: i64) -> Result<u64, StoreError> {
        self.0.execute(&which.evict_beyond("$1"), &[&n]).map_err(classify)
    }

    fn ranked(&mut self, which: Ranked, n: i64) -> Result<Vec<TrainingExample>, StoreError> {
        self.0
            .query(&which.select(EXAMPLE_COLUMNS, "$1"), &[&n])
            .map_err(classify)?
            .iter()
            .map(|row| example_from_row(row).map(|s| s.example))
            .collect()
    }

    fn newest_history(&mut self, n: i64) -> Result<Vec<ModelPerformance>, StoreError> {
        self.0
            .query(&newest_history_sql(PERFORMANCE_COLUMNS, "$1"), &[&n])
            .map_err(classify)?
            .iter()
            .map(performance_from_row)
            .collect()
    }

    fn counts(&mut self) -> Result<(i64, i64, i64), StoreError> {
        let row = self.0.query_one(COUNTS_SQL, &[]).map_err(classify)?;
        Ok((row.get(0), row.get(1), row.get(2)))
    }

    fn replay_members(&mut self) -> Result<Vec<ReplayMembers>, StoreError> {
        replay_members(self.0, None)
    }

    fn settled_rows(&mut self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(self
            .0
            .query(super::SETTLED_COUNTS_SQL, &[])
            .map_err(classify)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn update_rows(&mut self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        Ok(self
            .0
            .query(super::UPDATE_COUNTS_SQL, &[])
            .map_err(classify)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn tasks(&mut self) -> Result<Vec<super::TaskRecord>, StoreError> {
        self.0
            .query(super::TASKS_SQL, &[])
            .map_err(classify)?
            .iter()
            .map(|r| super::task_from_stored(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }
}
