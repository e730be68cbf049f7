//! The PostgreSQL backend: an r2d2 pool, migrations under an advisory lock
//! (several instances may start at once), examples written with binary COPY
//! into a session-local staging table and moved with `ON CONFLICT DO NOTHING`,
//! so a replayed batch never duplicates a row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, NoTls, Row, Transaction};
use r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;

use super::schema::{self, Ranked, VERSION_TABLE};
use super::{
    id_from_stored, id_to_stored, target_from_stored, target_kind_str, CheckpointRecord, ExampleState, ExampleStore,
    PoolStats, Recovered, RecoveryLimits, Split, StoreError, StoreOp, StoredExample, EXAMPLE_COLUMNS,
    PERFORMANCE_COLUMNS,
};
use crate::base::{ExampleId, ModelPerformance, Priority, TrainingExample};

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
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ))
        .map_err(classify)?;
        let current: i64 = tx
            .query_one(&format!("SELECT COALESCE(max(version), 0) FROM {VERSION_TABLE}"), &[])
            .map_err(classify)?
            .get(0);
        schema::check_not_newer(current)?;
        if current == 0 {
            refuse_foreign_tables(&mut tx)?;
        }
        for m in schema::pending(current) {
            tx.batch_execute(m.postgres).map_err(classify)?;
            tx.execute(
                &format!("INSERT INTO {VERSION_TABLE} (version, description) VALUES ($1, $2)"),
                &[&m.version, &m.description],
            )
            .map_err(classify)?;
            tracing::info!(
                version = m.version,
                description = m.description,
                "PostgreSQL schema migrated"
            );
        }
        tx.commit().map_err(classify)
    }
}

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
                StoreOp::Performance(p) => insert_performance(&mut tx, p)?,
                StoreOp::Checkpoint(c) => upsert_checkpoint(&mut tx, c)?,
                StoreOp::Replay { added, removed } => set_replay(&mut tx, added, removed)?,
            }
        }
        tx.commit().map_err(classify)
    }

    fn recover(&self, limits: &RecoveryLimits) -> Result<Recovered, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(classify)?;
        let limit = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let evicted = match limits.buffered_per_agent {
            Some(n) => tx
                .execute(&Ranked::Buffered.evict_beyond("$1"), &[&limit(n)])
                .map_err(classify)?,
            None => 0,
        };
        let mut ranked = |which: Ranked, n: usize| -> Result<Vec<TrainingExample>, StoreError> {
            tx.query(&which.select(EXAMPLE_COLUMNS, "$1"), &[&limit(n)])
                .map_err(classify)?
                .iter()
                .map(|row| example_from_row(row).map(|s| s.example))
                .collect()
        };
        let buffered = match limits.buffered_per_agent {
            Some(n) => ranked(Ranked::Buffered, n)?,
            None => Vec::new(),
        };
        let mut held_out = ranked(Ranked::HeldOut, limits.held_out_per_task)?;
        let mut kept = ranked(Ranked::Kept, limits.kept_per_agent)?;
        let mut pending_review = ranked(Ranked::PendingReview, limits.pending_per_task)?;
        let mut quarantined = ranked(Ranked::Quarantined, limits.pending_per_task)?;
        quarantined.sort_by_key(|e| e.id);
        held_out.sort_by_key(|e| e.id);
        kept.sort_by_key(|e| e.id);
        pending_review.sort_by_key(|e| e.id);
        let mut history = tx
            .query(
                &format!("SELECT {PERFORMANCE_COLUMNS} FROM model_performance ORDER BY update_id DESC LIMIT $1"),
                &[&limit(limits.history)],
            )
            .map_err(classify)?
            .iter()
            .map(performance_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        history.reverse();
        let counts = tx
            .query_one(
                "SELECT (SELECT count(*) FROM model_performance), \
                 (SELECT COALESCE(max(id), 0) FROM training_examples), \
                 (SELECT COALESCE(max(update_id), 0) FROM model_performance)",
                &[],
            )
            .map_err(classify)?;
        let (total, max_example, max_update): (i64, i64, i64) = (counts.get(0), counts.get(1), counts.get(2));
        let replay = replay_members(&mut tx, None)?;
        let settled = tx
            .query(super::SETTLED_COUNTS_SQL, &[])
            .map_err(classify)?
            .iter()
            .map(|r| super::settled_count(r.get(0), r.get::<_, &str>(1), r.get(2)))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().map_err(classify)?;
        Ok(Recovered {
            replay,
            settled,
            quarantined,
            next_id: id_from_stored(max_example.max(max_update))? + 1,
            buffered,
            held_out,
            kept,
            pending_review,
            history,
            history_total: id_from_stored(total)?,
            evicted,
        })
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

pub(crate) fn copy_examples(tx: &mut Transaction<'_>, ops: &[StoreOp]) -> Result<(), StoreError> {
    let mut inserts = ops
        .iter()
        .filter_map(|op| match op {
            StoreOp::Insert { example, split, state } => Some((example, *split, *state)),
            _ => None,
        })
        .peekable();
    if inserts.peek().is_none() {
        return Ok(());
    }
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS onthefly_staging (LIKE training_examples INCLUDING DEFAULTS) \
         ON COMMIT DELETE ROWS",
    )
    .map_err(classify)?;
    let sink = tx
        .copy_in(&format!("COPY onthefly_staging ({EXAMPLE_COLUMNS}) FROM STDIN BINARY"))
        .map_err(classify)?;
    let mut writer = BinaryCopyInWriter::new(sink, &EXAMPLE_TYPES);
    for (e, split, state) in inserts {
        let id = id_to_stored(e.id.0)?;
        let target = e.expected_output.to_json();
        let priority = i16::from(u8::from(e.correction_priority));
        let update_id: Option<i64> = None;
        let row: [&(dyn ToSql + Sync); 15] = [
            &id,
            &e.agent_name,
            &e.task_type,
            &e.input_text,
            &target_kind_str(e.expected_output.kind()),
            &target,
            &e.uncertainty_score,
            &e.importance_score,
            &e.source_url,
            &e.timestamp,
            &e.user_feedback,
            &priority,
            &split.as_str(),
            &state.as_str(),
            &update_id,
        ];
        writer.write(&row).map_err(classify)?;
    }
    writer.finish().map_err(classify)?;
    tx.execute(
        &format!(
            "INSERT INTO training_examples ({EXAMPLE_COLUMNS}) SELECT {EXAMPLE_COLUMNS} FROM onthefly_staging \
             ON CONFLICT (id) DO NOTHING"
        ),
        &[],
    )
    .map_err(classify)?;
    Ok(())
}

