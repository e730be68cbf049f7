//! Guards the news stream's headline figures (docs/measurements.md, "Side by
//! side with the peers", `cargo run --release --example peer_news -- --wait
//! [--update-threshold 1] [--order shuffled]`): the 3,823 articles in date
//! order, each predicted, then handed in, each update waited for, with the
//! library's defaults (store and checkpoints off, as in that run); the
//! figure over articles 1,001–3,823 alone (the defaults were chosen on the
//! first 1,000); the same articles in a fixed-seed shuffle. Waiting makes
//! every run deterministic (the same figure in every run, seeds are the
//! tasks'), so the margin is what a real change would move: 0.01, 38
//! articles.
//!
//! The judge through the coordinator on this clean stream (issue 28, part
//! 1): every update is of correct articles, so every rollback refuses a
//! harmless update. With updates of 1 they are 185 of 3,835 (4.8 %, what a
//! sign test at 95 % allows; shuffled 169 of 3,819); the test fails above
//! 6 %. With updates of 50, keeping every update instead scores 0.683
//! against the judge's 0.682 (`peer_news --wait --keep-every-update`): the
//! rollbacks cost nothing; the test fails when they cost more than 0.01.

mod common;

use std::time::Duration;

use common::news;
use onthefly::judge::{AcceptanceConfig, AcceptanceTest};
use onthefly::{Config, Coordinator, StoreConfig};

/// Updates of 50 (the default threshold), and of 1.
const MEASURED_50: f64 = 0.682;
const MEASURED_1: f64 = 0.795;
/// Updates of 50 over articles 1,001–3,823 only.
const MEASURED_50_FROM_1001: f64 = 0.740;
/// Updates of 50, the articles shuffled (seed 1).
const MEASURED_50_SHUFFLED: f64 = 0.768;
const MARGIN: f64 = 0.01;

/// What a run measured.
struct Run {
    /// Prequential accuracy over every article.
    accuracy: f64,
    /// The same over articles 1,001 on.
    from_1001: f64,
    updates_accepted: u64,
    updates_rolled_back: u64,
}

/// Streams the articles with `update_threshold`; with `keep_every_update`
/// the judge rolls nothing back (the original's rule on a drop above 1).
fn prequential_accuracy(update_threshold: usize, shuffled: bool, keep_every_update: bool) -> Run {
    let mut articles = news::load_articles();
    if shuffled {
        onthefly::features::SplitMix64::new(1).shuffle(&mut articles);
    }
    let defaults = Config::default();
    let c = Coordinator::new(Config {
        data_dir: common::fresh_data_dir(),
        device: onthefly::DeviceChoice::Cpu,
        predict_feedback_threshold: 0.0,
        update_threshold,
        checkpoints_kept: 0,
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        rollback_threshold: if keep_every_update {
            1.0
        } else {
            defaults.rollback_threshold
        },
        acceptance: AcceptanceConfig {
            test: match keep_every_update {
                true => AcceptanceTest::Threshold,
                false => defaults.acceptance.test,
            },
            ..defaults.acceptance.clone()
        },
        ..defaults
    })
    .unwrap();
    let (mut correct, mut correct_from_1001) = (0usize, 0usize);
    for (i, a) in articles.iter().enumerate() {
        let right = usize::from(news::predict_then_hand_in(&c, "scout", "news_classification", a));
        correct += right;
        correct_from_1001 += right * usize::from(i >= 1000);
        assert!(c.wait_for_idle(Duration::from_secs(600)));
    }
    let agent = c.get_training_status().agents["scout"].clone();
    c.shutdown();
    let n = articles.len();
    Run {
        accuracy: correct as f64 / n as f64,
        from_1001: correct_from_1001 as f64 / (n - 1000) as f64,
        updates_accepted: agent.updates_accepted,
        updates_rolled_back: agent.updates_rolled_back,
    }
}

#[test]
fn the_news_streams_prequential_accuracy_holds_with_updates_of_50() {
    let Run {
        accuracy, from_1001, ..
    } = prequential_accuracy(50, false, false);
    println!("updates of 50: prequential accuracy {accuracy:.4}, articles 1,001 on {from_1001:.4}");
    assert!(
        accuracy >= MEASURED_50 - MARGIN,
        "{accuracy:.4}, docs/measurements.md says {MEASURED_50}"
    );
    assert!(
        from_1001 >= MEASURED_50_FROM_1001 - MARGIN,
        "{from_1001:.4} over articles 1,001 on, docs/measurements.md says {MEASURED_50_FROM_1001}"
    );
    let kept = prequential_accuracy(50, false, true);
    println!(
        "updates of 50, every update kept: prequential accuracy {:.4}",
        kept.accuracy
    );
    assert!(
        accuracy >= kept.accuracy - MARGIN,
        "the judge's rollbacks cost {:.4} on a clean stream ({accuracy:.4} against {:.4} keeping every update)",
        kept.accuracy - accuracy,
        kept.accuracy
    );
}

#[test]
fn the_news_streams_prequential_accuracy_holds_with_updates_of_1() {
    let run = prequential_accuracy(1, false, false);
    let accuracy = run.accuracy;
    let updates = run.updates_accepted + run.updates_rolled_back;
    let false_rollbacks = run.updates_rolled_back as f64 / updates as f64;
    println!(
        "updates of 1: prequential accuracy {accuracy:.4}; {} of {updates} updates of a correct article rolled back",
        run.updates_rolled_back
    );
    assert!(
        false_rollbacks <= 0.06,
        "{} of {updates} harmless updates rolled back",
        run.updates_rolled_back
    );
    assert!(
        accuracy >= MEASURED_1 - MARGIN,
        "{accuracy:.4}, docs/measurements.md says {MEASURED_1}"
    );
}

#[test]
fn the_news_streams_prequential_accuracy_holds_when_shuffled() {
    let accuracy = prequential_accuracy(50, true, false).accuracy;
    println!("updates of 50, shuffled: prequential accuracy {accuracy:.4}");
    assert!(
        accuracy >= MEASURED_50_SHUFFLED - MARGIN,
        "{accuracy:.4}, docs/measurements.md says {MEASURED_50_SHUFFLED}"
    );
}
