//! The original's rules for prediction feedback and user corrections, through
//! the coordinator.

mod common;

use std::time::Duration;

use common::{label, small_config};
use onthefly::{Config, Coordinator, FeedbackOutcome, Placement, PredictionFeedback, Priority, Target, UserCorrection};

fn feedback(task: &str, predicted: &str, actual: Option<&str>, confidence: f64) -> PredictionFeedback {
    PredictionFeedback {
        agent_name: "scout".into(),
        task_type: task.into(),
        input_text: format!("a text about {task} predicted {predicted} at {confidence}"),
        predicted_output: label(predicted),
        actual_output: actual.map(label),
        confidence_score: confidence,
        source_url: "https://example.org/a".into(),
    }
}

fn coordinator() -> Coordinator {
    Coordinator::new(Config {
        max_buffer_size: 1000,
        update_threshold: 1000,
        immediate_update_priority: 3,
        ..small_config()
    })
    .unwrap()
}

#[test]
fn a_confident_right_prediction_is_not_needed() {
    let c = coordinator();
    let outcome = c
        .add_prediction_feedback(feedback("sentiment", "positive", Some("positive"), 0.9))
        .unwrap();
    match outcome {
        FeedbackOutcome::NotNeeded {
            uncertainty,
            importance,
        } => {
            assert!((uncertainty - 0.1).abs() < 1e-9);
            assert_eq!(importance, 0.3);
        }
        other => panic!("expected NotNeeded, got {other:?}"),
    }
    assert_eq!(c.get_training_status().total_examples, 0);
}

#[test]
fn a_mistake_on_a_critical_task_is_learned_with_full_importance() {
    let c = coordinator();
    let outcome = c
        .add_prediction_feedback(feedback("fact_verification", "true", Some("false"), 0.95))
        .unwrap();
    match outcome {
        FeedbackOutcome::Learned {
            receipt,
            importance,
            uncertainty,
        } => {
            assert_eq!(receipt.placement, Placement::Buffered);
            assert_eq!(importance, 1.0);
            assert!((uncertainty - 0.05).abs() < 1e-9);
        }
        other => panic!("expected Learned, got {other:?}"),
    }
    assert_eq!(c.get_training_status().buffer_sizes["scout"], 1);
}

#[test]
fn uncertainty_above_point_six_is_learned_and_below_is_not() {
    let c = coordinator();
    let learned = c
        .add_prediction_feedback(feedback("news", "bbc", Some("bbc"), 0.35))
        .unwrap();
    assert!(matches!(learned, FeedbackOutcome::Learned { .. }), "{learned:?}");
    let skipped = c
        .add_prediction_feedback(feedback("news", "bbc", Some("bbc"), 0.45))
        .unwrap();
    assert!(matches!(skipped, FeedbackOutcome::NotNeeded { .. }), "{skipped:?}");
    // A confident mistake on any task is learned (importance 0.8 > 0.7).
    let wrong = c
        .add_prediction_feedback(feedback("news", "bbc", Some("cnn"), 0.99))
        .unwrap();
    assert!(
        matches!(wrong, FeedbackOutcome::Learned { importance, .. } if importance == 0.8),
        "{wrong:?}"
    );
    assert_eq!(c.get_training_status().buffer_sizes["scout"], 2);
}

#[test]
fn an_uncertain_prediction_without_an_answer_waits_for_a_label() {
    let c = coordinator();
    let outcome = c.add_prediction_feedback(feedback("news", "bbc", None, 0.2)).unwrap();
    assert!(
        matches!(outcome, FeedbackOutcome::AwaitingLabel { pending: 1, .. }),
        "{outcome:?}"
    );
    let confident = c.add_prediction_feedback(feedback("news", "bbc", None, 0.9)).unwrap();
    assert!(matches!(confident, FeedbackOutcome::NotNeeded { .. }));
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!((scout.pending_review, scout.buffer_size), (1, 0));
}

#[test]
fn corrections_have_full_scores_are_never_held_out_and_update_at_once() {
    let c = Coordinator::new(Config {
        held_out_fraction: 0.9,
        update_threshold: 1000,
        max_buffer_size: 1000,
        ..small_config()
    })
    .unwrap();
    for i in 0..20 {
        let receipt = c
            .add_user_correction(UserCorrection::new(
                "analyst",
                "topic",
                format!("correction text {i}"),
                label("sport"),
                label("politics"),
            ))
            .unwrap();
        assert_eq!(receipt.placement, Placement::Buffered, "correction {i} was held out");
    }
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let analyst = &c.get_training_status().agents["analyst"];
    assert_eq!(analyst.examples_trained, 20);
    assert_eq!(analyst.buffer_size, 0);
    assert_eq!(analyst.examples_held_out, 0);

    // A priority-1 correction is kept for the next update, not trained at once.
    let low = UserCorrection {
        priority: Priority::Medium,
        ..UserCorrection::new("analyst", "topic", "one more", label("a"), label("b"))
    };
    c.add_user_correction(low).unwrap();
    assert_eq!(c.get_training_status().updates_in_flight, 0);
    assert_eq!(c.get_training_status().agents["analyst"].buffer_size, 1);
}

/// Held-out examples judge updates while they are in their window and are
/// buffered for training when a newer one pushes them out.
#[test]
fn held_out_examples_are_buffered_only_when_they_leave_the_window() {
    let c = Coordinator::new(Config {
        held_out_fraction: 0.5,
        ..small_config()
    })
    .unwrap();
    let mut held = 0;
    for i in 0..200 {
        let r = c
            .add_training_example(onthefly::NewExample::new(
                "scout",
                "news",
                format!("text {i}"),
                Target::Label("x".into()),
            ))
            .unwrap();
        held += usize::from(r.placement == Placement::HeldOut);
    }
    let scout = &c.get_training_status().agents["scout"];
    assert!((60..140).contains(&held), "held out {held} of 200 at fraction 0.5");
    let judging = held.min(100);
    assert_eq!(scout.examples_held_out as usize, judging);
    assert_eq!(scout.models["news"].held_out_window, judging);
    assert_eq!(scout.buffer_size, 200 - judging);
}