pub(crate) fn insert_performance(tx: &mut impl GenericClient, p: &ModelPerformance) -> Result<(), StoreError> {
    let update_id = id_to_stored(p.update_id)?;
    let held_out = i64::try_from(p.held_out_examples).unwrap_or(i64::MAX);
    let trained = i64::try_from(p.examples_trained).unwrap_or(i64::MAX);
    let loss = p.train_loss.is_finite().then_some(p.train_loss);
    let at = UNIX_EPOCH + Duration::from_millis(p.update_timestamp_ms);
    let version = id_to_stored(p.model_version)?;
    let duration = i64::try_from(p.duration_ms).unwrap_or(i64::MAX);
    tx.execute(
        &format!(
            "INSERT INTO model_performance ({PERFORMANCE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (update_id) DO NOTHING"
        ),
        &[
            &update_id,
            &p.agent_name,
            &p.task_type,
            &p.model_name,
            &p.metric,
            &p.accuracy_before,
            &p.accuracy_after,
            &held_out,
            &trained,
            &loss,
            &at,
            &p.rollback_triggered,
            &p.rollback_reason,
            &version,
            &duration,
        ],
    )
    .map_err(classify)?;
    Ok(())
}

fn upsert_checkpoint(tx: &mut Transaction<'_>, c: &CheckpointRecord) -> Result<(), StoreError> {
    let version = id_to_stored(c.version)?;
    let at = UNIX_EPOCH + Duration::from_millis(c.created_ms);
    tx.execute(
        "INSERT INTO model_checkpoints (agent_name, task_type, version, path, accepted, metrics, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (agent_name, task_type, version) DO UPDATE SET \
         path = EXCLUDED.path, accepted = EXCLUDED.accepted, metrics = EXCLUDED.metrics, created_at = EXCLUDED.created_at",
        &[&c.agent_name, &c.task_type, &version, &c.path, &c.accepted, &c.metrics, &at],
    )
    .map_err(classify)?;
    Ok(())
}

