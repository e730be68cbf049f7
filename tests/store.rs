//! The store, on both backends: every field round-trips, replays are
//! idempotent, migrations are versioned, a restarted coordinator gets its
//! buffers, held-out windows and history back, credentials never leak, and
//! a row that does not decode is a typed error.
//! The PostgreSQL half runs against the cluster `make test` starts (and fails
//! without it).

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::db::{fresh_database, postgres_config};
use common::{example, label, small_config};
use onthefly::store::{
    self, schema, CheckpointRecord, ExampleState, ExampleStore, PostgresStore, RecoveryLimits, Split, SqliteStore,
    StoreError, StoreOp,
};
use onthefly::{
    Config, Coordinator, DatabaseConfig, ExampleId, ModelPerformance, NewExample, Priority, Target, TrainingExample,
};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh configuration and store of the backend.
fn fresh(backend: Backend) -> (Config, Arc<dyn ExampleStore>) {
    let config = match backend {
        Backend::Sqlite => small_config(),
        Backend::Postgres => postgres_config(&fresh_database()),
    };
    let store = store::open(config.database.as_ref(), &config.store, &config.data_dir).unwrap();
    (config, store)
}

fn at_ms(ms: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Examples with every kind of awkward content.
fn awkward_examples() -> Vec<TrainingExample> {
    // 1 MB (10⁶ bytes, under the 1 MiB input limit) of mixed-width characters.
    let mut megabyte = String::new();
    for c in "ünïcødé, 'quoted' \"double\" \\ back; 東京 🚀 ".chars().cycle() {
        if megabyte.len() + c.len_utf8() > 1_000_000 {
            break;
        }
        megabyte.push(c);
    }
    let cases: Vec<(String, Target)> = vec![
        ("Grüße aus Köln — 東京 🚀 ½".into(), label("übersicht")),
        (
            "It's a \"quoted\" text with \\ backslashes and\ttabs\nand lines".into(),
            label("o'brien"),
        ),
        (
            "'); DROP TABLE training_examples; --".into(),
            label("x'; DELETE FROM model_performance; --"),
        ),
        ("score me".into(), Target::Score(0.125)),
        (
            "New York Times reports".into(),
            Target::Tags(vec!["B-ORG".into(), "I-ORG".into(), "I-ORG".into(), "O".into()]),
        ),
        (
            "free json".into(),
            Target::Json(serde_json::json!({"summary": "a 'b' \"c\"", "n": [1, 2.5, null], "nested": {"ok": true}})),
        ),
        (
            "a string that is not a label".into(),
            Target::Json(serde_json::json!("just text")),
        ),
        (megabyte, label("long")),
    ];
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (text, target))| TrainingExample {
            uncertainty_score: 0.1 * i as f64 / 7.0,
            importance_score: 1.0 - 0.1 * i as f64,
            source_url: if i % 2 == 0 {
                String::new()
            } else {
                format!("https://example.org/a?b='{i}'&c=\"d\"")
            },
            user_feedback: (i % 3 == 0).then(|| format!("feedback «{i}» with 'quotes'")),
            correction_priority: Priority::try_from((i % 4) as u8).unwrap(),
            timestamp: at_ms(1_764_000_000_123 + i as u64),
            ..TrainingExample::new(i as u64 + 1, "scout", format!("task_{i}"), text, target)
        })
        .collect()
}

fn performance(update_id: u64, version: u64, rolled_back: bool) -> ModelPerformance {
    ModelPerformance {
        update_id,
        agent_name: "scout".into(),
        task_type: "task_0".into(),
        model_name: "text_classifier".into(),
        metric: "accuracy".into(),
        accuracy_before: if update_id == 100 { None } else { Some(0.5) },
        accuracy_after: Some(0.625),
        held_out_examples: 40,
        examples_trained: 7,
        train_loss: if rolled_back { f64::NAN } else { 0.75 },
        update_timestamp_ms: 1_764_000_000_999 + update_id,
        rollback_triggered: rolled_back,
        rollback_reason: rolled_back.then(|| "held-out 'accuracy' fell".to_string()),
        model_version: version,
        duration_ms: 1234,
    }
}

