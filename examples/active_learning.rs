//! Does the review queue spend a labelling budget better than chance?
//!
//! The scout classifies news articles by outlet with the library's default
//! classifier. Articles arrive in rounds of 200; the scout predicts each one
//! with `predict`, which sends the unsure ones to the review queue by
//! itself. A simulated reviewer then spends 30 labels per round: with a
//! query strategy it labels what `next_for_review` hands out (least
//! confidence, margin, entropy), with `random` it labels 30 of the articles
//! seen so far chosen at random. After each round the model updates once.
//! Each shuffle of the articles splits off 600 test articles and 600
//! validation articles, never labelled; every strategy starts from the same
//! 45 labelled articles.
//!
//! The EWC strength is chosen on the validation articles: each λ of
//! `--grid` (default `0,1,10`; 0 is EWC off, the library's default) runs
//! every strategy on every shuffle, and the λ with the best final
//! validation accuracy averaged over the strategies is kept; only then are
//! its test figures reported, as mean ± standard deviation over `--seeds`
//! shuffles (default 5).
//!
//! `cargo run --release --example active_learning -- [--seeds 5] [--grid 0,1,10] [--plot docs/active_learning.svg]`
//! The last line is JSON: the chosen λ and each method's test curve (mean, sd).

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
const VALIDATION: usize = 600;

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

/// Accuracy on the validation and on the test articles after each round
/// (index 0: the seed model).
fn run(method: Method, articles: &[&news::Article], seed: u64, lambda: f64) -> (Vec<f64>, Vec<f64>) {
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
    let accuracy = |articles: &[&news::Article]| {
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
        validation_curve.push(accuracy(validation));
        test_curve.push(accuracy(test));
    }
    c.shutdown();
    let _ = std::fs::remove_dir_all(data_dir);
    (validation_curve, test_curve)
}

/// A method's test curve on every shuffle.
type TestCurves = (Method, Vec<Vec<f64>>);

/// Mean and standard deviation (n − 1) of each round over the shuffles.
fn mean_sd(curves: &[Vec<f64>]) -> Vec<(f64, f64)> {
    let n = curves.len() as f64;
    (0..curves[0].len())
        .map(|r| {
            let mean = curves.iter().map(|c| c[r]).sum::<f64>() / n;
            let var = curves.iter().map(|c| (c[r] - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            (mean, var.sqrt())
        })
        .collect()
}

fn chart(curves: &[(Method, Vec<(f64, f64)>)]) -> plot::Chart {
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
                    .map(|(r, (acc, _))| ((SEED_LABELS + r * PER_ROUND) as f64, *acc))
                    .collect(),
                dashed: *method == Method::Random,
            })
            .collect(),
        marks: Vec::new(),
        marks_name: String::new(),
    }
}

fn main() {
    let seeds: u64 = args::value("--seeds").unwrap_or(5);
    let grid = args::numbers("--grid").unwrap_or_else(|| vec![0.0, 1.0, 10.0]);
    let plot: Option<String> = args::value("--plot");
    let all = news::load_articles();
    let methods = [
        Method::Random,
        Method::Strategy(QueryStrategy::LeastConfidence),
        Method::Strategy(QueryStrategy::Margin),
        Method::Strategy(QueryStrategy::Entropy),
    ];
    let shuffles: Vec<Vec<&news::Article>> = (0..seeds)
        .map(|seed| {
            let mut articles: Vec<&news::Article> = all.iter().collect();
            SplitMix64::new(seed + 1).shuffle(&mut articles);
            articles
        })
        .collect();
    // The best λ so far: its final validation accuracy and, per method, the
    // test curve of every shuffle.
    let mut best: Option<(f64, f64, Vec<TestCurves>)> = None;
    for &lambda in &grid {
        let mut validation_final = 0.0;
        let mut tests = Vec::new();
        for method in methods {
            let mut curves = Vec::new();
            for (seed, articles) in shuffles.iter().enumerate() {
                let (validation, test) = run(method, articles, seed as u64, lambda);
                validation_final += validation.last().copied().unwrap_or(0.0) / (seeds as f64 * methods.len() as f64);
                curves.push(test);
            }
            tests.push((method, curves));
        }
        println!("λ {lambda}: final validation accuracy, mean over strategies and shuffles, {validation_final:.3}");
        if best.as_ref().is_none_or(|(_, v, _)| validation_final > *v) {
            best = Some((lambda, validation_final, tests));
        }
    }
    let (lambda, _, tests) = best.expect("a λ to try");
    let curves: Vec<(Method, Vec<(f64, f64)>)> = tests.iter().map(|(m, c)| (*m, mean_sd(c))).collect();
    println!(
        "λ {lambda} chosen on validation; test accuracy (mean ± sd of {seeds} shuffles) after each round of \
         {PER_ROUND} labels, from {SEED_LABELS} seed labels:"
    );
    println!(
        "{:>18} {}",
        "labels",
        (0..=ROUNDS)
            .map(|r| format!("{:>14}", SEED_LABELS + r * PER_ROUND))
            .collect::<String>()
    );
    for (method, curve) in &curves {
        println!(
            "{:>18} {}",
            method.name(),
            curve
                .iter()
                .map(|(m, sd)| format!("{:>14}", format!("{m:.3} ± {sd:.3}")))
                .collect::<String>()
        );
    }
    if let Some(path) = plot {
        std::fs::write(&path, chart(&curves).svg()).expect("write the plot");
        println!("plot written to {path}");
    }
    let summary: serde_json::Map<String, serde_json::Value> = curves
        .iter()
        .map(|(m, c)| (m.name().to_string(), serde_json::json!(c)))
        .collect();
    println!("{}", serde_json::json!({"lambda": lambda, "test": summary}));
}
