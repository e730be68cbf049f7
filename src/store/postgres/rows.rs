//! Rows in and out of PostgreSQL: examples copied in, performance records,
//! checkpoint records and replay members written, rows decoded; shared
//! with the cluster mode, which writes in its own transactions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::ToSql;
use postgres::{GenericClient, Row, Transaction};

use super::connect::classify;
use super::EXAMPLE_TYPES;
use crate::base::{ExampleId, ModelPerformance, Priority, TrainingExample};
use crate::store::{
    id_from_stored, id_to_stored, target_from_stored, target_kind_str, CheckpointRecord, ExampleState, Split,
    StoreError, StoreOp, StoredExample, EXAMPLE_COLUMNS, PERFORMANCE_COLUMNS,
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

pub(super) fn performance_from_row(row: &Row) -> Result<ModelPerformance, StoreError> {
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