fn round_trip(backend: Backend) {
    let (_, store) = fresh(backend);
    let examples = awkward_examples();
    let mut ops: Vec<StoreOp> = examples
        .iter()
        .enumerate()
        .map(|(i, e)| StoreOp::Insert {
            example: e.clone(),
            split: if i == 1 { Split::HeldOut } else { Split::Train },
            state: if i == 1 {
                ExampleState::Evaluation
            } else {
                ExampleState::Buffered
            },
        })
        .collect();
    ops.push(StoreOp::SetState {
        ids: vec![ExampleId(3), ExampleId(4)],
        state: ExampleState::Trained,
        update_id: Some(100),
    });
    ops.push(StoreOp::Performance(performance(100, 1, false)));
    ops.push(StoreOp::Performance(performance(101, 1, true)));
    let checkpoint = CheckpointRecord {
        agent_name: "scout".into(),
        task_type: "task_0".into(),
        version: 1,
        path: "/data/models/scout/task_0/v00000001.ckpt".into(),
        accepted: true,
        metrics: serde_json::json!({"before": null, "after": 0.625}),
        created_ms: 1_764_000_001_000,
    };
    ops.push(StoreOp::Checkpoint(checkpoint.clone()));
    store.write(&ops).unwrap();

    let stored = store.examples(None).unwrap();
    assert_eq!(stored.len(), examples.len());
    for (i, (s, e)) in stored.iter().zip(&examples).enumerate() {
        assert_eq!(&s.example, e, "{backend:?}: example {i} changed on the way");
        let trained = i == 2 || i == 3;
        assert_eq!(s.split, if i == 1 { Split::HeldOut } else { Split::Train });
        let expected_state = match i {
            1 => ExampleState::Evaluation,
            _ if trained => ExampleState::Trained,
            _ => ExampleState::Buffered,
        };
        assert_eq!(s.state, expected_state, "{backend:?}: state of example {i}");
        assert_eq!(s.update_id, trained.then_some(100));
    }
    assert_eq!(store.examples(Some("nobody")).unwrap().len(), 0);
    assert_eq!(store.checkpoints("scout", "task_0").unwrap(), vec![checkpoint]);

    let recovered = store
        .recover(&RecoveryLimits {
            buffered_per_agent: Some(100),
            held_out_per_task: Some(100),
            kept_per_agent: 100,
            history: 100,
            pending_per_task: 100,
        })
        .unwrap();
    assert_eq!(recovered.history_total, 2);
    assert_eq!(recovered.history[0], performance(100, 1, false));
    let rolled_back = &recovered.history[1];
    assert!(rolled_back.train_loss.is_nan(), "a NaN loss comes back as NaN");
    assert_eq!(
        ModelPerformance {
            train_loss: 0.0,
            ..rolled_back.clone()
        },
        ModelPerformance {
            train_loss: 0.0,
            ..performance(101, 1, true)
        }
    );
    assert_eq!(
        recovered.next_id, 102,
        "ids continue after the highest example or update id"
    );
    assert_eq!(recovered.held_out.len(), 1);
    assert_eq!(recovered.buffered.len(), examples.len() - 3);
}

#[test]
fn every_field_round_trips_in_sqlite() {
    round_trip(Backend::Sqlite);
}

#[test]
fn every_field_round_trips_in_postgres() {
    round_trip(Backend::Postgres);
}

