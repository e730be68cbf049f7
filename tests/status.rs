//! The training status: the original's fields plus per-agent detail, as JSON.

mod common;

use std::time::Duration;

use common::{example, small_config};
use onthefly::{Config, Coordinator, NewExample, Target};

#[test]
fn status_reports_buffers_models_history_and_errors() {
    let c = Coordinator::new(Config {
        update_threshold: 4,
        held_out_fraction: 0.0,
        ..small_config()
    })
    .unwrap();
    let fresh = c.get_training_status();
    assert!(!fresh.is_training);
    assert!(fresh.agents.is_empty() && fresh.buffer_sizes.is_empty());
    assert_eq!((fresh.update_threshold, fresh.rollback_threshold), (4, 0.05));
    assert_eq!(fresh.device, "cpu");

    for i in 0..4 {
        c.add_training_example(example("scout", i, ["bbc", "cnn"][i % 2]))
            .unwrap();
    }
    c.add_training_example(example("analyst", 0, "bbc")).unwrap();
    // A task no built-in model learns: kept in the buffer, reported without a model kind.
    c.add_training_example(NewExample::new(
        "synthesizer",
        "summary",
        "long text",
        Target::Json(serde_json::json!({"summary": "short"})),
    ))
    .unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));

    let status = c.get_training_status();
    assert_eq!(status.buffer_sizes["scout"], 0);
    assert_eq!(status.buffer_sizes["analyst"], 1);
    assert_eq!(status.buffer_sizes["synthesizer"], 0);
    assert_eq!(status.agents["synthesizer"].examples_kept, 1);
    assert_eq!(status.total_examples, 1);
    assert_eq!(status.performance_history_size, 1);
    assert_eq!(status.updates_in_flight, 0);
    let record = &status.recent_performance[0];
    assert_eq!(
        (record.agent_name.as_str(), record.task_type.as_str()),
        ("scout", "news")
    );
    assert_eq!(record.model_name, "text_classifier");
    assert_eq!(record.examples_trained, 4);
    assert!(!record.rollback_triggered);
    assert!(record.train_loss.is_finite() && record.train_loss > 0.0);

    let scout = &status.agents["scout"];
    assert_eq!(scout.buffer_capacity, 1000);
    assert_eq!(scout.updates_accepted, 1);
    assert!(scout.last_update_ms.is_some());
    assert!(scout.last_error.is_none());
    let model = &scout.models["news"];
    assert_eq!(
        (model.target_kind.as_str(), model.model_kind.as_deref()),
        ("label", Some("text_classifier"))
    );
    assert_eq!(model.version, 1);
    let mut labels = model.labels.clone();
    labels.sort();
    assert_eq!(labels, ["bbc", "cnn"]);
    let summary = &status.agents["synthesizer"].models["summary"];
    assert_eq!(
        (summary.target_kind.as_str(), summary.model_kind.as_deref()),
        ("json", None)
    );
    assert!(status.agents["analyst"].last_update_ms.is_none());

    // The status is plain JSON for dashboards and the C API.
    let json = serde_json::to_value(&status).unwrap();
    for key in [
        "is_training",
        "buffer_sizes",
        "total_examples",
        "performance_history_size",
        "recent_performance",
        "update_threshold",
        "rollback_threshold",
        "agents",
    ] {
        assert!(json.get(key).is_some(), "status JSON lacks {key}");
    }
    assert_eq!(json["agents"]["scout"]["models"]["news"]["version"], 1);
}

/// Each state the store counts, beside the status counter that counts it.
fn counts_by_state(status: &onthefly::AgentStatus) -> std::collections::BTreeMap<&'static str, u64> {
    [
        ("buffered", status.buffer_size as u64),
        ("evaluation", status.examples_held_out),
        ("trained", status.examples_trained),
        ("evicted", status.examples_evicted),
        ("discarded", status.examples_discarded),
        ("quarantined", status.examples_quarantined),
        ("failed", status.examples_failed),
        ("kept", status.examples_kept),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect()
}

/// Streams from 4 threads into a small buffer (evictions), with updates
/// running, shuts down while they run, and compares the status with the
/// store's `SELECT state, count(*)`; then restarts and compares again.
fn counters_match_the_store(config: Config, stored: impl Fn() -> std::collections::BTreeMap<String, u64>) {
    let config = Config {
        max_buffer_size: 300,
        held_out_fraction: 0.1,
        update_threshold: 50,
        ..config
    };
    let c = std::sync::Arc::new(Coordinator::new(config.clone()).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let c = std::sync::Arc::clone(&c);
            std::thread::spawn(move || {
                for i in 0..600 {
                    c.add_training_example(example("scout", t * 1_000 + i, ["bbc", "cnn", "rte"][i % 3]))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    c.shutdown();
    let status = c.get_training_status();
    let scout = &status.agents["scout"];
    assert_eq!(scout.examples_received, 2_400, "{scout:?}");
    let in_status: std::collections::BTreeMap<String, u64> = counts_by_state(scout)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(in_status, stored(), "status after shutdown vs the store");
    assert!(in_status.get("trained").copied().unwrap_or(0) > 0, "{in_status:?}");
    let updates =
        |scout: &onthefly::AgentStatus| (scout.updates_accepted, scout.updates_rolled_back, scout.last_update_ms);
    let updated = updates(scout);
    assert!(updated.0 > 0 && updated.2.is_some(), "{updated:?}");
    drop(c);

    let c = Coordinator::new(config).unwrap();
    let status = c.get_training_status();
    let scout = &status.agents["scout"];
    let restarted: std::collections::BTreeMap<String, u64> = counts_by_state(scout)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(restarted, in_status, "the counters after a restart");
    // The update counters too (they started from 0 at each restart).
    assert_eq!(updates(scout), updated, "the update counters after a restart");
    assert_eq!(scout.examples_received, 2_400, "{scout:?}");
    assert_eq!(
        status.total_examples,
        status.buffer_sizes.values().sum::<usize>(),
        "total_examples is the original's: the examples buffered over all agents"
    );
    c.shutdown();
}

#[test]
fn the_counters_equal_the_sqlite_store_after_shutdown_under_load_and_survive_a_restart() {
    let config = small_config();
    let file = config.data_dir.join(onthefly::store::SQLITE_FILE);
    counters_match_the_store(config, || {
        let conn = rusqlite::Connection::open(&file).unwrap();
        let mut stmt = conn
            .prepare("SELECT state, count(*) FROM training_examples WHERE agent_name = 'scout' GROUP BY state")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    });
}

#[test]
fn the_counters_equal_the_postgres_store_after_shutdown_under_load_and_survive_a_restart() {
    let url = common::db::fresh_database();
    counters_match_the_store(common::db::postgres_config(&url), || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .query(
                "SELECT state, count(*) FROM training_examples WHERE agent_name = 'scout' GROUP BY state",
                &[],
            )
            .unwrap()
            .into_iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect()
    });
}
