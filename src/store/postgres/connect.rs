//! Connecting to PostgreSQL: one connection with a clear error when the
//! server cannot be reached, the classification of driver errors, and the
//! refusal of a database that holds tables of something else.

use std::time::Duration;

use postgres::{NoTls, Transaction};

use crate::store::StoreError;

/// A lost connection, a connection exception, or the server shutting down or
/// out of resources is worth retrying; anything else was refused.
/// Before the first migration: a table of the library's names that it did
/// not create (the original JustNews system's `training_examples`, most
/// likely) is an error that names it and the way out, not "relation
/// already exists" half-way through the schema.
pub(super) fn refuse_foreign_tables(tx: &mut Transaction<'_>) -> Result<(), StoreError> {
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
pub(super) fn cannot_connect(e: postgres::Error, config: &postgres::Config) -> StoreError {
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