fn replays_are_idempotent(backend: Backend) {
    let (_, store) = fresh(backend);
    let batch: Vec<StoreOp> = awkward_examples()
        .into_iter()
        .take(5)
        .map(|e| StoreOp::Insert {
            example: e,
            split: Split::Train,
            state: ExampleState::Buffered,
        })
        .chain([
            StoreOp::SetState {
                ids: vec![ExampleId(1)],
                state: ExampleState::Evicted,
                update_id: None,
            },
            StoreOp::Performance(performance(7, 1, false)),
        ])
        .collect();
    store.write(&batch).unwrap();
    store.write(&batch).unwrap();
    // A batch that contains the same insert twice.
    store.write(&[batch[2].clone(), batch[2].clone()]).unwrap();
    let stored = store.examples(None).unwrap();
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[0].state, ExampleState::Evicted);
    let limits = RecoveryLimits {
        buffered_per_agent: Some(10),
        held_out_per_task: Some(10),
        kept_per_agent: 10,
        history: 10,
        pending_per_task: 10,
    };
    assert_eq!(store.recover(&limits).unwrap().history_total, 1);
}

/// Runs `sql` on the backend's database directly, as a damaged disk or a
/// person with a SQL prompt might.
fn tamper(backend: Backend, config: &Config, sql: &str) {
    match backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(config.data_dir.join(store::SQLITE_FILE)).unwrap();
            conn.execute_batch(sql).unwrap();
        }
        Backend::Postgres => {
            let url = config.database.as_ref().unwrap().url.clone();
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client.batch_execute(sql).unwrap();
        }
    }
}

