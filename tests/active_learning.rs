//! A reduced run of the active-learning experiment
//! (`examples/active_learning.rs`): margin sampling against random labelling
//! only, with EWC off (the λ the full run chose on validation articles),
//! over the same 5 shuffles. The table of docs/measurements.md: margin is ahead of random
//! in three of the last four rounds and on their mean; the test requires it
//! on their mean, and margin's final accuracy within 0.05 of docs/measurements.md's.

mod common;

use common::active::{run, Method};
use common::news;
use onthefly::features::SplitMix64;
use onthefly::review::QueryStrategy;

/// Margin's final test accuracy in docs/measurements.md (mean of 5 shuffles).
const MEASURED_MARGIN: f64 = 0.699;

#[test]
fn margin_sampling_beats_random_labelling_in_the_last_rounds() {
    let all = news::load_articles();
    let mean_of = |method: Method| {
        let curves: Vec<Vec<f64>> = (0..5u64)
            .map(|seed| {
                let mut articles: Vec<&news::Article> = all.iter().collect();
                SplitMix64::new(seed + 1).shuffle(&mut articles);
                run(method, &articles, seed, 0.0).1
            })
            .collect();
        (0..curves[0].len())
            .map(|r| curves.iter().map(|c| c[r]).sum::<f64>() / curves.len() as f64)
            .collect::<Vec<f64>>()
    };
    let margin = mean_of(Method::Strategy(QueryStrategy::Margin));
    let random = mean_of(Method::Random);
    let last_four = |curve: &[f64]| curve[curve.len() - 4..].iter().sum::<f64>() / 4.0;
    eprintln!("margin {margin:.3?}\nrandom {random:.3?}");
    assert!(
        last_four(&margin) > last_four(&random),
        "margin {:.3} vs random {:.3} over the last four rounds",
        last_four(&margin),
        last_four(&random)
    );
    let last = *margin.last().unwrap();
    assert!(
        last >= MEASURED_MARGIN - 0.05,
        "margin ends at {last:.3}, docs/measurements.md says {MEASURED_MARGIN}"
    );
}
