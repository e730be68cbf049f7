//! Does the review queue spend a labelling budget better than chance?
//!
//! The scout classifies news articles by outlet. Articles arrive in rounds
//! of 200; the scout predicts each one with `predict`, which sends the unsure
//! ones to the review queue by itself. A simulated reviewer then spends 30
//! labels per round: with a query strategy it labels what
//! `next_for_review` hands out (least confidence, margin, entropy), with
//! `random` it labels 30 of the articles seen so far chosen at random. After
//! each round the model updates once and is measured on 600 test articles
//! never labelled. Each strategy starts from the same 45 labelled articles;
//! the figures are the mean over `--seeds` shuffles. Updates use online EWC
//! (`--lambda`, default 1e4; 0 turns it off) and Adam at `--lr` (0.1).
//!
//! `cargo run --release --example active_learning -- [--json] [--seeds 3] [--lambda 1e4] [--plot docs/active_learning.svg]`
//! The last line is JSON: the final accuracy of each method.

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // Only part of the news fixture is used here.
#[path = "../tests/common/news.rs"]
mod news;
#[path = "common/plot.rs"]
mod plot;

use std::time::Duration;

use onthefly::features::SplitMix64;
use onthefly::review::QueryStrategy;
use onthefly::{Config, Coordinator, NewExample, Priority, Target, UserCorrection};

const AGENT: &str = "scout";
const TASK: &str = "news_classification";
const SEED_LABELS: usize = 45;
const ROUNDS: usize = 10;
const ARRIVALS: usize = 200;
const PER_ROUND: usize = 30;
const TEST: usize = 600;

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Random,
    Strategy(QueryStrategy),
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Random => "random",
            Method::Strategy(QueryStrategy::LeastConfidence) => "least_confidence",
            Method::Strategy(QueryStrategy::Margin) => "margin",
            Method::Strategy(QueryStrategy::Entropy) => "entropy",
        }
    }
}

/// Accuracy on the test articles after each round (index 0: the seed model).
fn run(method: Method, articles: &[&news::Article], seed: u64, lambda: f64) -> Vec<f64> {
    let (test, rest) = articles.split_at(TEST);
    let (seeded, pool) = rest.split_at(SEED_LABELS);
    let data_dir = std::env::temp_dir().join(format!(
        "onthefly-active-{}-{}-{seed}",
        std::process::id(),
        method.name()
    ));
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
        text_model: onthefly::TextModelConfig {
            learning_rate: args::value("--lr").unwrap_or(0.1),
            ..onthefly::TextModelConfig::default()
        },
        // Thirty labels per update: without EWC each small update overwrites
        // much of the last (see the README's figures with --lambda 0).
        ewc: onthefly::ewc::EwcConfig {
            enabled: lambda > 0.0,
            lambda,
            ..onthefly::ewc::EwcConfig::default()
        },
        ..Config::default()
    })
    .expect("coordinator");
    let label = |a: &news::Article| Target::Label(a.outlet.clone());
    for a in seeded {
        c.add_training_example(NewExample::new(AGENT, TASK, a.text.clone(), label(a)))
            .unwrap();
    }
    let update = || {
        c.force_update_agent(AGENT).unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(600)));
    };
    update();
    let texts: Vec<&str> = test.iter().map(|a| a.text.as_str()).collect();
    let accuracy = || {
        let predictions = c.predict_batch(AGENT, TASK, &texts).unwrap();
        let right = predictions
            .iter()
            .zip(test)
            .filter(|(p, a)| p.output == label(a))
            .count();
        right as f64 / test.len() as f64
    };
    let mut curve = vec![accuracy()];
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let mut unlabelled: Vec<&news::Article> = Vec::new();
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
        curve.push(accuracy());
    }
    c.shutdown();
    let _ = std::fs::remove_dir_all(data_dir);
    curve
}

fn chart(curves: &[(Method, Vec<f64>)]) -> plot::Chart {
    plot::Chart {
        x_label: "labels spent".into(),
        y_label: "test accuracy".into(),
        series: curves
            .iter()
            .map(|(method, curve)| plot::Series {
                name: method.name().into(),
                points: curve
                    .iter()
                    .enumerate()
                    .map(|(r, acc)| ((SEED_LABELS + r * PER_ROUND) as f64, *acc))
                    .collect(),
                dashed: *method == Method::Random,
            })
            .collect(),
        marks: Vec::new(),
        marks_name: String::new(),
    }
}

fn main() {
    let seeds: u64 = args::value("--seeds").unwrap_or(3);
    let lambda: f64 = args::value("--lambda").unwrap_or(1e4);
    let plot: Option<String> = args::value("--plot");
    let all = news::load_articles();
    let methods = [
        Method::Random,
        Method::Strategy(QueryStrategy::LeastConfidence),
        Method::Strategy(QueryStrategy::Margin),
        Method::Strategy(QueryStrategy::Entropy),
    ];
    let mut curves: Vec<(Method, Vec<f64>)> = methods.iter().map(|m| (*m, vec![0.0; ROUNDS + 1])).collect();
    for seed in 0..seeds {
        let mut articles: Vec<&news::Article> = all.iter().collect();
        SplitMix64::new(seed + 1).shuffle(&mut articles);
        for (method, mean) in &mut curves {
            let curve = run(*method, &articles, seed, lambda);
            for (m, v) in mean.iter_mut().zip(curve) {
                *m += v / seeds as f64;
            }
        }
    }
    println!("test accuracy (mean of {seeds} shuffles) after each round of {PER_ROUND} labels, from {SEED_LABELS} seed labels:");
    println!(
        "{:>18} {}",
        "labels",
        (0..=ROUNDS)
            .map(|r| format!("{:>6}", SEED_LABELS + r * PER_ROUND))
            .collect::<String>()
    );
    for (method, curve) in &curves {
        println!(
            "{:>18} {}",
            method.name(),
            curve.iter().map(|a| format!("{a:>6.3}")).collect::<String>()
        );
    }
    if let Some(path) = plot {
        std::fs::write(&path, chart(&curves).svg()).expect("write the plot");
        println!("plot written to {path}");
    }
    let summary: serde_json::Map<String, serde_json::Value> = curves
        .iter()
        .map(|(m, c)| {
            (
                m.name().to_string(),
                serde_json::json!(c.last().copied().unwrap_or(0.0)),
            )
        })
        .collect();
    println!("{}", serde_json::Value::Object(summary));
}
