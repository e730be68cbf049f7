//! How often the judge refuses correct examples: a clean stream (every label
//! right) handed in through the coordinator as an agent would, waiting for
//! each update of 50, with the default configuration, for each built-in
//! model kind on its real data:
//!
//! - `classifier`: the news articles' outlets, in date order and in a
//!   fixed-seed shuffle of the same articles (where runs of one outlet do
//!   not decide what a window holds);
//! - `regressor`: the VADER tweets' ratings rescaled to 0..=1, in file order
//!   and shuffled;
//! - `tagger`: the WNUT-16 tweets' BIO tags, in file order and shuffled.
//!
//! Reported per stream: updates of whole batches and how many were rolled
//! back, those of the stream's second half alone (an A/A comparison: the
//! model has learned the first half, and every update trains more of the
//! same clean stream), all rollbacks (halves included) and the examples
//! quarantined as harmful. A correct example should never be quarantined;
//! a harmless update is rolled back at most 5 % of the time by design (the
//! paired test's confidence 0.95).
//!
//! `cargo run --release --example judge_clean -- [--only classifier|regressor|tagger] [--limit N]`
//! The last line printed is JSON.

#[path = "common/args.rs"]
mod args;
#[path = "../tests/common/ner.rs"]
#[allow(dead_code)]
mod ner;
#[path = "../tests/common/news.rs"]
#[allow(dead_code)]
mod news;
#[path = "../tests/common/vader.rs"]
#[allow(dead_code)]
mod vader;

#[path = "../tests/common/judging.rs"]
mod judging;

use judging::{run, shuffled};
use onthefly::Target;

fn main() {
    let only = args::value::<String>("--only");
    let limit = args::value::<usize>("--limit").unwrap_or(usize::MAX);
    let wants = |kind: &str| only.as_deref().is_none_or(|o| o == kind);
    let mut outcomes = Vec::new();
    let mut both = |name: &str, mut items: Vec<(String, Target)>| {
        items.truncate(limit);
        outcomes.push(run(&format!("{name}, in order"), &items));
        outcomes.push(run(&format!("{name}, shuffled"), &shuffled(&items)));
    };
    if wants("classifier") {
        let items = news::load_articles()
            .into_iter()
            .map(|a| (a.text, Target::Label(a.outlet)))
            .collect();
        both("classifier: news outlets", items);
    }
    if wants("regressor") {
        let items = vader::load_ratings("tweets_GroundTruth.txt")
            .into_iter()
            .map(|s| (s.text, Target::Score(((s.rating + 4.0) / 8.0).clamp(0.0, 1.0))))
            .collect();
        both("regressor: VADER tweet ratings", items);
    }
    if wants("tagger") {
        let items = ner::load_sentences()
            .into_iter()
            .map(|s| (s.text(), Target::Tags(s.tags)))
            .collect();
        both("tagger: WNUT-16 tweets", items);
    }
    println!("{}", serde_json::to_string(&outcomes).unwrap());
}
