//! The library's own, versioned migrations: one schema, the same in
//! PostgreSQL and SQLite apart from column types (`TIMESTAMPTZ` / milliseconds
//! since the Unix epoch, `JSONB` / JSON text, `BOOLEAN` / 0 or 1).
//!
//! `onthefly_schema_version` holds one row per applied migration. A store
//! opened on a schema newer than [`LATEST`] refuses to run rather than guess.

/// One step of the schema: its SQL written once, with the column types
/// that differ as markers ([`Dialect`]).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number; applied in increasing order, each once.
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// Statements only PostgreSQL runs, before `sql` (the id sequence of
    /// several instances).
    pub postgres_first: &'static str,
    /// Its SQL, with `{INT}`, `{SMALLINT}`, `{REAL}`, `{JSON}`, `{TIME}`,
    /// `{BOOL}`, `{BYTES}`, `{FALSE}` and `{NOW}` (a column default of the
    /// current time) where the two stores differ.
    pub sql: &'static str,
}

/// The two stores' SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL 15.
    Postgres,
    /// The embedded SQLite.
    Sqlite,
}

impl Dialect {
    /// What each marker of [`Migration::sql`] is in this dialect.
    fn types(self) -> [(&'static str, &'static str); 9] {
        match self {
            Dialect::Postgres => [
                ("{INT}", "BIGINT"),
                ("{SMALLINT}", "SMALLINT"),
                ("{REAL}", "DOUBLE PRECISION"),
                ("{JSON}", "JSONB"),
                ("{TIME}", "TIMESTAMPTZ"),
                ("{BOOL}", "BOOLEAN"),
                ("{BYTES}", "BYTEA"),
                ("{FALSE}", "false"),
                ("{NOW}", " DEFAULT now()"),
            ],
            Dialect::Sqlite => [
                ("{INT}", "INTEGER"),
                ("{SMALLINT}", "INTEGER"),
                ("{REAL}", "REAL"),
                ("{JSON}", "TEXT"),
                ("{TIME}", "INTEGER"),
                ("{BOOL}", "INTEGER"),
                ("{BYTES}", "BLOB"),
                ("{FALSE}", "0"),
                ("{NOW}", ""),
            ],
        }
    }
}

impl Migration {
    /// Its statements in `dialect`.
    pub fn sql_for(&self, dialect: Dialect) -> String {
        let body = dialect
            .types()
            .iter()
            .fold(self.sql.to_string(), |sql, (marker, written)| {
                sql.replace(marker, written)
            });
        match dialect {
            Dialect::Postgres => format!("{}{body}", self.postgres_first),
            Dialect::Sqlite => body,
        }
    }
}

/// The table recording applied migrations.
pub const VERSION_TABLE: &str = "onthefly_schema_version";

/// The ids of one block (see [`crate::cluster`]): `block × ID_BLOCK_SIZE` up
/// to the next block. Version 2's sequence starts above every id stored before.
pub const ID_BLOCK_SIZE: u64 = 1 << 20;

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "training examples, update records, checkpoints",
        postgres_first: "",
        sql: r#"
