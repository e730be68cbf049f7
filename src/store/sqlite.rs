//! The embedded backend: one SQLite file in the data folder, in WAL mode with
//! `synchronous = FULL` (a committed batch survives a power loss), one
//! transaction per batch.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{params, Connection, ErrorCode, Row, Transaction};

use super::decode::{example_from_row, performance_from_row, Columns};
use super::recovery::{newest_history_sql, recover_with, RecoveryReads, COUNTS_SQL};
use super::schema::{self, Ranked, VERSION_TABLE};
use super::{
    id_from_stored, id_to_stored, target_kind_str, CheckpointRecord, ExampleState, ExampleStore, PoolStats, Recovered,
    RecoveryLimits, Split, StoreError, StoreOp, StoredExample, EXAMPLE_COLUMNS, PERFORMANCE_COLUMNS,
};
use crate::base::{unix_millis, ModelPerformance, TrainingExample};

/// Examples, updates and checkpoints in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating it and its folder if needed) and migrates the file.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(classify)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(classify)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(classify)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(classify)?;
        let store = SqliteStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(classify)?;
        schema::migrate_with(&mut Migrating(&tx), "sqlite")?;
        tx.commit().map_err(classify)
    }
}

/// The steps of a migration on SQLite.
struct Migrating<'a, 'b>(&'a Transaction<'b>);

impl schema::MigrationSteps for Migrating<'_, '_> {
    fn current_version(&mut self) -> Result<i64, StoreError> {
        self.0
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY, description TEXT NOT NULL, \
                 applied_at INTEGER NOT NULL)"
            ))
            .map_err(classify)?;
        current_version(self.0)
    }

    fn apply(&mut self, m: &schema::Migration) -> Result<(), StoreError> {
        self.0
            .execute_batch(&m.sql_for(schema::Dialect::Sqlite))
            .map_err(classify)?;
        self.0
            .execute(
                &format!("INSERT INTO {VERSION_TABLE} (version, description, applied_at) VALUES (?1, ?2, ?3)"),
                params![m.version, m.description, now_ms()],
            )
            .map_err(classify)?;
        Ok(())
    }
}

fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row(
        &format!("SELECT COALESCE(max(version), 0) FROM {VERSION_TABLE}"),
        [],
        |r| r.get(0),
    )
    .map_err(classify)
}

