//! Guards the wrong-label figures (docs/measurements.md, "Wrong labels";
//! `cargo run --release --example peer_noisy -- …`, the peers in
//! `bench/peers/run.sh`, `PEERS_ONLY=noisy`): a fifth of the labels replaced
//! by another class at random (a fixed seed), updates of 50 waited for,
//! scored against the true labels, the last fifth of the stream set aside as
//! clean unseen data. Waiting makes every run the same, so each figure's
//! margin is what a real change would move: 0.01. The stream must not fall:
//! its last half is predicted better than its first. Where onthefly is at or
//! above Vowpal Wabbit on the same stream at the same cadence (batches of 50;
//! its figures are deterministic too), on every stream here, it must stay
//! there (issue 28, part 3: on the short texts with a fifth wrong it was
//! 0.510 / 0.548 against 0.526 / 0.560 until a short text's step was
//! bounded; now 0.558 / 0.595).

mod common;

use common::noisy::{self, Spec};

const MARGIN: f64 = 0.01;

/// One stream's figures: onthefly's (measured) and Vowpal Wabbit's in
/// batches of 50 (`bench/peers/news_stream.py --peer vw --batch 50` on the
/// stream `peer_noisy --export` writes).
struct Expected {
    prequential: f64,
    unseen: f64,
    /// Vowpal Wabbit's, where onthefly must stay at or above them.
    vw: Option<(f64, f64)>,
}

fn check(spec: &Spec, expected: Expected) {
    let items = noisy::stream(spec);
    let outcome = noisy::run(&items, noisy::defaults_without_store(common::fresh_data_dir()));
    let name = format!("{} {} {}", spec.data, spec.order, spec.noise);
    println!("{name}: {outcome:?}");
    assert!(
        outcome.prequential_accuracy >= expected.prequential - MARGIN,
        "{name}: prequential {:.4}, measured {}",
        outcome.prequential_accuracy,
        expected.prequential
    );
    assert!(
        outcome.unseen_accuracy >= expected.unseen - MARGIN,
        "{name}: unseen {:.4}, measured {}",
        outcome.unseen_accuracy,
        expected.unseen
    );
    if let Some((vw_prequential, vw_unseen)) = expected.vw {
        assert!(
            outcome.prequential_accuracy >= vw_prequential,
            "{name}: prequential {:.4} below Vowpal Wabbit's {vw_prequential}",
            outcome.prequential_accuracy,
        );
        assert!(
            outcome.unseen_accuracy >= vw_unseen,
            "{name}: unseen {:.4} below Vowpal Wabbit's {vw_unseen}",
            outcome.unseen_accuracy,
        );
    }
    let half = |t: &[f64]| t.iter().sum::<f64>() / t.len() as f64;
    let (first, last) = outcome.prequential_by_tenth.split_at(5);
    assert!(
        half(last) > half(first),
        "{name}: the stream fell: {:.3} in its first half, {:.3} in its last",
        half(first),
        half(last)
    );
    if spec.noise > 0.0 {
        assert!(outcome.wrong_labels > 0);
    }
}

/// Short texts, 3 classes: the VADER movie, Amazon and NYT snippets
/// shuffled (the tweets are the validation stream). Before a short text's
/// step was bounded (`full_step_ngrams`), 0.510 / 0.548, below Vowpal
/// Wabbit.
#[test]
fn short_texts_with_a_fifth_of_the_labels_wrong() {
    check(
        &Spec::new("vader:rest", "shuffled", 0.2),
        Expected {
            prequential: 0.558,
            unseen: 0.595,
            vw: Some((0.526, 0.560)),
        },
    );
}

#[test]
fn short_texts_with_every_label_right() {
    check(
        &Spec::new("vader:rest", "shuffled", 0.0),
        Expected {
            prequential: 0.610,
            unseen: 0.652,
            vw: Some((0.570, 0.612)),
        },
    );
}

/// The news articles 1,001–3,823 (1–1,000 were where the classifier's rate
/// was chosen), shuffled, so runs of one outlet do not decide the figure.
#[test]
fn news_articles_with_a_fifth_of_the_labels_wrong() {
    let spec = Spec {
        skip: 1000,
        ..Spec::new("news", "shuffled", 0.2)
    };
    check(
        &spec,
        Expected {
            prequential: 0.650,
            unseen: 0.765,
            vw: Some((0.580, 0.692)),
        },
    );
}