CREATE TABLE training_examples (
    id {INT} PRIMARY KEY,
    agent_name TEXT NOT NULL,
    task_type TEXT NOT NULL,
    input_text TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    expected_output {JSON} NOT NULL,
    uncertainty_score {REAL} NOT NULL,
    importance_score {REAL} NOT NULL,
    source_url TEXT NOT NULL,
    "timestamp" {TIME} NOT NULL,
    user_feedback TEXT,
    correction_priority {SMALLINT} NOT NULL,
    split TEXT NOT NULL,
    state TEXT NOT NULL,
    update_id {INT}
);
CREATE INDEX training_examples_by_state ON training_examples (state, agent_name);
CREATE INDEX training_examples_by_task ON training_examples (agent_name, task_type, id);
CREATE TABLE model_performance (
    update_id {INT} PRIMARY KEY,
    agent_name TEXT NOT NULL,
    task_type TEXT NOT NULL,
    model_name TEXT NOT NULL,
    metric TEXT NOT NULL,
    accuracy_before {REAL},
    accuracy_after {REAL},
    held_out_examples {INT} NOT NULL,
    examples_trained {INT} NOT NULL,
    train_loss {REAL},
    update_timestamp {TIME} NOT NULL,
    rollback_triggered {BOOL} NOT NULL,
    rollback_reason TEXT,
    model_version {INT} NOT NULL,
    duration_ms {INT} NOT NULL
);
CREATE INDEX model_performance_by_task ON model_performance (agent_name, task_type, update_id);
CREATE TABLE model_checkpoints (
    agent_name TEXT NOT NULL,
    task_type TEXT NOT NULL,
    version {INT} NOT NULL,
    path TEXT NOT NULL,
    accepted {BOOL} NOT NULL,
    metrics {JSON} NOT NULL,
    created_at {TIME} NOT NULL,
    PRIMARY KEY (agent_name, task_type, version)
);
"#,
    },
    Migration {
        version: 2,
        description: "several instances: id blocks, published checkpoints, instance heartbeats",
        postgres_first: r#"
CREATE SEQUENCE onthefly_id_blocks;
SELECT setval('onthefly_id_blocks', GREATEST(
    (SELECT COALESCE(max(id), 0) FROM training_examples),
    (SELECT COALESCE(max(update_id), 0) FROM training_examples),
    (SELECT COALESCE(max(update_id), 0) FROM model_performance)) / 1048576 + 1);
"#,
        sql: r#"
ALTER TABLE model_checkpoints ADD COLUMN data {BYTES};
ALTER TABLE model_checkpoints ADD COLUMN instance_id TEXT;
CREATE INDEX training_examples_buffered ON training_examples (agent_name, task_type) WHERE state = 'buffered';
CREATE INDEX training_examples_evaluation ON training_examples (agent_name, task_type, "timestamp")
    WHERE state = 'evaluation';
CREATE TABLE onthefly_instances (
    instance_id TEXT PRIMARY KEY,
    started_at {TIME} NOT NULL,
    heartbeat_at {TIME} NOT NULL,
    serving {JSON} NOT NULL
);
"#,
    },
    Migration {
        version: 3,
        description: "replay memories: which trained examples each task remembers",
        postgres_first: "",
        sql: r#"
ALTER TABLE training_examples ADD COLUMN replay {BOOL} NOT NULL DEFAULT {FALSE};
CREATE INDEX training_examples_replay ON training_examples (agent_name, task_type) WHERE replay;
"#,
    },
    Migration {
        version: 4,
        description: "imports of the original JustNews system's examples (see store::adopt)",
        postgres_first: "",
        sql: r#"
CREATE TABLE onthefly_imports (
    source TEXT PRIMARY KEY,
    rows_imported {INT} NOT NULL,
    imported_at {TIME} NOT NULL{NOW}
);
"#,
    },
    Migration {
        version: 5,
        description: "tasks: what each declared task learns and how its labels are written",
        postgres_first: "",
        sql: r#"
CREATE TABLE onthefly_tasks (
    agent_name TEXT NOT NULL,
    task_type TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    label_form TEXT,
    PRIMARY KEY (agent_name, task_type)
);
"#,
    },
    Migration {
        version: 6,
        description: "retention: each agent's deleted settled rows, counted per state",
        postgres_first: "",
        sql: r#"
CREATE TABLE onthefly_retired (
    agent_name TEXT NOT NULL,
    state TEXT NOT NULL,
    retired {INT} NOT NULL,
    PRIMARY KEY (agent_name, state)
);
CREATE INDEX training_examples_by_time ON training_examples ("timestamp");
"#,
    },
    Migration {
        version: 7,
        description: "several instances: the published version that rejected a buffered example",
        postgres_first: "",
        sql: r#"
ALTER TABLE training_examples ADD COLUMN rejected_at {INT};
"#,
    },
];

/// The newest schema version this library knows.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The migrations still to apply to a schema at `current`.
pub fn pending(current: i64) -> impl Iterator<Item = &'static Migration> {
    MIGRATIONS.iter().filter(move |m| m.version > current)
}

/// Refuses a schema this library does not know.
pub fn check_not_newer(current: i64) -> Result<(), super::StoreError> {
    if current > LATEST {
        return Err(super::StoreError::SchemaTooNew {
            found: current,
            supported: LATEST,
        });
    }
    Ok(())
}

