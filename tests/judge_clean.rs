//! The judge on clean streams (every label right, `examples/judge_clean.rs`):
//! the classifier on the news articles' outlets and the regressor on the
//! VADER tweets' ratings, each in file order and shuffled, and the tagger on
//! the WNUT-16 tweets shuffled (in file order in `tests/tagger_wnut.rs`). A
//! harmless update is rolled back at most 5 % of the time by design (checked
//! on each stream's second half, where every update trains more of what the
//! model already learned: an A/A comparison), and a correct example is not
//! quarantined (at most 1 %).
//!
//! Measured (`cargo run --release --example judge_clean`): classifier 2 of
//! 74 updates rolled back in each order (0 in the second half), regressor none
//! of 82, tagger 4 of 47 (1 of 24); nothing quarantined. Before rejected
//! examples waited for fresh ones and were judged three times, the
//! classifier quarantined 100 and 150 correct articles; before the
//! regressor's margin of 0.005, 50 tweets were quarantined in each order.

mod common;

use common::judging::{run, shuffled, Outcome};
use onthefly::Target;

fn assert_clean(outcome: &Outcome) {
    println!("{outcome:?}");
    assert!(
        outcome.second_half_rolled_back as f64 <= 0.05 * outcome.second_half_updates as f64,
        "{}: {} of {} updates of the second half rolled back",
        outcome.stream,
        outcome.second_half_rolled_back,
        outcome.second_half_updates
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

#[test]
fn the_classifier_keeps_a_clean_stream() {
    let items: Vec<(String, Target)> = common::news::load_articles()
        .into_iter()
        .map(|a| (a.text, Target::Label(a.outlet)))
        .collect();
    assert_clean(&run("classifier, in order", &items));
    assert_clean(&run("classifier, shuffled", &shuffled(&items)));
}

#[test]
fn the_tagger_keeps_a_clean_shuffled_stream() {
    let items: Vec<(String, Target)> = common::ner::load_sentences()
        .into_iter()
        .map(|s| (s.text(), Target::Tags(s.tags)))
        .collect();
    assert_clean(&run("tagger, shuffled", &shuffled(&items)));
}
