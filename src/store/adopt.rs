//! Adopting the original JustNews system's database: its `training_examples`
//! table (the one `training_system_api.md`'s `INSERT` fills) is moved aside
//! and its rows become buffered examples of this library, which then learns
//! them like any others.
//!
//! Run once, before starting the library on that database (a running
//! instance's ids could meet the imported ones otherwise). Idempotent: the
//! move happens only while the original's table still has its name, and the
//! import is recorded in `onthefly_imports` in the same transaction as its
//! rows, so a second call (or one after a failure, which imports nothing)
//! never imports a row twice.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::postgres::{classify, connect_one, copy_examples, MIGRATION_LOCK};
use super::schema::{ID_BLOCK_SIZE, VERSION_TABLE};
use super::{ExampleState, PostgresStore, Split, StoreError, StoreOp};
use crate::base::{ExampleId, Priority, Target, TrainingExample};

/// The original's tables this library's schema also names: moved aside
/// with the prefix [`MOVED_PREFIX`].
const ORIGINAL_TABLES: [&str; 3] = ["training_examples", "model_performance", "model_checkpoints"];

/// The prefix of a moved table (`justnews_training_examples`).
pub const MOVED_PREFIX: &str = "justnews_";

/// What [`adopt_original_database`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adoption {
    /// The original's tables this call moved aside (their new names).
    pub moved: Vec<String>,
    /// Rows this call imported as buffered examples.
    pub imported: u64,
    /// Rows an earlier call imported (this call then imports none).
    pub imported_before: u64,
}

/// Moves the original JustNews tables of the database at `url` aside
/// (`justnews_<name>`, indexes renamed alike), creates this library's
/// schema, and imports the original's examples (agent, task, input,
/// expected output, scores, source, timestamp, feedback, priority) as
/// buffered examples with their timestamps, oldest first. A row that
/// cannot be read (no expected output, a score outside 0..=1, a priority
/// outside 0..=3) fails the whole import, naming the row; nothing is
/// imported then, and a corrected table can be imported by calling again.
pub fn adopt_original_database(url: &str, timeout: Duration) -> Result<Adoption, StoreError> {
    let (_, mut client) = connect_one(url, timeout)?;
    let moved = move_aside(&mut client)?;
    // The library's schema, created as any start would.
    drop(PostgresStore::connect(url, 1, timeout)?);
    let (imported, imported_before) = import(&mut client)?;
    Ok(Adoption {
        moved,
        imported,
        imported_before,
    })
}

/// Renames the original's tables, unless this library created them.
fn move_aside(client: &mut postgres::Client) -> Result<Vec<String>, StoreError> {
    let mut tx = client.transaction().map_err(classify)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(classify)?;
    if table_exists(&mut tx, VERSION_TABLE)? {
        return Ok(Vec::new());
    }
    let mut moved = Vec::new();
    for table in ORIGINAL_TABLES {
        let target = format!("{MOVED_PREFIX}{table}");
        if !table_exists(&mut tx, table)? {
            continue;
        }
        if table_exists(&mut tx, &target)? {
            return Err(StoreError::Refused(format!(
                "both {table:?} and {target:?} exist: the original's table was moved aside before and \
                 another one created since; rename or drop one of them"
            )));
        }
        let indexes: Vec<String> = tx
            .query(
                "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
                &[&table],
            )
            .map_err(classify)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.batch_execute(&format!("ALTER TABLE {table} RENAME TO {target}"))
            .map_err(classify)?;
        // Index names are the schema's, not the table's: the library's own
        // (`training_examples_pkey` …) must be free.
        for index in indexes {
            tx.batch_execute(&format!(
                "ALTER INDEX \"{}\" RENAME TO \"{MOVED_PREFIX}{}\"",
                index.replace('"', "\"\""),
                index.replace('"', "\"\"")
            ))
            .map_err(classify)?;
        }
        tracing::info!(table, target, "the original system's table moved aside");
        moved.push(target);
    }
    tx.commit().map_err(classify)?;
    Ok(moved)
}

/// Whether a table of that name is in the current schema.
fn table_exists(tx: &mut postgres::Transaction<'_>, name: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_one("SELECT to_regclass(quote_ident($1)) IS NOT NULL", &[&name])
        .map_err(classify)?
        .get(0))
}