fn now_ms() -> i64 {
    ms(unix_millis(std::time::SystemTime::now()))
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl ExampleStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn write(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(classify)?;
        for op in ops {
            apply(&tx, op)?;
        }
        tx.commit().map_err(classify)
    }

    fn recover(&self, limits: &RecoveryLimits) -> Result<Recovered, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(classify)?;
        let recovered = recover_with(&mut Reads(&tx), limits)?;
        tx.commit().map_err(classify)?;
        Ok(recovered)
    }

    fn examples(&self, agent: Option<&str>) -> Result<Vec<StoredExample>, StoreError> {
        let conn = self.conn.lock();
        let sql =
            format!("SELECT {EXAMPLE_COLUMNS} FROM training_examples WHERE ?1 IS NULL OR agent_name = ?1 ORDER BY id");
        let mut stmt = conn.prepare(&sql).map_err(classify)?;
        let rows = stmt
            .query_map([agent], |row| Ok(example_from_row(row)))
            .map_err(classify)?;
        rows.map(|r| r.map_err(classify).and_then(|e| e)).collect()
    }

    fn reclaim_evicted(&self, agent: &str, limit: usize) -> Result<Vec<TrainingExample>, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(classify)?;
        let examples = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {EXAMPLE_COLUMNS} FROM training_examples WHERE agent_name = ?1 AND state = 'evicted' \
                     ORDER BY {} LIMIT ?2",
                    super::BUFFER_ORDER
                ))
                .map_err(classify)?;
            let rows = stmt
                .query_map(params![agent, i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                    Ok(example_from_row(row))
                })
                .map_err(classify)?;
            rows.map(|r| r.map_err(classify).and_then(|e| e.map(|s| s.example)))
                .collect::<Result<Vec<_>, _>>()?
        };
        {
            let mut stmt = tx
                .prepare("UPDATE training_examples SET state = 'buffered' WHERE id = ?1")
                .map_err(classify)?;
            for example in &examples {
                stmt.execute(params![id_to_stored(example.id.0)?]).map_err(classify)?;
            }
        }
        tx.commit().map_err(classify)?;
        Ok(examples)
    }

    fn checkpoints(&self, agent: &str, task: &str) -> Result<Vec<CheckpointRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare(
                "SELECT agent_name, task_type, version, path, accepted, metrics, created_at FROM model_checkpoints \
                 WHERE agent_name = ?1 AND task_type = ?2 ORDER BY version",
            )
            .map_err(classify)?;
        let rows = stmt
            .query_map([agent, task], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, bool>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            })
            .map_err(classify)?;
        rows.map(|r| {
            let (agent_name, task_type, version, path, accepted, metrics, created) = r.map_err(classify)?;
            Ok(CheckpointRecord {
                agent_name,
                task_type,
                version: id_from_stored(version)?,
                path,
                accepted,
                metrics: serde_json::from_str(&metrics).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                created_ms: u64::try_from(created).unwrap_or(0),
            })
        })
        .collect()
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        current_version(&self.conn.lock())
    }

    fn retire(&self, policy: &super::RetentionConfig, now_ms: u64) -> Result<u64, StoreError> {
        use super::retention::{cutoff_ms, keep_per_agent, retire_statements, Bound};
        let Some((statements, bound)) = retire_statements(policy, |i| format!("?{i}")) else {
            return Ok(0);
        };
        let values: Vec<i64> = bound
            .iter()
            .map(|b| match b {
                Bound::Cutoff => ms(cutoff_ms(policy, now_ms)),
                Bound::Keep => keep_per_agent(policy),
            })
            .collect();
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(classify)?;
        tx.execute(&statements[0], rusqlite::params_from_iter(&values))
            .map_err(classify)?;
        let deleted = tx
            .execute(&statements[1], rusqlite::params_from_iter(&values))
            .map_err(classify)?;
        tx.commit().map_err(classify)?;
        Ok(deleted as u64)
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}

/// [`StoreOp::ReleaseHeldOut`] for one row.
const RELEASE_HELD_OUT_SQLITE: &str =
    "UPDATE training_examples SET state = 'buffered' WHERE id = ?1 AND state = 'evaluation'";

fn apply(tx: &Transaction<'_>, op: &StoreOp) -> Result<(), StoreError> {
    match op {
        StoreOp::Insert { example, split, state } => insert_example(tx, example, *split, *state)?,
        StoreOp::SetState { ids, state, update_id } => {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE training_examples SET state = ?1, update_id = COALESCE(?2, update_id) WHERE id = ?3",
                )
                .map_err(classify)?;
            let update_id = update_id.map(id_to_stored).transpose()?;
            for id in ids {
                stmt.execute(params![state.as_str(), update_id, id_to_stored(id.0)?])
                    .map_err(classify)?;
            }
        }
        StoreOp::ReleaseHeldOut { ids } => {
            let mut stmt = tx.prepare_cached(RELEASE_HELD_OUT_SQLITE).map_err(classify)?;
            for id in ids {
                stmt.execute(params![id_to_stored(id.0)?]).map_err(classify)?;
            }
        }
        StoreOp::Performance(p) => insert_performance(tx, p)?,
        StoreOp::Checkpoint(c) => upsert_checkpoint(tx, c)?,
        StoreOp::Task(t) => {
            tx.prepare_cached(super::UPSERT_TASK_SQL)
                .map_err(classify)?
                .execute(params![
                    t.agent_name,
                    t.task_type,
                    target_kind_str(t.target_kind),
                    t.label_form.map(crate::base::LabelForm::name),
                ])
                .map_err(classify)?;
        }
        StoreOp::Replay { added, removed } => {
            let mut stmt = tx
                .prepare_cached("UPDATE training_examples SET replay = ?1 WHERE id = ?2")
                .map_err(classify)?;
            for (ids, member) in [(added, true), (removed, false)] {
                for id in ids {
                    stmt.execute(params![member, id_to_stored(id.0)?]).map_err(classify)?;
                }
            }
        }
    }
    Ok(())
}

