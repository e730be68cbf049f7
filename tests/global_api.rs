//! The process-wide API over a `OnceLock` instance. One test: the global
//! instance lives as long as the test process.

mod common;

use std::time::Duration;

use common::{example, label, small_config};
use onthefly::{
    add_prediction_feedback, add_training_example, add_user_correction, force_update_agent, get_training_status,
    initialize_online_training, predict, shutdown, Config, Error, FeedbackOutcome, PredictionFeedback, UserCorrection,
};

#[test]
fn the_global_instance_from_initialisation_to_shutdown() {
    // Before initialisation every call says so.
    assert!(matches!(
        add_training_example(example("scout", 0, "bbc")),
        Err(Error::NotInitialized)
    ));
    assert!(matches!(get_training_status(), Err(Error::NotInitialized)));
    assert!(matches!(force_update_agent("scout"), Err(Error::NotInitialized)));
    assert!(matches!(shutdown(), Err(Error::NotInitialized)));

    let config = Config {
        update_threshold: 5,
        ..small_config()
    };
    // An invalid configuration is refused and initialises nothing.
    let bad = Config {
        update_threshold: 0,
        ..config.clone()
    };
    assert!(matches!(initialize_online_training(bad), Err(Error::Config(_))));
    assert!(matches!(get_training_status(), Err(Error::NotInitialized)));

    let first = initialize_online_training(config.clone()).unwrap();
    let again = initialize_online_training(config.clone()).unwrap();
    assert!(std::ptr::eq(first, again), "initialisation is idempotent");
    let other = Config {
        update_threshold: 6,
        ..config
    };
    assert!(matches!(
        initialize_online_training(other),
        Err(Error::AlreadyInitialized)
    ));

    for i in 0..5 {
        add_training_example(example("scout", i, if i < 3 { "bbc" } else { "cnn" })).unwrap();
    }
    assert!(first.wait_for_idle(Duration::from_secs(60)));
    let outcome = add_prediction_feedback(PredictionFeedback {
        agent_name: "scout".into(),
        task_type: "news".into(),
        input_text: "a new article".into(),
        predicted_output: label("bbc"),
        actual_output: Some(label("cnn")),
        confidence_score: 0.9,
        source_url: String::new(),
    })
    .unwrap();
    assert!(matches!(outcome, FeedbackOutcome::Learned { .. }));
    add_user_correction(UserCorrection::new(
        "scout",
        "news",
        "corrected article",
        label("bbc"),
        label("rte"),
    ))
    .unwrap();
    assert!(first.wait_for_idle(Duration::from_secs(60)));
    force_update_agent("scout").unwrap();
    assert!(first.wait_for_idle(Duration::from_secs(60)));

    let status = get_training_status().unwrap();
    let scout = &status.agents["scout"];
    assert_eq!(scout.examples_received, 7);
    assert_eq!(scout.examples_trained, 7);
    assert_eq!(scout.models["news"].labels.len(), 3);
    assert!(
        predict("scout", "news", "article number 1 about bbc things")
            .unwrap()
            .model_version
            >= 2
    );

    shutdown().unwrap();
    assert!(matches!(
        add_training_example(example("scout", 9, "bbc")),
        Err(Error::ShutDown)
    ));
    assert!(
        get_training_status().is_ok(),
        "the status stays readable after shutdown"
    );
}
