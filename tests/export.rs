//! `export_dataset`: the examples of a task no model learns (and of any other
//! task) as a JSON-lines fine-tuning set, with and without a store.

mod common;

use std::time::Duration;

use common::small_config;
use onthefly::{Config, Coordinator, NewExample, Priority, StoreConfig, Target};

fn summaries(c: &Coordinator) -> Vec<NewExample> {
    let sent: Vec<NewExample> = (0..25)
        .map(|i| {
            NewExample::new(
                "synthesizer",
                "summary",
                format!("article {i}: the council met and approved the budget, «{i}»"),
                Target::Json(serde_json::json!({ "summary": format!("budget approved {i}"), "topics": ["budget"] })),
            )
            .with_source(format!("https://example.org/{i}"))
            .with_priority(if i % 5 == 0 { Priority::Medium } else { Priority::Low })
        })
        .collect();
    for e in &sent {
        c.add_training_example(e.clone()).unwrap();
    }
    // Another task of the same agent and another agent stay out of the export.
    c.add_training_example(NewExample::new(
        "synthesizer",
        "topics",
        "x",
        Target::Json(serde_json::json!(["a"])),
    ))
    .unwrap();
    c.add_training_example(NewExample::new("scout", "news", "y", Target::Label("bbc".into())))
        .unwrap();
    sent
}

fn check_export(config: Config) {
    let c = Coordinator::new(config.clone()).unwrap();
    let sent = summaries(&c);
    let path = config.data_dir.join("summary.jsonl");
    assert_eq!(c.export_dataset("synthesizer", "summary", &path).unwrap(), sent.len());
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), sent.len());
    for (line, e) in lines.iter().zip(&sent) {
        assert_eq!(line["input"], e.input_text);
        assert_eq!(line["target"], e.expected_output.to_json());
        assert_eq!(line["target_kind"], "json");
        assert_eq!(line["priority"], u8::from(e.correction_priority));
        assert_eq!(line["source"], e.source_url);
        assert_eq!(line["state"], "kept");
        assert!(line["time_ms"].as_u64().unwrap() > 1_700_000_000_000);
    }
    let error = c
        .export_dataset(
            "synthesizer",
            "summary",
            &config.data_dir.join("no/such/folder/x.jsonl"),
        )
        .unwrap_err();
    assert!(matches!(error, onthefly::Error::Io { .. }), "{error}");
    c.flush(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_task_without_a_model_exports_its_examples_from_the_store() {
    check_export(small_config());
}

#[test]
fn without_a_store_the_export_comes_from_memory() {
    check_export(Config {
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        ..small_config()
    });
}

/// Kept examples beyond `max_buffer_size` (only the newest come back into
/// memory at start-up) are still counted after a restart: the counters
/// dropped to the ones in memory while the export held all of them.
#[test]
fn kept_examples_are_all_counted_after_a_restart() {
    let config = Config {
        max_buffer_size: 10,
        update_threshold: 10,
        ..small_config()
    };
    let c = Coordinator::new(config.clone()).unwrap();
    let sent = summaries(&c).len() + 1; // the summaries and the topics
    let before = c.get_training_status().agents["synthesizer"].clone();
    assert_eq!(before.examples_kept as usize, sent);
    c.shutdown();
    drop(c);
    let c = Coordinator::new(config.clone()).unwrap();
    let after = c.get_training_status().agents["synthesizer"].clone();
    assert_eq!(
        (after.examples_received, after.examples_kept),
        (before.examples_received, before.examples_kept)
    );
    let path = config.data_dir.join("summaries.jsonl");
    assert_eq!(c.export_dataset("synthesizer", "summary", &path).unwrap(), sent - 1);
}

/// Without a store, kept examples beyond `max_buffer_size` leave memory and
/// the export: said in the agent's `last_error`, not only seen as a shorter
/// file.
#[test]
fn without_a_store_kept_examples_beyond_the_buffer_are_said_to_be_gone() {
    let c = Coordinator::new(Config {
        max_buffer_size: 5,
        update_threshold: 5,
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        ..small_config()
    })
    .unwrap();
    let summary = |i: usize| {
        NewExample::new(
            "synthesizer",
            "summary",
            format!("article {i}"),
            Target::Json(serde_json::json!({ "summary": i })),
        )
    };
    for i in 0..5 {
        c.add_training_example(summary(i)).unwrap();
    }
    assert_eq!(c.get_training_status().agents["synthesizer"].last_error, None);
    c.add_training_example(summary(5)).unwrap();
    let said = c.get_training_status().agents["synthesizer"].last_error.clone();
    assert!(said.as_deref().is_some_and(|e| e.contains("leave memory")), "{said:?}");
    let path = common::fresh_data_dir().join("summary.jsonl");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    assert_eq!(c.export_dataset("synthesizer", "summary", &path).unwrap(), 5);
}