/// A stored row that does not decode is a `Corrupt` error naming what is
/// wrong, on both backends, never a panic or a default.
fn unreadable_rows_are_corrupt(backend: Backend) {
    let corrupt = |store: &Arc<dyn ExampleStore>, what: &str| match store.examples(None) {
        Err(StoreError::Corrupt(message)) => message,
        other => panic!("{backend:?}: {what} read as {other:?}"),
    };
    let (config, store) = fresh(backend);
    let insert = |e: TrainingExample| StoreOp::Insert {
        example: e,
        split: Split::Train,
        state: ExampleState::Buffered,
    };
    store
        .write(&awkward_examples().into_iter().take(2).map(insert).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(store.examples(None).unwrap().len(), 2);

    tamper(
        backend,
        &config,
        "UPDATE training_examples SET correction_priority = 9 WHERE id = 2",
    );
    let message = corrupt(&store, "a priority of 9");
    assert!(message.contains('9'), "{backend:?}: {message}");

    tamper(backend, &config, "UPDATE training_examples SET correction_priority = 0");
    assert_eq!(store.examples(None).unwrap().len(), 2, "{backend:?}: repaired");
    tamper(
        backend,
        &config,
        "UPDATE training_examples SET target_kind = 'score' WHERE id = 1",
    );
    let message = corrupt(&store, "a label stored as a score");
    assert!(message.contains("score"), "{backend:?}: {message}");

    if let Backend::Postgres = backend {
        // A column that lost its NOT NULL (a hand-made migration): reading
        // it as text is an error, not a panic inside the driver.
        tamper(
            backend,
            &config,
            "UPDATE training_examples SET target_kind = 'label';
             ALTER TABLE training_examples ALTER COLUMN source_url DROP NOT NULL;
             UPDATE training_examples SET source_url = NULL WHERE id = 2",
        );
        let message = corrupt(&store, "a NULL source");
        assert!(message.contains("column 8"), "{message}");
    }
}

#[test]
fn unreadable_rows_are_corrupt_in_sqlite() {
    unreadable_rows_are_corrupt(Backend::Sqlite);
}

#[test]
fn unreadable_rows_are_corrupt_in_postgres() {
    unreadable_rows_are_corrupt(Backend::Postgres);
}

#[test]
fn replayed_batches_store_nothing_twice_in_sqlite() {
    replays_are_idempotent(Backend::Sqlite);
}

#[test]
fn replayed_batches_store_nothing_twice_in_postgres() {
    replays_are_idempotent(Backend::Postgres);
}

#[test]
fn version_2_hands_out_id_blocks_above_every_id_a_version_1_database_holds() {
    let url = fresh_database();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // A database an earlier library version created and filled.
    let v1 = &schema::MIGRATIONS[0];
    client
        .batch_execute(&format!(
            "CREATE TABLE onthefly_schema_version (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()); {} \
             INSERT INTO onthefly_schema_version (version, description) VALUES (1, 'v1');",
            v1.sql_for(schema::Dialect::Postgres)
        ))
        .unwrap();
    client
        .execute(
            "INSERT INTO training_examples VALUES (5000000, 'scout', 'news', 'text', 'label', '\"a\"', 0, 0, '', \
             now(), NULL, 0, 'train', 'trained', 7000000)",
            &[],
        )
        .unwrap();
    let pg = PostgresStore::connect(&url, 2, Duration::from_secs(5)).unwrap();
    assert_eq!(pg.schema_version().unwrap(), schema::LATEST);
    let block: i64 = client
        .query_one("SELECT nextval('onthefly_id_blocks')", &[])
        .unwrap()
        .get(0);
    assert!(block as u64 * schema::ID_BLOCK_SIZE > 7_000_000, "block {block}");
    assert_eq!(pg.examples(None).unwrap().len(), 1, "the row survived the migration");
}

#[test]
fn migrations_are_versioned_and_a_newer_schema_is_refused() {
    // SQLite.
    let config = small_config();
    let file = config.data_dir.join(store::SQLITE_FILE);
    let sqlite = SqliteStore::open(&file).unwrap();
    assert_eq!(sqlite.schema_version().unwrap(), schema::LATEST);
    drop(sqlite);
    // Opening again applies nothing and keeps the data.
    assert_eq!(
        SqliteStore::open(&file).unwrap().schema_version().unwrap(),
        schema::LATEST
    );
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.execute(
        "INSERT INTO onthefly_schema_version (version, description, applied_at) VALUES (999, 'future', 0)",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(matches!(
        SqliteStore::open(&file),
        Err(StoreError::SchemaTooNew { found: 999, .. })
    ));

    // PostgreSQL.
    let url = fresh_database();
    let timeout = Duration::from_secs(5);
    let pg = PostgresStore::connect(&url, 2, timeout).unwrap();
    assert_eq!(pg.schema_version().unwrap(), schema::LATEST);
    drop(pg);
    let pg = PostgresStore::connect(&url, 2, timeout).unwrap();
    assert_eq!(pg.schema_version().unwrap(), schema::LATEST);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let versions: i64 = client
        .query_one("SELECT count(*) FROM onthefly_schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(versions, schema::MIGRATIONS.len() as i64, "each migration applied once");
    client
        .execute(
            "INSERT INTO onthefly_schema_version (version, description) VALUES (999, 'future')",
            &[],
        )
        .unwrap();
    assert!(matches!(
        PostgresStore::connect(&url, 2, timeout),
        Err(StoreError::SchemaTooNew { found: 999, .. })
    ));
}

fn restart_recovers_buffers_windows_and_history(backend: Backend) {
    let (mut config, _) = fresh(backend);
    config.update_threshold = 1_000;
    config.held_out_fraction = 0.3;
    let (buffers, held_out, history, last_id) = {
        let c = Coordinator::new(config.clone()).unwrap();
        for i in 0..120 {
            c.add_training_example(example("scout", i, ["bbc", "cnn", "fox"][i % 3]))
                .unwrap();
        }
        for i in 0..30 {
            c.add_training_example(example("critic", i, ["pos", "neg"][i % 2]))
                .unwrap();
        }
        // One update of the critic leaves a history record and trained rows.
        c.force_update_agent("critic").unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(120)));
        let last = c
            .add_training_example(
                NewExample::new("scout", "news", "a correction to remember", label("bbc")).with_priority(Priority::Low),
            )
            .unwrap()
            .id;
        c.flush(Duration::from_secs(30)).unwrap();
        let status = c.get_training_status();
        assert_eq!(status.store.as_ref().unwrap().backlog, 0);
        let held: Vec<u64> = ["scout", "critic"]
            .iter()
            .map(|a| status.agents[*a].examples_held_out)
            .collect();
        (status.buffer_sizes, held, c.performance_history(), last)
        // Dropped here: a restart.
    };
    assert_eq!(history.len(), 1);
    assert!(buffers["scout"] > 50, "scout keeps its buffer: {buffers:?}");
    assert_eq!(buffers["critic"], 0, "the critic's examples were trained");

    let c = Coordinator::new(config).unwrap();
    let status = c.get_training_status();
    assert_eq!(
        status.buffer_sizes, buffers,
        "{backend:?}: same buffers after the restart"
    );
    for (agent, held) in ["scout", "critic"].iter().zip(&held_out) {
        assert_eq!(
            status.agents[*agent].examples_held_out, *held,
            "{backend:?}: {agent}'s held-out window"
        );
    }
    assert_eq!(c.performance_history(), history, "{backend:?}: same history");
    assert_eq!(status.performance_history_size, 1);
    let next = c.add_training_example(example("scout", 999, "bbc")).unwrap().id;
    assert!(next.0 > last_id.0, "ids continue: {next} after {last_id}");
    let trained = c
        .store()
        .unwrap()
        .examples(Some("critic"))
        .unwrap()
        .into_iter()
        .filter(|s| s.state == ExampleState::Trained)
        .map(|s| s.update_id)
        .collect::<Vec<_>>();
    assert!(!trained.is_empty());
    assert!(
        trained.iter().all(|u| *u == Some(history[0].update_id)),
        "trained rows name their update"
    );
}

#[test]
fn a_restart_on_sqlite_gets_the_same_buffers_and_history() {
    restart_recovers_buffers_windows_and_history(Backend::Sqlite);
}

#[test]
fn a_restart_on_postgres_gets_the_same_buffers_and_history() {
    restart_recovers_buffers_windows_and_history(Backend::Postgres);
}

#[test]
fn a_restart_with_a_smaller_buffer_keeps_the_most_valuable_and_marks_the_rest_evicted() {
    let (mut config, _) = fresh(Backend::Sqlite);
    config.update_threshold = 1_000;
    {
        let c = Coordinator::new(config.clone()).unwrap();
        for i in 0..40 {
            let priority = if i % 10 == 0 { Priority::Medium } else { Priority::Low };
            c.add_training_example(example("scout", i, "bbc").with_priority(priority))
                .unwrap();
        }
        c.flush(Duration::from_secs(30)).unwrap();
    }
    config.max_buffer_size = 10;
    config.update_threshold = 10;
    let c = Coordinator::new(config).unwrap();
    // The full buffer trains at once: the 10 most valuable first; the 30
    // evicted ones are taken back from the store once it has caught up.
    assert!(c.wait_for_idle(Duration::from_secs(120)));
    c.flush(Duration::from_secs(30)).unwrap();
    let rows = c.store().unwrap().examples(Some("scout")).unwrap();
    assert!(
        rows.iter().all(|s| s.state == ExampleState::Trained),
        "every row trained"
    );
    let first_update = rows.iter().filter_map(|s| s.update_id).min().unwrap();
    let first: Vec<_> = rows.iter().filter(|s| s.update_id == Some(first_update)).collect();
    assert_eq!(first.len(), 10);
    assert_eq!(
        first
            .iter()
            .filter(|s| s.example.correction_priority == Priority::Medium)
            .count(),
        4,
        "the four priority-1 examples were kept for the first update"
    );
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!((scout.examples_trained, scout.examples_taken_back), (40, 30));
}

#[test]
fn the_coordinator_persists_what_agents_hand_in_unchanged() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (mut config, _) = fresh(backend);
        config.update_threshold = 1_000;
        let c = Coordinator::new(config).unwrap();
        let mut sent = Vec::new();
        for e in awkward_examples() {
            let new = NewExample {
                user_feedback: e.user_feedback.clone(),
                ..NewExample::new(e.agent_name, e.task_type, e.input_text, e.expected_output)
                    .with_source(e.source_url)
                    .with_importance(e.importance_score)
                    .with_uncertainty(e.uncertainty_score)
                    .with_priority(Priority::Low)
            };
            let id = c.add_training_example(new.clone()).unwrap().id;
            sent.push((id, new));
        }
        c.flush(Duration::from_secs(30)).unwrap();
        let stored = c.store().unwrap().examples(None).unwrap();
        assert_eq!(stored.len(), sent.len());
        for (s, (id, new)) in stored.iter().zip(&sent) {
            let e = &s.example;
            assert_eq!(e.id, *id);
            assert_eq!(
                (&e.agent_name, &e.task_type, &e.input_text, &e.expected_output),
                (&new.agent_name, &new.task_type, &new.input_text, &new.expected_output),
                "{backend:?}"
            );
            assert_eq!((&e.source_url, &e.user_feedback), (&new.source_url, &new.user_feedback));
            assert_eq!(
                (e.uncertainty_score, e.importance_score),
                (new.uncertainty_score, new.importance_score)
            );
        }
        c.shutdown();
    }
}

