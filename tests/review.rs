//! Predictions in the loop: the confidence rule of `predict`, the query
//! strategies' orderings, the review ids' rules, the diversity rule, and the
//! queue surviving a restart.

mod common;

use std::time::Duration;

use common::{example, label, small_config};
use onthefly::review::{QueryStrategy, ReviewError};
use onthefly::{Config, Coordinator, Error, ExampleId, Priority, Target};

const OUTLETS: [&str; 9] = ["bbc", "cnn", "fox", "npr", "ap", "wsj", "nyt", "abc", "cbs"];

/// A coordinator whose scout has a classifier of nine outlets trained once
/// on a few articles, and whose every prediction below 0.99 confidence goes
/// to the review queue (the feedback rules' uncertainty threshold lowered to
/// match) (unless the threshold is 0): these tests are about the queue, not about how sure
/// a model trained on 45 made-up articles is (the default classifier can be
/// sure of an outlet from one shared word).
fn trained(config: Config) -> Coordinator {
    let (predict_feedback_threshold, feedback_uncertainty_threshold) = match config.predict_feedback_threshold {
        0.0 => (0.0, config.feedback_uncertainty_threshold),
        _ => (0.99, 0.01),
    };
    let c = Coordinator::new(Config {
        update_threshold: 1000,
        predict_feedback_threshold,
        feedback_uncertainty_threshold,
        ..config
    })
    .unwrap();
    for i in 0..45 {
        c.add_training_example(example("scout", i, OUTLETS[i % 9])).unwrap();
    }
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    c
}

#[test]
fn each_strategy_orders_hand_made_distributions_as_defined() {
    let items = [
        ("a", vec![0.5, 0.3, 0.2]),
        ("b", vec![0.4, 0.35, 0.25]),
        ("c", vec![0.9, 0.05, 0.05]),
        ("d", vec![0.45, 0.45, 0.1]),
    ];
    let order = |strategy: QueryStrategy| {
        let mut scored: Vec<(&str, f64)> = items
            .iter()
            .map(|(name, p)| (*name, strategy.usefulness(p, 0.0)))
            .collect();
        scored.sort_by(|x, y| y.1.total_cmp(&x.1));
        scored.into_iter().map(|(n, _)| n).collect::<String>()
    };
    // 1 − p₁: 0.5, 0.6, 0.1, 0.55.
    assert_eq!(order(QueryStrategy::LeastConfidence), "bdac");
    // 1 − (p₁ − p₂): 0.8, 0.95, 0.15, 1.0.
    assert_eq!(order(QueryStrategy::Margin), "dbac");
    // −Σ p ln p: 1.030, 1.081, 0.394, 0.949.
    assert_eq!(order(QueryStrategy::Entropy), "badc");
    let entropy = QueryStrategy::Entropy.usefulness(&[0.5, 0.3, 0.2], 0.0);
    assert!((entropy - 1.029_653).abs() < 1e-6, "{entropy}");
    // Without probabilities every strategy reads the confidence.
    for s in [
        QueryStrategy::LeastConfidence,
        QueryStrategy::Margin,
        QueryStrategy::Entropy,
    ] {
        assert!((s.usefulness(&[], 0.3) - 0.7).abs() < 1e-12);
    }
}

#[test]
fn an_unsure_prediction_goes_to_the_review_queue_by_itself() {
    let c = trained(small_config());
    let p = c.predict("scout", "news", "an article about something new").unwrap();
    assert!(p.confidence < 0.4, "{p:?}");
    let id = p.review_id.expect("queued for review");
    let status = &c.get_training_status().agents["scout"];
    assert_eq!(status.reviews["news"].queued, 1);
    assert_eq!(status.pending_review, 1);
    // predict_batch never queues (evaluation, bulk scoring).
    let batch = c.predict_batch("scout", "news", &["another one", "and more"]).unwrap();
    assert!(batch.iter().all(|p| p.review_id.is_none()));
    assert_eq!(c.get_training_status().agents["scout"].reviews["news"].queued, 1);

    // With the threshold at 0 nothing is sent.
    let quiet = trained(Config {
        predict_feedback_threshold: 0.0,
        ..small_config()
    });
    assert!(quiet
        .predict("scout", "news", "an article")
        .unwrap()
        .review_id
        .is_none());
    assert!(quiet.get_training_status().agents["scout"].reviews.is_empty());
    let _ = id;
}

