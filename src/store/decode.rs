//! The stored rows read back into examples and performance records, once
//! for both backends: each backend says how it reads a column of a kind
//! ([`Columns`]), and the decoders name the columns in the order of the
//! tables' `SELECT`s (`EXAMPLE_COLUMNS`, `PERFORMANCE_COLUMNS`).

use std::time::SystemTime;

use super::{id_from_stored, target_from_stored, ExampleState, Split, StoreError, StoredExample};
use crate::base::{unix_millis, ExampleId, ModelPerformance, Priority, TrainingExample};

/// One result row's columns by position, in the types the decoders need;
/// each backend maps its own column types (PostgreSQL's `SMALLINT`,
/// `TIMESTAMPTZ` and `JSONB`, SQLite's integers and text) onto them.
pub(crate) trait Columns {
    /// A `TEXT` column.
    fn text(&self, i: usize) -> Result<String, StoreError>;
    /// A `TEXT` column that may be `NULL`.
    fn optional_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// A floating-point column that may be `NULL`.
    fn optional_real(&self, i: usize) -> Result<Option<f64>, StoreError>;
    /// An integer column of any width that may be `NULL`.
    fn optional_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A boolean column.
    fn boolean(&self, i: usize) -> Result<bool, StoreError>;
    /// A JSON column.
    fn json(&self, i: usize) -> Result<serde_json::Value, StoreError>;
    /// A point in time.
    fn time(&self, i: usize) -> Result<SystemTime, StoreError>;

    /// A floating-point column.
    fn real(&self, i: usize) -> Result<f64, StoreError> {
        self.optional_real(i)?.ok_or_else(|| null(i))
    }

    /// An integer column of any width.
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.optional_int(i)?.ok_or_else(|| null(i))
    }
}

/// The error for a `NULL` where the schema allows none.
fn null(i: usize) -> StoreError {
    StoreError::Corrupt(format!("column {i} is NULL"))
}

/// A count or a duration stored as an integer; a negative one reads as 0.
fn unsigned(row: &impl Columns, i: usize) -> Result<u64, StoreError> {
    Ok(u64::try_from(row.int(i)?).unwrap_or(0))
}

/// A row of `training_examples`, its columns in the table's order.
pub(crate) fn example_from_row(row: &impl Columns) -> Result<StoredExample, StoreError> {
    let kind = row.text(4)?;
    Ok(StoredExample {
        example: TrainingExample {
            id: ExampleId(id_from_stored(row.int(0)?)?),
            agent_name: row.text(1)?,
            task_type: row.text(2)?,
            input_text: row.text(3)?,
            expected_output: target_from_stored(&kind, row.json(5)?)?,
            uncertainty_score: row.real(6)?,
            importance_score: row.real(7)?,
            source_url: row.text(8)?,
            timestamp: row.time(9)?,
            user_feedback: row.optional_text(10)?,
            correction_priority: Priority::try_from(row.int(11)?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        },
        split: Split::parse(&row.text(12)?)?,
        state: ExampleState::parse(&row.text(13)?)?,
        update_id: row.optional_int(14)?.map(id_from_stored).transpose()?,
    })
}

/// A row of `model_performance`, its columns in the table's order.
pub(crate) fn performance_from_row(row: &impl Columns) -> Result<ModelPerformance, StoreError> {
    Ok(ModelPerformance {
        update_id: id_from_stored(row.int(0)?)?,
        agent_name: row.text(1)?,
        task_type: row.text(2)?,
        model_name: row.text(3)?,
        metric: row.text(4)?,
        accuracy_before: row.optional_real(5)?,
        accuracy_after: row.optional_real(6)?,
        held_out_examples: unsigned(row, 7)? as usize,
        examples_trained: unsigned(row, 8)? as usize,
        train_loss: row.optional_real(9)?.unwrap_or(f64::NAN),
        update_timestamp_ms: unix_millis(row.time(10)?),
        rollback_triggered: row.boolean(11)?,
        rollback_reason: row.optional_text(12)?,
        model_version: id_from_stored(row.int(13)?)?,
        duration_ms: unsigned(row, 14)?,
    })
}