/// Imports the moved examples once: (imported now, imported before).
fn import(client: &mut postgres::Client) -> Result<(u64, u64), StoreError> {
    let source = format!("{MOVED_PREFIX}training_examples");
    let mut tx = client.transaction().map_err(classify)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(classify)?;
    if let Some(row) = tx
        .query_opt(
            "SELECT rows_imported FROM onthefly_imports WHERE source = $1",
            &[&source],
        )
        .map_err(classify)?
    {
        return Ok((0, row.get::<_, i64>(0).max(0) as u64));
    }
    if !table_exists(&mut tx, &source)? {
        return Err(StoreError::Refused(
            "the database holds no table of the original system (training_examples with its columns, \
             or justnews_training_examples)"
                .into(),
        ));
    }
    let rows = tx
        .query(
            &format!(
                "SELECT agent_name::text, task_type::text, input_text::text, expected_output::text, \
                 uncertainty_score::float8, importance_score::float8, source_url::text, \"timestamp\"::timestamptz, \
                 user_feedback::text, correction_priority::int4 FROM {source} ORDER BY \"timestamp\" NULLS FIRST, ctid"
            ),
            &[],
        )
        .map_err(classify)?;
    let mut ids = 0..0;
    let mut ops = Vec::with_capacity(rows.len());
    for (n, row) in rows.iter().enumerate() {
        if ids.is_empty() {
            let block: i64 = tx
                .query_one("SELECT nextval('onthefly_id_blocks')", &[])
                .map_err(classify)?
                .get(0);
            let start = (block.max(0) as u64) * ID_BLOCK_SIZE;
            ids = start.max(1)..start + ID_BLOCK_SIZE;
        }
        let id = ids.next().expect("a fresh block is not empty");
        let example = example_of(id, row).map_err(|reason| {
            StoreError::Refused(format!(
                "row {} of {source} (oldest first) cannot be imported: {reason}",
                n + 1
            ))
        })?;
        ops.push(StoreOp::Insert {
            example,
            split: Split::Train,
            state: ExampleState::Buffered,
        });
    }
    copy_examples(&mut tx, &ops)?;
    let imported = ops.len() as i64;
    tx.execute(
        "INSERT INTO onthefly_imports (source, rows_imported) VALUES ($1, $2)",
        &[&source, &imported],
    )
    .map_err(classify)?;
    tx.commit().map_err(classify)?;
    tracing::info!(rows = imported, source, "the original system's examples imported");
    Ok((imported as u64, 0))
}

/// One original row as an example; the original's defaults where it holds
/// NULL (scores 0.5, no source, priority 0, stamped now).
fn example_of(id: u64, row: &postgres::Row) -> Result<TrainingExample, String> {
    let text = |i: usize| row.get::<_, Option<String>>(i);
    let name = |i: usize, what: &str| text(i).filter(|s| !s.is_empty()).ok_or(format!("no {what}"));
    let score = |i: usize, what: &str| {
        let x = row.get::<_, Option<f64>>(i).unwrap_or(0.5);
        match (0.0..=1.0).contains(&x) {
            true => Ok(x),
            false => Err(format!("{what} {x} is outside 0..=1")),
        }
    };
    let output = text(3).ok_or("no expected_output")?;
    let value: serde_json::Value =
        serde_json::from_str(&output).map_err(|e| format!("expected_output is not JSON ({e})"))?;
    let input_text = text(2).ok_or("no input_text")?;
    let expected_output = Target::from_json(value);
    expected_output
        .validate("expected_output", &input_text)
        .map_err(|e| e.to_string())?;
    let priority = row.get::<_, Option<i32>>(9).unwrap_or(0);
    let correction_priority = u8::try_from(priority)
        .map_err(|_| format!("correction_priority {priority}"))
        .and_then(|p| Priority::try_from(p).map_err(|e| e.to_string()))?;
    Ok(TrainingExample {
        id: ExampleId(id),
        agent_name: name(0, "agent_name")?,
        task_type: name(1, "task_type")?,
        input_text,
        expected_output,
        uncertainty_score: score(4, "uncertainty_score")?,
        importance_score: score(5, "importance_score")?,
        source_url: text(6).unwrap_or_default(),
        timestamp: row.get::<_, Option<SystemTime>>(7).unwrap_or_else(SystemTime::now),
        user_feedback: text(8),
        correction_priority,
    })
}
