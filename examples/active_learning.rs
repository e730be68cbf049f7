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

#[path = "../tests/common/active.rs"]
mod active;
#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // Only part of the news fixture is used here.
#[path = "../tests/common/news.rs"]
mod news;
#[path = "common/plot.rs"]
mod plot;

use active::{run, Method, PER_ROUND, ROUNDS, SEED_LABELS};
use onthefly::features::SplitMix64;
use onthefly::review::QueryStrategy;

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
