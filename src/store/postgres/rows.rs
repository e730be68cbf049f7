//! Rows in and out of PostgreSQL: examples copied in, performance records,
//! checkpoint records and replay members written, rows decoded; shared
//! with the cluster mode, which writes in its own transactions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row, Transaction};

use super::connect::classify;
use super::EXAMPLE_TYPES;
use crate::base::{ExampleId, ModelPerformance};
use crate::store::decode::{example_from_row, Columns};
use crate::store::{
    id_from_stored, id_to_stored, target_kind_str, CheckpointRecord, StoreError, StoreOp, EXAMPLE_COLUMNS,
    PERFORMANCE_COLUMNS,
};

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

pub(super) fn upsert_checkpoint(tx: &mut Transaction<'_>, c: &CheckpointRecord) -> Result<(), StoreError> {
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
) -> Result<Vec<crate::store::ReplayMembers>, StoreError> {
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
            &crate::store::replay_counts_sql("(NOT $1 OR (t.agent_name = $2 AND t.task_type = $3))"),
            &[&only, &agent, &task_type],
        )
        .map_err(classify)?
        .iter()
        .map(|row| {
            let kind: String = row.get(2);
            let label: Option<serde_json::Value> = row.get(3);
            let n: i64 = row.get(4);
            let pool = label.and_then(|value| crate::store::replay_pool(&kind, &value));
            Ok((row.get(0), row.get(1), pool, id_from_stored(n)?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(crate::store::group_replay(examples, counts))
}

/// PostgreSQL's columns: integers of any width, `TIMESTAMPTZ`, `JSONB`. A
/// value that does not read as its column's type is corrupt.
impl Columns for Row {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.try_get(i).map_err(|e| unreadable(i, e))
    }

    fn optional_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.try_get(i).map_err(|e| unreadable(i, e))
    }

    fn optional_real(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.try_get(i).map_err(|e| unreadable(i, e))
    }

    fn optional_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        let read = match self.columns().get(i).map(|c| c.type_()) {
            Some(&Type::INT2) => self.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from)),
            Some(&Type::INT4) => self.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)),
            _ => self.try_get(i),
        };
        read.map_err(|e| unreadable(i, e))
    }

    fn boolean(&self, i: usize) -> Result<bool, StoreError> {
        self.try_get(i).map_err(|e| unreadable(i, e))
    }

    fn json(&self, i: usize) -> Result<serde_json::Value, StoreError> {
        self.try_get(i).map_err(|e| unreadable(i, e))
    }

    fn time(&self, i: usize) -> Result<SystemTime, StoreError> {
        self.try_get(i).map_err(|e| unreadable(i, e))
    }
}

/// The error for a column that does not read as the type asked for.
fn unreadable(i: usize, e: postgres::Error) -> StoreError {
    StoreError::Corrupt(format!("column {i}: {e}"))
}
