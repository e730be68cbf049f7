//! How often the acceptance test is wrong: the rate of false rollbacks in
//! A/A trials (a candidate trained on 50 fresh articles of a stationary
//! stream) and the rate at which it rolls back updates that cost at least
//! 10 points of accuracy (50 articles of which a quarter, half or all carry
//! one wrong outlet), with the default classifier and the default
//! `acceptance` settings (paired sign test, 95 %, margin 0), on the news
//! articles shuffled by each seed. See `tests/common/acceptance.rs` for the
//! procedure. The last line printed is JSON.
//!
//! `cargo run --release --example acceptance -- [--seeds 5] [--trials 30] [--confidence C] [--margin M]`

#[path = "../tests/common/acceptance.rs"]
mod acceptance;
#[path = "common/args.rs"]
mod args;
#[path = "../tests/common/news.rs"]
#[allow(dead_code)] // The links are not needed here.
mod news;

use onthefly::judge::AcceptanceConfig;

fn main() {
    let seeds: u64 = args::value("--seeds").unwrap_or(5);
    let trials: usize = args::value("--trials").unwrap_or(30);
    let defaults = AcceptanceConfig::default();
    let config = AcceptanceConfig {
        confidence: args::value("--confidence").unwrap_or(defaults.confidence),
        margin: args::value("--margin").unwrap_or(defaults.margin),
        ..defaults
    };
    let mut all = Vec::new();
    for seed in 1..=seeds {
        let found = acceptance::run(seed, 300, 50, trials, &[0.0, 0.25, 0.5, 1.0], &config);
        let s = acceptance::summarise(&found);
        eprintln!(
            "seed {seed}: A/A rollbacks {}/{}, harmful (≥ 10 points) rolled back {}/{}",
            s.aa_rollbacks, s.aa_trials, s.harmful_rollbacks, s.harmful_trials
        );
        all.extend(found);
    }
    let s = acceptance::summarise(&all);
    // The original's rule alone on the same trials: a drop above 0.05.
    let original: Vec<acceptance::Trial> = all
        .iter()
        .map(|t| acceptance::Trial {
            rolled_back: t.window_drop > 0.05 + 1e-9,
            ..*t
        })
        .collect();
    let o = acceptance::summarise(&original);
    let by_share: Vec<serde_json::Value> = [0.25, 0.5, 1.0]
        .iter()
        .map(|&share| {
            let these: Vec<_> = all.iter().filter(|t| t.rotated == share).collect();
            let n = these.len().max(1) as f64;
            serde_json::json!({
                "wrong_share": share,
                "trials": these.len(),
                "mean_true_cost": these.iter().map(|t| t.true_cost).sum::<f64>() / n,
                "rolled_back": these.iter().filter(|t| t.rolled_back).count(),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "aa_trials": s.aa_trials,
            "aa_false_rollbacks": s.aa_rollbacks,
            "false_rollback_rate": s.false_rollback_rate(),
            "harmful_trials_costing_10_points": s.harmful_trials,
            "harmful_rolled_back": s.harmful_rollbacks,
            "harm_caught_rate": s.harm_caught_rate(),
            "by_wrong_share": by_share,
            "original_rule": {
                "aa_false_rollbacks": o.aa_rollbacks,
                "false_rollback_rate": o.false_rollback_rate(),
                "harmful_rolled_back": o.harmful_rollbacks,
                "harm_caught_rate": o.harm_caught_rate(),
            },
            "acceptance": config,
        })
    );
}
