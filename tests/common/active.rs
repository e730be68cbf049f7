//! The active-learning experiment (`examples/active_learning.rs`, and its
//! reduced run in `tests/active_learning.rs`): news articles arrive in
//! rounds, a simulated reviewer spends a labelling budget by a query
//! strategy or at random, the model updates once per round.

use std::time::Duration;

use onthefly::features::SplitMix64;
use onthefly::review::QueryStrategy;
use onthefly::{Config, Coordinator, NewExample, Priority, Target, UserCorrection};

pub const AGENT: &str = "scout";
pub const TASK: &str = "news_classification";
pub const SEED_LABELS: usize = 45;
pub const ROUNDS: usize = 10;
pub const ARRIVALS: usize = 200;
pub const PER_ROUND: usize = 30;
pub const TEST: usize = 600;
pub const VALIDATION: usize = 600;

/// Who chooses what the reviewer labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Labels drawn at random from the articles seen so far.
    Random,
    /// What `next_for_review` hands out under this strategy.
    Strategy(QueryStrategy),
}

impl Method {
    /// The method's name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Method::Random => "random",
            Method::Strategy(QueryStrategy::LeastConfidence) => "least_confidence",
            Method::Strategy(QueryStrategy::Margin) => "margin",
            Method::Strategy(QueryStrategy::Entropy) => "entropy",
        }
    }
}

/// Accuracy on the validation and on the test articles after each round
/// (index 0: the seed model).
pub fn run(method: Method, articles: &[&super::news::Article], seed: u64, lambda: f64) -> (Vec<f64>, Vec<f64>) {
    let (test, rest) = articles.split_at(TEST);
    let (validation, rest) = rest.split_at(VALIDATION);
    let (seeded, pool) = rest.split_at(SEED_LABELS);
    let data_dir = std::env::temp_dir().join(format!(
        "onthefly-active-{}-{}-{seed}-{lambda}",
        std::process::id(),
        method.name()
    ));
    let defaults = Config::default();
    let c = Coordinator::new(Config {
        device: onthefly::DeviceChoice::Cpu,
        data_dir: data_dir.clone(),
        checkpoints_kept: 0,
        held_out_fraction: 0.0,
        update_threshold: 1000,
        check_interval_ms: 3_600_000,
        // Every prediction is unsure enough to wait for a label; the strategy decides which come first.
        predict_feedback_threshold: 1.0,
        feedback_uncertainty_threshold: 0.0,
        max_pending_review: 5_000,
        query_strategy: match method {
            Method::Strategy(s) => s,
            Method::Random => QueryStrategy::LeastConfidence,
        },
        store: onthefly::StoreConfig {
            enabled: false,
            ..onthefly::StoreConfig::default()
        },
        ewc: onthefly::ewc::EwcConfig {
            enabled: lambda > 0.0,
            lambda,
            ..defaults.ewc.clone()
        },
        ..defaults
    })
    .expect("coordinator");
    let label = |a: &super::news::Article| Target::Label(a.outlet.clone());
    for a in seeded {
        c.add_training_example(NewExample::new(AGENT, TASK, a.text.clone(), label(a)))
            .unwrap();
    }
    let update = || {
        c.force_update_agent(AGENT).unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(600)));
    };
    update();
    let accuracy = |articles: &[&super::news::Article]| {
        let texts: Vec<&str> = articles.iter().map(|a| a.text.as_str()).collect();
        let predictions = c.predict_batch(AGENT, TASK, &texts).unwrap();
        let right = predictions
            .iter()
            .zip(articles)
            .filter(|(p, a)| p.output == label(a))
            .count();
        right as f64 / articles.len() as f64
    };
    let (mut validation_curve, mut test_curve) = (vec![accuracy(validation)], vec![accuracy(test)]);
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let mut unlabelled: Vec<&super::news::Article> = Vec::new();
    for round in 0..ROUNDS {
        let arrivals = &pool[round * ARRIVALS..(round + 1) * ARRIVALS];
        let mut answered = Vec::new();
        for a in arrivals {
            let p = c.predict(AGENT, TASK, &a.text).unwrap();
            answered.push((a, p));
        }
        match method {
            Method::Strategy(_) => {
                for item in c.next_for_review(AGENT, TASK, PER_ROUND).unwrap() {
                    let truth = pool
                        .iter()
                        .find(|a| a.text == item.input_text)
                        .expect("the reviewer knows every article");
                    c.label(item.review_id, label(truth), Some(Priority::Low)).unwrap();
                }
            }
            Method::Random => {
                unlabelled.extend(answered.iter().map(|(a, _)| *a));
                rng.shuffle(&mut unlabelled);
                for a in unlabelled.split_off(unlabelled.len().saturating_sub(PER_ROUND)) {
                    let predicted = c
                        .predict_batch(AGENT, TASK, &[a.text.as_str()])
                        .unwrap()
                        .remove(0)
                        .output;
                    c.add_user_correction(UserCorrection {
                        priority: Priority::Low,
                        ..UserCorrection::new(AGENT, TASK, a.text.clone(), predicted, label(a))
                    })
                    .unwrap();
                }
            }
        }
        update();
        validation_curve.push(accuracy(validation));
        test_curve.push(accuracy(test));
    }
    c.shutdown();
    let _ = std::fs::remove_dir_all(data_dir);
    (validation_curve, test_curve)
}