#[test]
fn review_ids_are_handed_out_once_labelled_once_and_skipped_only_when_out() {
    let c = trained(Config {
        review_diversity: None,
        ..small_config()
    });
    let ids: Vec<ExampleId> = (0..5)
        .map(|i| {
            c.predict("scout", "news", &format!("unseen story number {i} about the weather"))
                .unwrap()
                .review_id
                .unwrap()
        })
        .collect();
    let first = c.next_for_review("scout", "news", 3).unwrap();
    assert_eq!(first.len(), 3);
    let rest = c.next_for_review("scout", "news", 10).unwrap();
    assert_eq!(rest.len(), 2, "handed-out items are not handed out again");
    assert!(c.next_for_review("scout", "news", 10).unwrap().is_empty());
    let mut all: Vec<ExampleId> = first.iter().chain(&rest).map(|i| i.review_id).collect();
    all.sort();
    assert_eq!(all, ids);
    // Ordered by usefulness.
    assert!(first.windows(2).all(|w| w[0].usefulness >= w[1].usefulness));

    // Skip returns an item; skipping it again is an error.
    c.skip(first[0].review_id).unwrap();
    assert!(matches!(
        c.skip(first[0].review_id),
        Err(Error::Review(ReviewError::NotHandedOut(_)))
    ));
    let again = c.next_for_review("scout", "news", 10).unwrap();
    assert_eq!(
        again.iter().map(|i| i.review_id).collect::<Vec<_>>(),
        [first[0].review_id]
    );

    // A label becomes a correction (priority 2: an update at once).
    let receipt = c.label(first[1].review_id, Target::Label("bbc".into()), None).unwrap();
    assert!(receipt.id.0 > first[1].review_id.0);
    assert!(matches!(
        c.label(first[1].review_id, Target::Label("bbc".into()), None),
        Err(Error::Review(ReviewError::AlreadyLabelled(_)))
    ));
    assert!(matches!(
        c.skip(first[1].review_id),
        Err(Error::Review(ReviewError::AlreadyLabelled(_)))
    ));
    assert!(matches!(
        c.label(ExampleId(999_999), Target::Label("bbc".into()), None),
        Err(Error::Review(ReviewError::Unknown(999_999)))
    ));
    // A label of the wrong kind is refused and the item stays.
    assert!(matches!(
        c.label(first[2].review_id, Target::Score(0.5), None),
        Err(Error::Invalid(_))
    ));
    c.label(first[2].review_id, Target::Label("cnn".into()), Some(Priority::Low))
        .unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let status = &c.get_training_status().agents["scout"];
    let queue = status.reviews["news"];
    assert_eq!((queue.queued, queue.labelled, queue.skipped), (3, 2, 1));
    assert!(
        status.updates_accepted + status.updates_rolled_back >= 2,
        "the label triggered an update"
    );
}

#[test]
fn near_duplicates_do_not_fill_the_top() {
    let c = trained(small_config());
    for text in [
        "storm hits the coast tonight",
        "storm hits the coast tonight again",
        "markets fall on rate fears",
    ] {
        assert!(c.predict("scout", "news", text).unwrap().review_id.is_some());
    }
    let two = c.next_for_review("scout", "news", 2).unwrap();
    let texts: Vec<&str> = two.iter().map(|i| i.input_text.as_str()).collect();
    assert!(texts.contains(&"markets fall on rate fears"), "{texts:?}");
    // The other near-duplicate comes with the next call.
    assert_eq!(c.next_for_review("scout", "news", 2).unwrap().len(), 1);
}

