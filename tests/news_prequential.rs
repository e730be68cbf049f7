//! Guards the news stream's headline figures (docs/measurements.md, "Side by
//! side with the peers", `cargo run --release --example peer_news -- --wait
//! [--update-threshold 1]`): the 3,823 articles in date order, each
//! predicted, then handed in, each update waited for, with the library's
//! defaults (store and checkpoints off, as in that run). Waiting makes the
//! run deterministic (the same figure in every run, seeds are the tasks'),
//! so the margin is what a real change would move: 0.01, 38 articles.

mod common;

use std::time::Duration;

use common::news;
use onthefly::{Config, Coordinator, NewExample, StoreConfig, Target};

/// Updates of 50 (the default threshold), and of 1.
const MEASURED_50: f64 = 0.684;
const MEASURED_1: f64 = 0.785;
const MARGIN: f64 = 0.01;

fn prequential_accuracy(update_threshold: usize) -> f64 {
    let articles = news::load_articles();
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
        ..defaults
    })
    .unwrap();
    let mut correct = 0usize;
    for a in &articles {
        let truth = Target::Label(a.outlet.clone());
        let confidence = match c.predict("scout", "news_classification", &a.text) {
            Ok(p) => {
                correct += usize::from(p.output == truth);
                p.confidence
            }
            Err(_) => 0.0,
        };
        c.add_training_example(
            NewExample::new("scout", "news_classification", a.text.clone(), truth)
                .with_uncertainty(1.0 - confidence)
                .with_source(a.url.clone()),
        )
        .unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(600)));
    }
    c.shutdown();
    correct as f64 / articles.len() as f64
}

#[test]
fn the_news_streams_prequential_accuracy_holds_with_updates_of_50() {
    let accuracy = prequential_accuracy(50);
    println!("updates of 50: prequential accuracy {accuracy:.4}");
    assert!(
        accuracy >= MEASURED_50 - MARGIN,
        "{accuracy:.4}, docs/measurements.md says {MEASURED_50}"
    );
}

#[test]
fn the_news_streams_prequential_accuracy_holds_with_updates_of_1() {
    let accuracy = prequential_accuracy(1);
    println!("updates of 1: prequential accuracy {accuracy:.4}");
    assert!(
        accuracy >= MEASURED_1 - MARGIN,
        "{accuracy:.4}, docs/measurements.md says {MEASURED_1}"
    );
}
