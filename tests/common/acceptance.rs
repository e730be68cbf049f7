//! The operating characteristics of the acceptance test (`onthefly::judge`),
//! measured with the library's default classifier on the news articles in a
//! shuffled (stationary) order. Shared by `examples/acceptance.rs` (the
//! figures of docs/measurements.md) and `tests/acceptance.rs` (a reduced run that guards
//! them).
//!
//! Per trial: the live model has learned the first `warm_up + t·batch`
//! articles of the stream (one adaptive pass each, as the coordinator's
//! updates do); a candidate is the live model plus one update of `batch`
//! fresh articles, either as they are (A/A: any rollback is a false one,
//! the candidate learned more of the same distribution) or with a share of
//! them labelled with one wrong outlet (a harmful update). Both are
//! judged on 100 held-out articles drawn at random for the trial, as an
//! update's window is; the candidate's true cost is measured on 1,500 other
//! articles never trained on nor judged on. The judge is the library's
//! default: the paired test and the guard on a drop above 0.05.

#![allow(dead_code)] // Each user takes some of these.

use onthefly::eval::measure;
use onthefly::features::SplitMix64;
use onthefly::judge::{paired_verdict, AcceptanceConfig};
use onthefly::models::TextClassifier;
use onthefly::{train_one_epoch, Target, TextModelConfig, TrainingExample};

use super::news::{load_articles, OUTLETS};

/// What one trial found.
#[derive(Debug, Clone, Copy)]
pub struct Trial {
    /// Share of the update's labels made wrong (0 for A/A).
    pub rotated: f64,
    /// Accuracy lost on the 1,500 test articles (negative: gained).
    pub true_cost: f64,
    /// Whether the acceptance test rolled the candidate back.
    pub rolled_back: bool,
    /// The drop of accuracy on the trial's 100 judging articles.
    pub window_drop: f64,
}

/// A summary of trials.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// A/A trials and how many were rolled back.
    pub aa_trials: usize,
    pub aa_rollbacks: usize,
    /// Harmful trials that cost at least 10 points, and how many were rolled back.
    pub harmful_trials: usize,
    pub harmful_rollbacks: usize,
}

impl Summary {
    pub fn false_rollback_rate(&self) -> f64 {
        self.aa_rollbacks as f64 / self.aa_trials.max(1) as f64
    }

    pub fn harm_caught_rate(&self) -> f64 {
        self.harmful_rollbacks as f64 / self.harmful_trials.max(1) as f64
    }
}

/// Summarises trials (harmful ones: those with wrong labels that cost ≥ 10 points).
pub fn summarise(trials: &[Trial]) -> Summary {
    let aa: Vec<&Trial> = trials.iter().filter(|t| t.rotated == 0.0).collect();
    let harmful: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.rotated > 0.0 && t.true_cost >= 0.10)
        .collect();
    Summary {
        aa_trials: aa.len(),
        aa_rollbacks: aa.iter().filter(|t| t.rolled_back).count(),
        harmful_trials: harmful.len(),
        harmful_rollbacks: harmful.iter().filter(|t| t.rolled_back).count(),
    }
}

fn example(i: usize, text: &str, outlet: &str) -> TrainingExample {
    TrainingExample::new(
        i as u64,
        "scout",
        "news",
        text.to_string(),
        Target::Label(outlet.to_string()),
    )
}

/// Runs `trials` trials per share of wrong labels in `shares` (0.0 is A/A) on the
/// stream shuffled by `seed`, with updates of `batch` after `warm_up` articles.
pub fn run(
    seed: u64,
    warm_up: usize,
    batch: usize,
    trials: usize,
    shares: &[f64],
    config: &AcceptanceConfig,
) -> Vec<Trial> {
    let mut articles = load_articles();
    let mut rng = SplitMix64::new(seed);
    rng.shuffle(&mut articles);
    let all: Vec<TrainingExample> = articles
        .iter()
        .enumerate()
        .map(|(i, a)| example(i, &a.text, &a.outlet))
        .collect();
    let (test, rest) = all.split_at(1500);
    let (window_pool, stream) = rest.split_at(400);
    assert!(
        stream.len() >= warm_up + trials * batch,
        "the stream is too short for {trials} trials"
    );

    let mut live = TextClassifier::new(TextModelConfig::default(), tch::Device::Cpu, seed).unwrap();
    train_one_epoch(&mut live, &stream[..warm_up], seed, &[]).unwrap();
    let mut out = Vec::new();
    for t in 0..trials {
        let fresh = &stream[warm_up + t * batch..warm_up + (t + 1) * batch];
        let mut window: Vec<TrainingExample> = window_pool.to_vec();
        rng.shuffle(&mut window);
        window.truncate(100);
        let live_window = measure(&live, &window).unwrap().unwrap();
        let live_test = measure(&live, test).unwrap().unwrap().metric.value;
        for &share in shares {
            let update: Vec<TrainingExample> = fresh
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let rotate = (i as f64) < share * fresh.len() as f64;
                    match (&e.expected_output, rotate) {
                        (Target::Label(label), true) => {
                            // One wrong outlet for the whole share: a burst
                            // of mislabelled corrections, say.
                            let mut wrong = OUTLETS[t % OUTLETS.len()];
                            if wrong == label {
                                wrong = OUTLETS[(t + 1) % OUTLETS.len()];
                            }
                            TrainingExample {
                                expected_output: Target::Label(wrong.to_string()),
                                ..e.clone()
                            }
                        }
                        _ => e.clone(),
                    }
                })
                .collect();
            let mut candidate = live.try_copy().unwrap();
            train_one_epoch(&mut candidate, &update, seed ^ t as u64, &[]).unwrap();
            let cand_window = measure(&candidate, &window).unwrap().unwrap();
            let cand_test = measure(&candidate, test).unwrap().unwrap().metric.value;
            out.push(Trial {
                rotated: share,
                true_cost: live_test - cand_test,
                rolled_back: paired_verdict(&live_window, &cand_window, config, 0.05).is_some(),
                window_drop: live_window.metric.value - cand_window.metric.value,
            });
        }
        // The stream goes on: the live model learns the fresh articles.
        train_one_epoch(&mut live, fresh, seed ^ (t as u64) << 8, &[]).unwrap();
    }
    out
}