#[test]
fn the_queue_survives_a_restart() {
    let config = small_config();
    let (waiting, labelled) = {
        let c = trained(config.clone());
        let ids: Vec<ExampleId> = (0..4)
            .map(|i| {
                c.predict("scout", "news", &format!("story {i} nobody has seen"))
                    .unwrap()
                    .review_id
                    .unwrap()
            })
            .collect();
        let out = c.next_for_review("scout", "news", 1).unwrap();
        c.label(out[0].review_id, Target::Label("npr".into()), None).unwrap();
        c.flush(Duration::from_secs(30)).unwrap();
        let mut waiting: Vec<ExampleId> = ids.into_iter().filter(|id| *id != out[0].review_id).collect();
        waiting.sort();
        (waiting, out[0].review_id)
    };
    let c = Coordinator::new(config).unwrap();
    assert_eq!(c.get_training_status().agents["scout"].reviews["news"].queued, 3);
    let mut back: Vec<ExampleId> = c
        .next_for_review("scout", "news", 10)
        .unwrap()
        .into_iter()
        .map(|i| i.review_id)
        .collect();
    back.sort();
    assert_eq!(back, waiting);
    assert!(!back.contains(&labelled));
}

#[test]
fn items_are_scored_again_by_the_model_that_serves_when_handed_out() {
    let c = trained(Config {
        review_diversity: None,
        ..small_config()
    });
    let text = "a story about bbc things and more bbc things";
    let queued = c.predict("scout", "news", text).unwrap();
    assert!(queued.review_id.is_some());
    // The model learns this very text for another outlet: the waiting item's
    // old answer and confidence no longer describe what the model thinks.
    for i in 0..20 {
        c.add_training_example(
            onthefly::NewExample::new("scout", "news", format!("{text} {i}"), Target::Label("cnn".into()))
                .with_priority(Priority::High),
        )
        .unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(60)));
    }
    let now = c.predict_batch("scout", "news", &[text]).unwrap().remove(0);
    assert!(now.model_version > queued.model_version);
    assert_ne!(now.output, queued.output, "the test needs a changed answer");
    let item = c
        .next_for_review("scout", "news", 10)
        .unwrap()
        .into_iter()
        .find(|item| item.input_text == text)
        .unwrap();
    assert_eq!((&item.predicted_output, item.confidence), (&now.output, now.confidence));
}

/// Predictions that leave a full review queue unlabelled are not examples:
/// their target is the model's own answer. They were marked evicted in the
/// store, so a restart counted them as evicted examples and the catch-up
/// took them back and trained the model on its own guesses.
#[test]
fn predictions_dropped_from_a_full_queue_are_never_trained() {
    let config = Config {
        max_pending_review: 2,
        ..small_config()
    };
    let guess = "a-guess-nobody-confirmed";
    let (trained_before, received_before) = {
        let c = trained(config.clone());
        for i in 0..8 {
            let feedback = onthefly::PredictionFeedback {
                agent_name: "scout".into(),
                task_type: "news".into(),
                input_text: format!("an unlabelled story {i} about nothing"),
                predicted_output: Target::Label(guess.into()),
                actual_output: None,
                confidence_score: 0.1,
                source_url: String::new(),
            };
            c.add_prediction_feedback(feedback).unwrap();
        }
        let status = c.get_training_status();
        assert_eq!(status.agents["scout"].reviews["news"].queued, 2);
        assert_eq!(status.agents["scout"].reviews["news"].dropped, 6);
        // One that is less useful than everything queued is said not kept,
        // not awaiting a label it will never get.
        let useless = onthefly::PredictionFeedback {
            agent_name: "scout".into(),
            task_type: "news".into(),
            input_text: "an unlabelled story that was nearly sure".into(),
            predicted_output: Target::Label(guess.into()),
            actual_output: None,
            confidence_score: 0.35,
            source_url: String::new(),
        };
        assert!(matches!(
            c.add_prediction_feedback(useless).unwrap(),
            onthefly::FeedbackOutcome::NotKept { pending: 2 }
        ));
        c.flush(Duration::from_secs(30)).unwrap();
        let scout = &status.agents["scout"];
        (scout.examples_trained, scout.examples_received)
    };
    let c = Coordinator::new(config).unwrap();
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(scout.reviews["news"].queued, 2, "the two kept wait again");
    assert_eq!(
        (
            scout.examples_received,
            scout.examples_trained,
            scout.examples_evicted,
            scout.examples_taken_back
        ),
        (received_before, trained_before, 0, 0),
        "the dropped predictions are not counted as examples nor taken back"
    );
    let labels = &scout.models["news"].labels;
    assert!(
        !labels.iter().any(|l| l == guess),
        "trained on its own guess: {labels:?}"
    );
}

