//! When an agent trains: at the threshold, on a correction, when forced, and at
//! the periodic check for examples that waited too long.

mod common;

use std::time::Duration;

use common::{example, small_config, wait_until};
use onthefly::{Config, Coordinator, Priority};

const IDLE: Duration = Duration::from_secs(60);

fn coordinator(config: Config) -> Coordinator {
    Coordinator::new(Config {
        update_threshold: 10,
        max_buffer_size: 100,
        ..config
    })
    .unwrap()
}

#[test]
fn the_threshold_queues_an_update_and_training_empties_the_buffer() {
    let c = coordinator(small_config());
    for i in 0..9 {
        c.add_training_example(example("scout", i, if i % 2 == 0 { "bbc" } else { "cnn" }))
            .unwrap();
    }
    // Below the threshold nothing is queued (scheduling happens inside add).
    assert_eq!(c.get_training_status().updates_in_flight, 0);
    c.add_training_example(example("scout", 9, "cnn")).unwrap();
    assert!(c.wait_for_idle(IDLE));
    let status = c.get_training_status();
    let scout = &status.agents["scout"];
    assert_eq!(scout.updates_accepted, 1);
    assert_eq!(scout.examples_trained, 10);
    assert_eq!(scout.buffer_size, 0);
    assert_eq!(scout.models["news"].version, 1);
    assert_eq!(scout.models["news"].labels.len(), 2);
    assert_eq!(status.performance_history_size, 1);
    assert_eq!(status.recent_performance[0].examples_trained, 10);
    // The model answers now, with the version that trained.
    let p = c.predict("scout", "news", "article number 3 about cnn things").unwrap();
    assert_eq!(p.model_version, 1);
    assert!((0.0..=1.0).contains(&p.confidence));
}

#[test]
fn a_correction_of_priority_two_or_three_updates_at_once() {
    let c = coordinator(small_config());
    c.add_training_example(example("scout", 0, "bbc").with_priority(Priority::Medium))
        .unwrap();
    assert_eq!(
        c.get_training_status().updates_in_flight,
        0,
        "priority 1 waits for the threshold"
    );
    c.add_training_example(example("scout", 1, "cnn").with_priority(Priority::High))
        .unwrap();
    assert!(c.wait_for_idle(IDLE));
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(
        (scout.updates_accepted, scout.examples_trained, scout.buffer_size),
        (1, 2, 0)
    );

    c.add_training_example(example("scout", 2, "rte").with_priority(Priority::Critical))
        .unwrap();
    assert!(c.wait_for_idle(IDLE));
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!((scout.updates_accepted, scout.examples_trained), (2, 3));
    assert_eq!(scout.models["news"].labels.len(), 3, "the new label was learned");
}

#[test]
fn force_update_trains_whatever_is_buffered() {
    let c = coordinator(small_config());
    for i in 0..3 {
        c.add_training_example(example("critic", i, "bbc")).unwrap();
    }
    assert_eq!(c.get_training_status().updates_in_flight, 0);
    c.force_update_agent("critic").unwrap();
    assert!(c.wait_for_idle(IDLE));
    let critic = &c.get_training_status().agents["critic"];
    assert_eq!(
        (critic.updates_accepted, critic.examples_trained, critic.buffer_size),
        (1, 3, 0)
    );
}

#[test]
fn an_update_takes_the_most_valuable_examples_first() {
    let c = coordinator(Config {
        max_examples_per_update: 3,
        ..small_config()
    });
    for i in 0..4 {
        c.add_training_example(example("scout", i, "bbc").with_importance(0.1))
            .unwrap();
    }
    c.add_training_example(example("scout", 4, "cnn").with_priority(Priority::High))
        .unwrap();
    assert!(c.wait_for_idle(IDLE));
    let scout = &c.get_training_status().agents["scout"];
    // The correction and the two most recent equals were trained; two remain.
    assert_eq!((scout.examples_trained, scout.buffer_size), (3, 2));
    assert_eq!(c.performance_history()[0].examples_trained, 3);
}

#[test]
fn the_periodic_check_trains_examples_that_waited_too_long() {
    let c = coordinator(Config {
        check_interval_ms: 20,
        stale_after_ms: 0,
        ..small_config()
    });
    c.add_training_example(example("fact_checker", 0, "true")).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || c.get_training_status().agents
            ["fact_checker"]
            .updates_accepted
            == 1),
        "the periodic check did not train the waiting example"
    );
    assert_eq!(c.get_training_status().agents["fact_checker"].buffer_size, 0);
}

#[test]
fn the_periodic_check_leaves_fresh_examples_below_the_threshold_alone() {
    let c = coordinator(Config {
        check_interval_ms: 10,
        stale_after_ms: 3_600_000,
        ..small_config()
    });
    for i in 0..5 {
        c.add_training_example(example("scout", i, "bbc")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300)); // about 30 checks
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!((scout.updates_accepted, scout.buffer_size), (0, 5));
}

#[test]
fn untrainable_examples_never_crowd_out_trainable_ones() {
    let c = coordinator(small_config());
    for i in 0..20 {
        let json = onthefly::Target::Json(serde_json::json!({ "topic": i }));
        let e = onthefly::NewExample::new("scout", "topics", format!("text {i}"), json)
            .with_importance(1.0)
            .with_priority(Priority::High);
        assert_eq!(c.add_training_example(e).unwrap().placement, onthefly::Placement::Kept);
    }
    assert_eq!(
        c.get_training_status().updates_in_flight,
        0,
        "kept examples trigger nothing"
    );
    for i in 0..10 {
        c.add_training_example(example("scout", i, "bbc")).unwrap();
    }
    assert!(c.wait_for_idle(IDLE));
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(
        (scout.examples_trained, scout.buffer_size, scout.examples_kept),
        (10, 0, 20)
    );
}