/// What one backend does at each step of a migration, inside the one
/// transaction (and, for PostgreSQL, the advisory lock) it holds for it.
pub(super) trait MigrationSteps {
    /// The version the schema is at (0 for an empty database), after
    /// creating the version table if needed.
    fn current_version(&mut self) -> Result<i64, super::StoreError>;
    /// Before the first migration of an empty schema (PostgreSQL refuses a
    /// database holding another program's tables of the same names).
    fn before_first(&mut self) -> Result<(), super::StoreError> {
        Ok(())
    }
    /// Runs `migration`'s statements and records it in the version table.
    fn apply(&mut self, migration: &Migration) -> Result<(), super::StoreError>;
}

/// The migration sequence, once for both stores: refuse a newer schema,
/// then apply each pending migration in order.
pub(super) fn migrate_with(steps: &mut impl MigrationSteps, backend: &str) -> Result<(), super::StoreError> {
    let current = steps.current_version()?;
    check_not_newer(current)?;
    if current == 0 {
        steps.before_first()?;
    }
    for migration in pending(current) {
        steps.apply(migration)?;
        tracing::info!(
            backend,
            version = migration.version,
            description = migration.description,
            "schema migrated"
        );
    }
    Ok(())
}

/// Which rows a recovery query ranks, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ranked {
    /// Buffered examples per agent, most valuable first.
    Buffered,
    /// Held-out examples per (agent, task), newest first.
    HeldOut,
    /// Kept examples per agent, newest first.
    Kept,
    /// Predictions waiting for review per (agent, task), newest first.
    PendingReview,
    /// Quarantined examples per (agent, task), newest first (offered for review).
    Quarantined,
}

impl Ranked {
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Ranked::Buffered => (
                "buffered",
                "agent_name",
                "correction_priority DESC, importance_score DESC, id DESC",
            ),
            Ranked::HeldOut => ("evaluation", "agent_name, task_type", "id DESC"),
            Ranked::Kept => ("kept", "agent_name", "id DESC"),
            Ranked::PendingReview => ("pending_review", "agent_name, task_type", "id DESC"),
            Ranked::Quarantined => ("quarantined", "agent_name, task_type", "id DESC"),
        }
    }

    /// The rows ranked within the limit (bound to `limit`, a parameter marker such
    /// as `$1` or `?1`), in rank order per group; the same SQL in both
    /// backends (window functions).
    pub fn select(self, cols: &str, limit: &str) -> String {
        let (state, partition, order) = self.parts();
        format!(
            "SELECT {cols} FROM (SELECT {cols}, row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS rn \
             FROM training_examples WHERE state = '{state}') ranked WHERE rn <= {limit} ORDER BY {partition}, rn"
        )
    }

    /// Marks the rows beyond the limit evicted, to be taken back and trained
    /// (buffered examples beyond a buffer's bound, held-out ones beyond a
    /// window's).
    pub fn evict_beyond(self, limit: &str) -> String {
        let (state, partition, order) = self.parts();
        format!(
            "UPDATE training_examples SET state = 'evicted' WHERE id IN (SELECT id FROM (SELECT id, \
             row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS rn FROM training_examples \
             WHERE state = '{state}') ranked WHERE rn > {limit})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_is_written_out_in_both_dialects() {
        for m in MIGRATIONS {
            for dialect in [Dialect::Postgres, Dialect::Sqlite] {
                let sql = m.sql_for(dialect);
                assert!(
                    !sql.contains('{') && !sql.contains('}'),
                    "v{} {dialect:?}: {sql}",
                    m.version
                );
            }
        }
        let v1 = MIGRATIONS[0].sql_for(Dialect::Sqlite);
        assert!(v1.contains("expected_output TEXT NOT NULL") && v1.contains("\"timestamp\" INTEGER NOT NULL"));
        let v1 = MIGRATIONS[0].sql_for(Dialect::Postgres);
        assert!(v1.contains("expected_output JSONB NOT NULL") && v1.contains("\"timestamp\" TIMESTAMPTZ NOT NULL"));
    }
}
