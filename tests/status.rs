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