#[test]
fn credentials_never_appear_in_errors_logs_or_the_status() {
    let secret = "s3cr3t-Passw0rd";
    // Nothing listens on port 1.
    let config = Config {
        database: Some(DatabaseConfig {
            url: format!("postgresql://postgres:{secret}@127.0.0.1:1/nowhere"),
            pool_size: 2,
        }),
        store: onthefly::StoreConfig {
            connect_timeout_ms: 500,
            ..onthefly::StoreConfig::default()
        },
        ..small_config()
    };
    assert!(!format!("{config:?}").contains(secret));
    let error = Coordinator::new(config.clone()).unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(
        matches!(error, onthefly::Error::Store(StoreError::Unavailable(_))),
        "{text}"
    );
    assert!(!text.contains(secret), "the error shows the password: {text}");

    let bad = Config {
        database: Some(DatabaseConfig {
            url: format!("host=127.0.0.1 password={secret} port=notaport"),
            pool_size: 2,
        }),
        ..config
    };
    let text = Coordinator::new(bad).unwrap_err().to_string();
    assert!(!text.contains(secret), "{text}");

    // A working store: the status names the backend and the pool, not the URL.
    let url = fresh_database().replace("postgresql://postgres@", &format!("postgresql://postgres:{secret}@"));
    let c = Coordinator::new(postgres_config(&url)).unwrap();
    let status = serde_json::to_string(&c.get_training_status()).unwrap();
    assert!(!status.contains(secret));
    let pool = c.get_training_status().store.unwrap().pool.unwrap();
    assert_eq!(pool.max_size, 4);
    assert!(pool.connections >= 1 && pool.connections <= 4);
    assert_eq!(pool.in_use + pool.idle, pool.connections);
}