/// A label the correction would refuse (here one over `max_input_bytes`)
/// leaves the item in its queue: it used the item up, and the person could
/// neither label it again nor skip it.
#[test]
fn a_refused_label_leaves_the_item_waiting() {
    let c = trained(Config {
        max_input_bytes: 64,
        ..small_config()
    });
    let id = c
        .predict("scout", "news", "an unseen story")
        .unwrap()
        .review_id
        .unwrap();
    let out = c.next_for_review("scout", "news", 1).unwrap();
    assert_eq!(out[0].review_id, id);
    let too_long = Target::Label("x".repeat(99));
    assert!(matches!(c.label(id, too_long, None), Err(Error::Invalid(_))));
    c.label(id, Target::Label("npr".into()), None).unwrap();
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(scout.reviews["news"].labelled, 1);
    assert_eq!(scout.examples_received, 46, "the label is an example");
}

/// A prediction no model learns (a dict, as an agent's `result.output` can
/// be) queued for a label does not decide what its new task learns: it made
/// the task a kept one, and the labels written next were kept as JSON and
/// never trained.
#[test]
fn a_prediction_no_model_learns_does_not_decide_what_its_task_learns() {
    let c = Coordinator::new(small_config()).unwrap();
    let guess = onthefly::PredictionFeedback {
        agent_name: "scout".into(),
        task_type: "news".into(),
        input_text: "markets rally".into(),
        predicted_output: Target::Json(serde_json::json!({ "label": "markets", "p": 0.3 })),
        actual_output: None,
        confidence_score: 0.3,
        source_url: String::new(),
    };
    assert!(matches!(
        c.add_prediction_feedback(guess).unwrap(),
        onthefly::FeedbackOutcome::AwaitingLabel { .. }
    ));
    for i in 0..20 {
        c.add_training_example(example("scout", i, OUTLETS[i % 2])).unwrap();
    }
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let scout = &c.get_training_status().agents["scout"];
    assert_eq!(scout.models["news"].target_kind, "label");
    assert_eq!((scout.examples_trained, scout.examples_kept), (20, 0), "{scout:?}");
}

/// `predict_feedback_threshold` alone decides: below it a prediction waits
/// for a label, also between 0.4 and the threshold (the feedback rules'
/// uncertainty threshold of 0.6, meant for answers an agent reports, made
/// any value above 0.4 act as 0.4).
#[test]
fn every_prediction_below_the_threshold_is_queued_whatever_the_feedback_rules() {
    let c = Coordinator::new(Config {
        update_threshold: 1000,
        predict_feedback_threshold: 0.99,
        max_pending_review: 1000,
        ..small_config()
    })
    .unwrap();
    assert_eq!(c.config().feedback_uncertainty_threshold, 0.6);
    for i in 0..45 {
        c.add_training_example(example("scout", i, OUTLETS[i % 9])).unwrap();
    }
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let mut between = 0;
    for (i, a) in OUTLETS.iter().enumerate() {
        for b in &OUTLETS[i..] {
            let p = c
                .predict("scout", "news", &format!("article number 99 about {a} and {b} things"))
                .unwrap();
            between += usize::from((0.4..0.99).contains(&p.confidence));
            assert_eq!(p.review_id.is_some(), p.confidence < 0.99, "{p:?}");
        }
    }
    assert!(
        between > 0,
        "no prediction between 0.4 and 0.99: the test shows nothing"
    );
}