/// Inserts an example (a replayed one is already there: nothing changes).
fn insert_example(
    tx: &Transaction<'_>,
    e: &TrainingExample,
    split: Split,
    state: ExampleState,
) -> Result<(), StoreError> {
    let target =
        serde_json::to_string(&e.expected_output.to_json()).map_err(|err| StoreError::Refused(err.to_string()))?;
    let mut stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO training_examples ({EXAMPLE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, NULL) \
             ON CONFLICT (id) DO NOTHING"
        ))
        .map_err(classify)?;
    stmt.execute(params![
        id_to_stored(e.id.0)?,
        e.agent_name,
        e.task_type,
        e.input_text,
        target_kind_str(e.expected_output.kind()),
        target,
        e.uncertainty_score,
        e.importance_score,
        e.source_url,
        ms(unix_millis(e.timestamp)),
        e.user_feedback,
        u8::from(e.correction_priority),
        split.as_str(),
        state.as_str(),
    ])
    .map_err(classify)?;
    Ok(())
}

/// Inserts a performance record (once per update id).
fn insert_performance(tx: &Transaction<'_>, p: &ModelPerformance) -> Result<(), StoreError> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO model_performance ({PERFORMANCE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
             ON CONFLICT (update_id) DO NOTHING"
        ))
        .map_err(classify)?;
    stmt.execute(params![
        id_to_stored(p.update_id)?,
        p.agent_name,
        p.task_type,
        p.model_name,
        p.metric,
        p.accuracy_before,
        p.accuracy_after,
        ms(p.held_out_examples as u64),
        ms(p.examples_trained as u64),
        p.train_loss.is_finite().then_some(p.train_loss),
        ms(p.update_timestamp_ms),
        p.rollback_triggered,
        p.rollback_reason,
        id_to_stored(p.model_version)?,
        ms(p.duration_ms),
    ])
    .map_err(classify)?;
    Ok(())
}

/// Inserts or replaces a checkpoint's record.
fn upsert_checkpoint(tx: &Transaction<'_>, c: &CheckpointRecord) -> Result<(), StoreError> {
    let metrics = serde_json::to_string(&c.metrics).map_err(|err| StoreError::Refused(err.to_string()))?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO model_checkpoints (agent_name, task_type, version, path, accepted, metrics, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (agent_name, task_type, version) DO UPDATE SET \
             path = excluded.path, accepted = excluded.accepted, metrics = excluded.metrics, \
             created_at = excluded.created_at",
        )
        .map_err(classify)?;
    stmt.execute(params![
        c.agent_name,
        c.task_type,
        id_to_stored(c.version)?,
        c.path,
        c.accepted,
        metrics,
        ms(c.created_ms),
    ])
    .map_err(classify)?;
    Ok(())
}

