//! The judge on clean streams (every label right, `examples/judge_clean.rs`
//! reduced to the kinds whose figures it guards): the regressor on the VADER
//! tweets' ratings, in file order and shuffled. A harmless update is rolled
//! back at most 5 % of the time by design, and a correct example is not
//! quarantined (at most 1 %). Measured: no update of either order rolled
//! back, nothing quarantined (before the regressor's margin of 0.005: 4 and
//! 7 of 84 rolled back, 50 tweets quarantined in each order). The tagger's
//! clean stream is checked in `tests/tagger_wnut.rs`.

mod common;

use common::judging::{run, shuffled, Outcome};
use onthefly::Target;

fn assert_clean(outcome: &Outcome) {
    println!("{outcome:?}");
    assert!(
        outcome.whole_rolled_back as f64 <= 0.05 * outcome.whole_updates as f64,
        "{}: {} of {} updates rolled back",
        outcome.stream,
        outcome.whole_rolled_back,
        outcome.whole_updates
    );
    assert!(
        outcome.quarantined as f64 <= 0.01 * outcome.examples as f64,
        "{}: {} of {} correct examples quarantined",
        outcome.stream,
        outcome.quarantined,
        outcome.examples
    );
}

#[test]
fn the_regressor_keeps_a_clean_stream() {
    let items: Vec<(String, Target)> = common::vader::load_ratings("tweets_GroundTruth.txt")
        .into_iter()
        .map(|s| (s.text, Target::Score(((s.rating + 4.0) / 8.0).clamp(0.0, 1.0))))
        .collect();
    assert_clean(&run("regressor, in order", &items));
    assert_clean(&run("regressor, shuffled", &shuffled(&items)));
}