/// An agent's own answer takes its input out of the review queue also when
/// it is not worth learning (right, and confident): a person was still
/// asked to label what the agent had answered.
#[test]
fn an_answer_not_worth_learning_still_takes_the_input_out_of_the_queue() {
    let c = Coordinator::new(small_config()).unwrap();
    let feedback = |actual: Option<&str>, confidence: f64| onthefly::PredictionFeedback {
        agent_name: "scout".into(),
        task_type: "news".into(),
        input_text: "storm hits the coast".into(),
        predicted_output: label("bbc"),
        actual_output: actual.map(label),
        confidence_score: confidence,
        source_url: String::new(),
    };
    assert!(matches!(
        c.add_prediction_feedback(feedback(None, 0.2)).unwrap(),
        onthefly::FeedbackOutcome::AwaitingLabel { .. }
    ));
    assert_eq!(c.get_training_status().agents["scout"].reviews["news"].queued, 1);
    assert!(matches!(
        c.add_prediction_feedback(feedback(Some("bbc"), 0.95)).unwrap(),
        onthefly::FeedbackOutcome::NotNeeded { .. }
    ));
    assert_eq!(c.get_training_status().agents["scout"].reviews["news"].queued, 0);
    assert!(c.next_for_review("scout", "news", 10).unwrap().is_empty());
}

/// A score model does not say how sure it is (its confidence is 0.5, the
/// feedback rules' "unknown"): its predictions are not queued for a person
/// by `predict_feedback_threshold` (every one of them was).
#[test]
fn a_score_prediction_is_not_queued_for_its_unknown_confidence() {
    let c = Coordinator::new(Config {
        update_threshold: 1000,
        ..small_config()
    })
    .unwrap();
    for i in 0..40 {
        let text = format!("a review number {i}, {}", ["awful", "lovely"][i % 2]);
        c.add_training_example(onthefly::NewExample::new(
            "critic",
            "rating",
            text,
            Target::Score((i % 2) as f64),
        ))
        .unwrap();
    }
    c.force_update_agent("critic").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(60)));
    let p = c.predict("critic", "rating", "a lovely film").unwrap();
    assert!(matches!(p.output, Target::Score(_)), "{p:?}");
    assert_eq!((p.confidence, p.review_id), (0.5, None));
    let critic = &c.get_training_status().agents["critic"];
    assert_eq!(critic.reviews.get("rating").map_or(0, |r| r.queued), 0);
}

/// The same unsure input predicted again waits as the one item it is: its
/// copies filled the queue, pushed other inputs out, and went to several
/// people, each label trained.
#[test]
fn an_input_predicted_again_waits_as_one_item() {
    let c = Coordinator::new(small_config()).unwrap();
    let feedback = |input: &str| onthefly::PredictionFeedback {
        agent_name: "scout".into(),
        task_type: "news".into(),
        input_text: input.into(),
        predicted_output: label("bbc"),
        actual_output: None,
        confidence_score: 0.2,
        source_url: String::new(),
    };
    let id_of = |outcome: onthefly::FeedbackOutcome| match outcome {
        onthefly::FeedbackOutcome::AwaitingLabel { review_id, .. } => review_id,
        other => panic!("{other:?}"),
    };
    let first = id_of(c.add_prediction_feedback(feedback("storm hits the coast")).unwrap());
    for _ in 0..5 {
        assert_eq!(
            id_of(c.add_prediction_feedback(feedback("storm hits the coast")).unwrap()),
            first
        );
    }
    let other = id_of(c.add_prediction_feedback(feedback("markets rally")).unwrap());
    assert_ne!(other, first);
    assert_eq!(c.get_training_status().agents["scout"].reviews["news"].queued, 2);
    assert_eq!(c.next_for_review("scout", "news", 10).unwrap().len(), 2);
}