/// Every task's replay memory, with its pools' counts.
fn replay_members(tx: &Transaction<'_>) -> Result<Vec<super::ReplayMembers>, StoreError> {
    let mut stmt = tx
        .prepare(&format!(
            "SELECT {EXAMPLE_COLUMNS} FROM training_examples WHERE replay ORDER BY id"
        ))
        .map_err(classify)?;
    let examples = stmt
        .query_map([], |row| Ok(example_from_row(row)))
        .map_err(classify)?
        .map(|r| r.map_err(classify).and_then(|e| e.map(|s| s.example)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = tx.prepare(&super::replay_counts_sql("true")).map_err(classify)?;
    let counts = stmt
        .query_map([], |row| {
            let kind: String = row.get(2)?;
            let label: Option<String> = row.get(3)?;
            let n: i64 = row.get(4)?;
            Ok((row.get(0)?, row.get(1)?, kind, label, n))
        })
        .map_err(classify)?
        .map(|r| {
            let (agent, task, kind, label, n): (String, String, String, Option<String>, i64) = r.map_err(classify)?;
            let pool = match label {
                Some(text) => {
                    let value: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|e| StoreError::Corrupt(format!("expected_output: {e}")))?;
                    super::replay_pool(&kind, &value)
                }
                None => None,
            };
            Ok((agent, task, pool, id_from_stored(n)?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(super::group_replay(examples, counts))
}

/// SQLite's columns: times as milliseconds since the epoch, JSON as text.
impl Columns for Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.get(i).map_err(classify)
    }

    fn optional_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.get(i).map_err(classify)
    }

    fn optional_real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.get(i).map_err(classify)
    }

    fn optional_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.get(i).map_err(classify)
    }

    fn boolean(&self, i: usize) -> Result<bool, StoreError> {
        self.get(i).map_err(classify)
    }

    fn json(&self, i: usize) -> Result<serde_json::Value, StoreError> {
        let text: String = self.get(i).map_err(classify)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("column {i} is not JSON: {e}")))
    }

    fn time(&self, i: usize) -> Result<SystemTime, StoreError> {
        let millis: i64 = self.get(i).map_err(classify)?;
        Ok(UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
    }
}

/// A busy, locked, full or failing disk is worth retrying; anything else
/// was refused.
fn classify(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Refused(e.to_string()),
    }
}

/// The reads of a recovery inside one SQLite transaction.
struct Reads<'a, 'b>(&'a Transaction<'b>);

impl Reads<'_, '_> {
    /// Every row of `sql` with `params`, each read by `read`.
    fn rows<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        read: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.0.prepare(sql).map_err(classify)?;
        let rows = stmt.query_map(params, |row| Ok(read(row))).map_err(classify)?;
        rows.map(|r| r.map_err(classify).and_then(|t| t)).collect()
    }
}

impl RecoveryReads for Reads<'_, '_> {
    fn evict_beyond(&mut self, which: Ranked, n: i64) -> Result<u64, StoreError> {
        Ok(self.0.execute(&which.evict_beyond("?1"), [n]).map_err(classify)? as u64)
    }

    fn ranked(&mut self, which: Ranked, n: i64) -> Result<Vec<TrainingExample>, StoreError> {
        self.rows(&which.select(EXAMPLE_COLUMNS, "?1"), [n], |row| {
            example_from_row(row).map(|s| s.example)
        })
    }

    fn newest_history(&mut self, n: i64) -> Result<Vec<ModelPerformance>, StoreError> {
        self.rows(&newest_history_sql(PERFORMANCE_COLUMNS, "?1"), [n], |row| {
            performance_from_row(row)
        })
    }

    fn counts(&mut self) -> Result<(i64, i64, i64), StoreError> {
        self.0
            .query_row(COUNTS_SQL, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(classify)
    }

    fn replay_members(&mut self) -> Result<Vec<super::ReplayMembers>, StoreError> {
        replay_members(self.0)
    }

    fn settled_rows(&mut self) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.rows(super::SETTLED_COUNTS_SQL, [], |r| {
            Ok((
                r.get::<_, String>(0).map_err(classify)?,
                r.get::<_, String>(1).map_err(classify)?,
                r.get::<_, i64>(2).map_err(classify)?,
            ))
        })
    }

    fn update_rows(&mut self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.rows(super::UPDATE_COUNTS_SQL, [], |r| {
            Ok((
                r.get::<_, String>(0).map_err(classify)?,
                r.get::<_, i64>(1).map_err(classify)?,
                r.get::<_, i64>(2).map_err(classify)?,
            ))
        })
    }

    fn tasks(&mut self) -> Result<Vec<super::TaskRecord>, StoreError> {
        self.rows(super::TASKS_SQL, [], |r| {
            super::task_from_stored(
                r.get(0).map_err(classify)?,
                r.get(1).map_err(classify)?,
                &r.get::<_, String>(2).map_err(classify)?,
                r.get::<_, Option<String>>(3).map_err(classify)?.as_deref(),
            )
        })
    }
}