#[test]
fn an_operation_the_database_refuses_is_set_aside_not_lost_and_does_not_block_the_rest() {
    let (config, store) = fresh(Backend::Postgres);
    // A schema change behind the library's back makes one row unacceptable.
    let url = config.database.as_ref().unwrap().url.clone();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute("ALTER TABLE training_examples ADD CONSTRAINT no_forbidden CHECK (input_text <> 'forbidden')")
        .unwrap();
    drop(store);
    let c = Coordinator::new(Config {
        update_threshold: 1_000,
        ..config.clone()
    })
    .unwrap();
    for text in ["fine one", "forbidden", "fine two"] {
        c.add_training_example(NewExample::new("scout", "news", text, label("bbc")))
            .unwrap();
    }
    c.flush(Duration::from_secs(30)).unwrap();
    let status = c.get_training_status().store.unwrap();
    assert_eq!(status.rejected, 1);
    assert!(status.last_error.unwrap().contains("no_forbidden"));
    let texts: Vec<String> = c
        .store()
        .unwrap()
        .examples(None)
        .unwrap()
        .into_iter()
        .map(|s| s.example.input_text)
        .collect();
    assert_eq!(texts, ["fine one", "fine two"]);
    let rejected = std::fs::read_to_string(config.data_dir.join("spool/rejected.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 1);
    assert!(rejected.contains("forbidden") && rejected.contains("no_forbidden"));
}

/// A database that does not exist is named, with the way out, not reported
/// as "db error"; the password never appears.
#[test]
fn a_database_that_does_not_exist_is_named_in_the_error() {
    let url = common::database_url();
    let (base, _) = url.rsplit_once('/').unwrap();
    let missing = format!("{base}/otf_no_such_database_{}", std::process::id());
    let with_password = missing.replacen("postgres@", "postgres:s3cret@", 1);
    let err = match Coordinator::new(common::db::postgres_config(&with_password)) {
        Ok(_) => panic!("a coordinator on a database that does not exist"),
        Err(e) => e.to_string(),
    };
    eprintln!("{err}");
    let name = format!("otf_no_such_database_{}", std::process::id());
    assert!(err.contains(&format!("database {name:?}")), "{err}");
    assert!(err.contains("does not exist") && err.contains("createdb"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

/// A database that already holds the original system's `training_examples`
/// (the table its `_persist_training_example` INSERT writes) is refused
/// with an error naming the table and the way out, and nothing is created
/// or changed.
#[test]
fn the_original_systems_table_is_named_in_a_clear_error() {
    let url = common::db::database_with_original_table(1);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let err = match Coordinator::new(postgres_config(&url)) {
        Ok(_) => panic!("a coordinator over the original's table"),
        Err(e) => e.to_string(),
    };
    eprintln!("{err}");
    assert!(
        err.contains("\"training_examples\"") && err.contains("original JustNews"),
        "{err}"
    );
    assert!(err.contains("adopt_original_database"), "{err}");
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "nothing created beside the original's table");
    let rows: i64 = client
        .query_one("SELECT count(*) FROM training_examples", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    // The way out the error gives works.
    let adoption = onthefly::store::adopt_original_database(&url, Duration::from_secs(10)).unwrap();
    assert_eq!(adoption.imported, 1, "{adoption:?}");
    Coordinator::new(postgres_config(&url)).unwrap().shutdown();
}

/// The original's rows, as its `_persist_training_example` wrote them:
/// (agent, task, input, expected output as JSON text, uncertainty,
/// importance, source, seconds before now, feedback, priority).
type OriginalRow = (
    String,
    String,
    String,
    String,
    f64,
    f64,
    String,
    i32,
    Option<String>,
    i32,
);

fn original_rows(n: usize) -> Vec<OriginalRow> {
    (0..n)
        .map(|i| {
            let (agent, task, output) = match i % 3 {
                0 => (
                    "scout",
                    "news",
                    serde_json::json!(["bbc", "cnn", "rte"][i % 3 + (i / 3) % 2]),
                ),
                1 => ("analyst", "sentiment", serde_json::json!((i % 10) as f64 / 10.0)),
                _ => (
                    "fact_checker",
                    "claims",
                    serde_json::json!({"verdict": "false", "n": i}),
                ),
            };
            (
                agent.to_string(),
                task.to_string(),
                format!("original article {i} about the economy"),
                output.to_string(),
                (i % 7) as f64 / 7.0,
                (i % 5) as f64 / 5.0,
                format!("https://example.org/{i}"),
                // Oldest first in the import: row i is i seconds older than row i + 1.
                (n - i) as i32,
                (i % 4 == 0).then(|| format!("note {i}")),
                (i % 4) as i32,
            )
        })
        .collect()
}

/// The adoption path for a JustNews database: the original's table (its
/// schema, filled by its own INSERT) is moved aside, its 300 rows become
/// buffered examples with their fields and timestamps, a second adoption
/// imports nothing, and a coordinator started on the database takes them
/// into its buffers.
#[test]
fn the_original_systems_rows_are_adopted_once_with_their_fields() {
    const ROWS: usize = 300;
    let url = fresh_database();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE training_examples (id SERIAL PRIMARY KEY, agent_name VARCHAR(100) NOT NULL, \
             task_type VARCHAR(100) NOT NULL, input_text TEXT NOT NULL, expected_output JSONB NOT NULL, \
             uncertainty_score FLOAT, importance_score FLOAT, source_url TEXT, \
             timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP, user_feedback TEXT, correction_priority INTEGER DEFAULT 0); \
             CREATE INDEX idx_training_examples_agent ON training_examples (agent_name);",
        )
        .unwrap();
    let rows = original_rows(ROWS);
    for r in &rows {
        client
            .execute(
                "INSERT INTO training_examples (agent_name, task_type, input_text, expected_output, uncertainty_score, \
                 importance_score, source_url, timestamp, user_feedback, correction_priority) \
                 VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, now() - make_interval(secs => $8), $9, $10)",
                &[&r.0, &r.1, &r.2, &r.3, &r.4, &r.5, &r.6, &f64::from(r.7), &r.8, &r.9],
            )
            .unwrap();
    }
    let adoption = onthefly::store::adopt_original_database(&url, Duration::from_secs(10)).unwrap();
    assert_eq!(adoption.imported, ROWS as u64, "{adoption:?}");
    assert_eq!(adoption.moved, vec!["justnews_training_examples".to_string()]);
    let again = onthefly::store::adopt_original_database(&url, Duration::from_secs(10)).unwrap();
    assert_eq!((again.imported, again.imported_before), (0, ROWS as u64), "{again:?}");
    assert!(again.moved.is_empty());

    // Field by field, oldest first.
    let stored = PostgresStore::connect(&url, 1, Duration::from_secs(10))
        .unwrap()
        .examples(None)
        .unwrap();
    assert_eq!(stored.len(), ROWS);
    let mut stored: Vec<_> = stored.into_iter().map(|s| (s.example, s.state)).collect();
    stored.sort_by_key(|(e, _)| e.timestamp);
    let original_stamps: Vec<std::time::SystemTime> = client
        .query(
            "SELECT timestamp::timestamptz FROM justnews_training_examples ORDER BY timestamp",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (((e, state), r), stamp) in stored.iter().zip(&rows).zip(&original_stamps) {
        assert_eq!(*state, onthefly::store::ExampleState::Buffered);
        assert_eq!((&e.agent_name, &e.task_type, &e.input_text), (&r.0, &r.1, &r.2));
        let output: serde_json::Value = serde_json::from_str(&r.3).unwrap();
        assert_eq!(e.expected_output, onthefly::Target::from_json(output));
        assert!((e.uncertainty_score - r.4).abs() < 1e-12 && (e.importance_score - r.5).abs() < 1e-12);
        assert_eq!((&e.source_url, &e.user_feedback), (&r.6, &r.8));
        assert_eq!(u8::from(e.correction_priority) as i32, r.9);
        assert_eq!(e.timestamp, *stamp, "the original's timestamp");
    }
    let ids: std::collections::BTreeSet<u64> = stored.iter().map(|(e, _)| e.id.0).collect();
    assert_eq!(ids.len(), ROWS, "distinct ids");

    let c = Coordinator::new(Config {
        max_buffer_size: 1_000,
        ..postgres_config(&url)
    })
    .unwrap();
    let status = c.get_training_status();
    let received: u64 = status.agents.values().map(|a| a.examples_received).sum();
    assert_eq!(received, ROWS as u64, "{:?}", status.buffer_sizes);
    let id = c.add_training_example(example("scout", 1, "bbc")).unwrap().id.0;
    assert!(!ids.contains(&id), "a new example's id {id} is one of the imported");
    c.shutdown();
}