/// Marks examples as members of their task's replay memory, or no longer.
pub(crate) fn set_replay(
    client: &mut impl GenericClient,
    added: &[ExampleId],
    removed: &[ExampleId],
) -> Result<(), StoreError> {
    for (ids, member) in [(added, true), (removed, false)] {
        if ids.is_empty() {
            continue;
        }
        let ids = ids
            .iter()
            .map(|id| id_to_stored(id.0))
            .collect::<Result<Vec<i64>, _>>()?;
        client
            .execute(
                "UPDATE training_examples SET replay = $1 WHERE id = ANY($2)",
                &[&member, &ids],
            )
            .map_err(classify)?;
    }
    Ok(())
}

/// The replay memories of every task, or (`task`) of one (agent, task).
pub(crate) fn replay_members(
    client: &mut impl GenericClient,
    task: Option<(&str, &str)>,
) -> Result<Vec<super::ReplayMembers>, StoreError> {
    let (agent, task_type) = task.unwrap_or(("", ""));
    let only = task.is_some();
    let examples = client
        .query(
            &format!(
                "SELECT {EXAMPLE_COLUMNS} FROM training_examples WHERE replay \
                 AND (NOT $1 OR (agent_name = $2 AND task_type = $3)) ORDER BY id"
            ),
            &[&only, &agent, &task_type],
        )
        .map_err(classify)?
        .iter()
        .map(|row| example_from_row(row).map(|s| s.example))
        .collect::<Result<Vec<_>, _>>()?;
    let counts = client
        .query(
            &super::replay_counts_sql("(NOT $1 OR (t.agent_name = $2 AND t.task_type = $3))"),
            &[&only, &agent, &task_type],
        )
        .map_err(classify)?
        .iter()
        .map(|row| {
            let kind: String = row.get(2);
            let label: Option<serde_json::Value> = row.get(3);
            let n: i64 = row.get(4);
            let pool = label.and_then(|value| super::replay_pool(&kind, &value));
            Ok((row.get(0), row.get(1), pool, id_from_stored(n)?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(super::group_replay(examples, counts))
}

pub(crate) fn example_from_row(row: &Row) -> Result<StoredExample, StoreError> {
    let priority: i16 = row.get(11);
    let update_id: Option<i64> = row.get(14);
    Ok(StoredExample {
        example: TrainingExample {
            id: ExampleId(id_from_stored(row.get(0))?),
            agent_name: row.get(1),
            task_type: row.get(2),
            input_text: row.get(3),
            expected_output: target_from_stored(row.get::<_, &str>(4), row.get(5))?,
            uncertainty_score: row.get(6),
            importance_score: row.get(7),
            source_url: row.get(8),
            timestamp: row.get::<_, SystemTime>(9),
            user_feedback: row.get(10),
            correction_priority: Priority::try_from(i64::from(priority))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        },
        split: Split::parse(row.get(12))?,
        state: ExampleState::parse(row.get(13))?,
        update_id: update_id.map(id_from_stored).transpose()?,
    })
}

fn performance_from_row(row: &Row) -> Result<ModelPerformance, StoreError> {
    let count = |i: usize| usize::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(ModelPerformance {
        update_id: id_from_stored(row.get(0))?,
        agent_name: row.get(1),
        task_type: row.get(2),
        model_name: row.get(3),
        metric: row.get(4),
        accuracy_before: row.get(5),
        accuracy_after: row.get(6),
        held_out_examples: count(7),
        examples_trained: count(8),
        train_loss: row.get::<_, Option<f64>>(9).unwrap_or(f64::NAN),
        update_timestamp_ms: crate::base::unix_millis(row.get(10)),
        rollback_triggered: row.get(11),
        rollback_reason: row.get(12),
        model_version: id_from_stored(row.get(13))?,
        duration_ms: u64::try_from(row.get::<_, i64>(14)).unwrap_or(0),
    })
}

/// A lost connection, a connection exception, or the server shutting down or
/// out of resources is worth retrying; anything else was refused.
/// Before the first migration: a table of the library's names that it did
/// not create (the original JustNews system's `training_examples`, most
/// likely) is an error that names it and the way out, not "relation
/// already exists" half-way through the schema.
fn refuse_foreign_tables(tx: &mut Transaction<'_>) -> Result<(), StoreError> {
    for table in ["training_examples", "model_performance", "model_checkpoints"] {
        let columns: Vec<String> = tx
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .map_err(classify)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if columns.is_empty() {
            continue;
        }
        let original = ["agent_name", "expected_output", "correction_priority"]
            .iter()
            .all(|c| columns.iter().any(|have| have == c));
        return Err(StoreError::Refused(format!(
            "the database already holds a table {table:?} that this library did not create{} (columns: {}); \
             adopt it (onthefly::store::adopt_original_database, otf_adopt_original_database: \
             moves it aside as justnews_{table} and imports its rows as buffered examples), \
             or point DATABASE_URL at another database",
            if original {
                ", by its columns the original JustNews system's"
            } else {
                ""
            },
            columns.join(", ")
        )));
    }
    Ok(())
}

/// One connection to `url` (and its parsed configuration), with an error
/// that names the database and why it failed, never the URL or its password.
pub(crate) fn connect_one(url: &str, timeout: Duration) -> Result<(postgres::Config, postgres::Client), StoreError> {
    let config: postgres::Config = url
        .parse()
        .map_err(|_| StoreError::Refused("the database URL cannot be parsed".into()))?;
    let mut probe = config.clone();
    probe.connect_timeout(timeout);
    match probe.connect(NoTls) {
        Ok(client) => Ok((config, client)),
        Err(e) => Err(cannot_connect(e, &config)),
    }
}

/// A failed first connection, naming the database and the server (never
/// the password) and, where the server said why, the way out.
fn cannot_connect(e: postgres::Error, config: &postgres::Config) -> StoreError {
    let database = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                postgres::config::Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    let place = format!("database {database:?} on {}", hosts.join(", "));
    let hint = match e.code().map(|c| c.code()) {
        Some("3D000") => {
            format!(": it does not exist; create it (`createdb {database}`) or name an existing one in DATABASE_URL")
        }
        Some("28P01" | "28000") => ": the server refused the user or password".to_string(),
        _ => String::new(),
    };
    match classify(e) {
        StoreError::Unavailable(message) => {
            StoreError::Unavailable(format!("cannot connect to {place}{hint} ({message})"))
        }
        StoreError::Refused(message) => StoreError::Refused(format!("cannot connect to {place}{hint} ({message})")),
        other => other,
    }
}

pub(crate) fn classify(e: postgres::Error) -> StoreError {
    // The server's own words (constraint, column) are in the DbError, not in
    // the Display of the error.
    let message = match e.as_db_error() {
        Some(db) => format!("{e}: {db}"),
        None => e.to_string(),
    };
    let lost_connection =
        e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
    match e.code().map(|c| c.code()) {
        None if lost_connection => StoreError::Unavailable(message),
        None => StoreError::Refused(message),
        Some(code) if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") => {
            StoreError::Unavailable(message)
        }
        Some(_) => StoreError::Refused(message),
    }
}
