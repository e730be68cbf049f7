//! The built-in score regressor through the whole pipeline (updates,
//! held-out evaluation by mean absolute error, rollback, checkpoints), on real
//! data: the VADER tweets' human sentiment ratings, rescaled from -4..4 to
//! 0..=1. It must predict clearly better than the mean, an update that makes
//! the held-out error worse must be rolled back, and a restarted coordinator
//! must serve exactly the same scores from its checkpoint.

mod common;

use std::time::Duration;

use common::small_config;
use common::vader::load_ratings;
use onthefly::{Config, Coordinator, NewExample, Target, TextModelConfig};

const AGENT: &str = "scout";
const TASK: &str = "sentiment_intensity";

fn mean_absolute_error(predicted: &[f64], truth: &[f64]) -> f64 {
    predicted.iter().zip(truth).map(|(p, t)| (p - t).abs()).sum::<f64>() / truth.len() as f64
}

#[test]
fn the_regressor_beats_the_mean_and_its_checkpoint_serves_the_same_scores() {
    let snippets = load_ratings("tweets_GroundTruth.txt");
    assert!(snippets.len() > 4000, "{} tweets", snippets.len());
    let score = |rating: f64| ((rating + 4.0) / 8.0).clamp(0.0, 1.0);
    // Every fifth tweet is the test set, never shown to the library.
    let (test, train): (Vec<_>, Vec<_>) = snippets.iter().enumerate().partition(|(i, _)| i % 5 == 0);
    let config = Config {
        held_out_fraction: 0.2,
        update_threshold: 1000,
        text_model: TextModelConfig {
            hash_buckets: 1 << 16,
            embedding_dim: 16,
            ..TextModelConfig::default()
        },
        ..small_config()
    };
    let c = Coordinator::new(config.clone()).unwrap();
    for (i, (_, s)) in train.iter().enumerate() {
        c.add_training_example(NewExample::new(
            AGENT,
            TASK,
            s.text.clone(),
            Target::Score(score(s.rating)),
        ))
        .unwrap();
        if i % 200 == 199 {
            // One update per 200 tweets, each waited for: the same updates at every run.
            c.force_update_agent(AGENT).unwrap();
            assert!(c.wait_for_idle(Duration::from_secs(120)));
        }
    }
    c.force_update_agent(AGENT).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(600)));

    let texts: Vec<&str> = test.iter().map(|(_, s)| s.text.as_str()).collect();
    let truth: Vec<f64> = test.iter().map(|(_, s)| score(s.rating)).collect();
    let predictions = c.predict_batch(AGENT, TASK, &texts).unwrap();
    let predicted: Vec<f64> = predictions
        .iter()
        .map(|p| match p.output {
            Target::Score(x) => x,
            ref other => panic!("a score, got {other:?}"),
        })
        .collect();
    assert!(predicted.iter().all(|p| (0.0..=1.0).contains(p)));
    let train_mean = train.iter().map(|(_, s)| score(s.rating)).sum::<f64>() / train.len() as f64;
    let baseline = mean_absolute_error(&vec![train_mean; truth.len()], &truth);
    let mae = mean_absolute_error(&predicted, &truth);
    let history = c.performance_history();
    let kept = history.iter().filter(|r| !r.rollback_triggered).count();
    println!(
        "regressor MAE {mae:.4} vs the training mean's {baseline:.4} on {} test tweets; {} updates, {kept} kept",
        truth.len(),
        history.len()
    );
    assert!(
        mae < 0.85 * baseline,
        "MAE {mae:.4} is not clearly below the mean's {baseline:.4}"
    );
    // The figure of docs/measurements.md (0.102, `cargo test --release --test
    // regressor_vader -- --nocapture`). Every update is waited for, so every
    // run measures the same 0.1018: the margin is what a real change would
    // move, 0.01.
    assert!(mae <= 0.102 + 0.01, "MAE {mae:.4}, measured 0.102");
    assert!(history
        .iter()
        .all(|r| r.metric == "mean_absolute_error" || r.accuracy_before.is_none()));
    let status = c.get_training_status();
    let model = &status.agents[AGENT].models[TASK];
    assert_eq!(model.model_kind.as_deref(), Some("text_regressor"));
    let version = model.version;
    assert!(version >= 1);

    // Inverted scores as (never held out) corrections, learned in one update:
    // the held-out error rises, so it is rolled back and the live model keeps
    // its version.
    let last = common::assert_wrong_answers_roll_back(
        &c,
        AGENT,
        TASK,
        train.iter().take(120).map(|(_, s)| {
            let right = score(s.rating);
            (s.text.clone(), Target::Score(right), Target::Score(1.0 - right))
        }),
    );
    assert!(
        last.rollback_reason.as_deref().unwrap().contains("mean_absolute_error"),
        "{last:?}"
    );
    // What serves now (the version above, or one after it if a small part
    // of the harmful batch passed) serves again after a restart.
    let serving = c.predict_batch(AGENT, TASK, &texts).unwrap();
    assert!(serving[0].model_version >= version);
    c.shutdown();

    // A restart loads the checkpoint: the same version, the same scores.
    let restarted = Coordinator::new(config).unwrap();
    let again = restarted.predict_batch(AGENT, TASK, &texts).unwrap();
    assert_eq!(again[0].model_version, serving[0].model_version);
    assert_eq!(
        again.iter().map(|p| p.output.clone()).collect::<Vec<_>>(),
        serving.iter().map(|p| p.output.clone()).collect::<Vec<_>>()
    );
}
