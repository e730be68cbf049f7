//! The built-in classifier, trained by the coordinator on the real news stream
//! (data/news, 3,823 articles with text, 9 outlets, in date order), predicts the
//! outlet of held-out articles well above the majority-class rate.
//!
//! Measured on this machine: held-out accuracy 0.617 on 772 articles (44 updates kept, 18 rolled back); the
//! majority class (aljazeera) is 0.146. The test asks for at least 0.45.

mod common;

use std::time::Duration;

use common::news;
use onthefly::{Config, Coordinator, NewExample, Placement, Target};

#[test]
fn streaming_training_beats_the_majority_class_by_far() {
    let articles = news::load_articles();
    assert_eq!(articles.len(), 3823, "run `make data` for the full news set");
    let c = Coordinator::new(Config {
        check_interval_ms: 3_600_000,
        // Checkpoints are tested on their own; here they would only add disk time.
        checkpoints_kept: 0,
        data_dir: common::fresh_data_dir(),
        ..Config::default()
    })
    .unwrap();

    let mut held_out = Vec::new();
    for article in &articles {
        let example = NewExample::new(
            "scout",
            "news_classification",
            article.text.clone(),
            label(&article.outlet),
        )
        .with_source(article.url.clone());
        if c.add_training_example(example).unwrap().placement == Placement::HeldOut {
            held_out.push(article);
        }
        // Let each triggered update finish before the next article, so the run
        // is the same every time.
        assert!(c.wait_for_idle(Duration::from_secs(120)));
    }
    c.force_update_agent("scout").unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(120)));

    let texts: Vec<&str> = held_out.iter().map(|a| a.text.as_str()).collect();
    let predictions = c.predict_batch("scout", "news_classification", &texts).unwrap();
    let correct = predictions
        .iter()
        .zip(&held_out)
        .filter(|(p, a)| p.output == label(&a.outlet))
        .count();
    let accuracy = correct as f64 / held_out.len() as f64;
    let majority = news::OUTLETS
        .iter()
        .map(|o| held_out.iter().filter(|a| a.outlet == *o).count())
        .max()
        .unwrap() as f64
        / held_out.len() as f64;
    let scout = &c.get_training_status().agents["scout"];
    eprintln!(
        "held-out accuracy {accuracy:.3} on {} articles (majority class {majority:.3}); updates accepted {}, rolled back {}",
        held_out.len(),
        scout.updates_accepted,
        scout.updates_rolled_back
    );
    assert!(
        (600..950).contains(&held_out.len()),
        "about 20 % held out, got {}",
        held_out.len()
    );
    assert_eq!(scout.models["news_classification"].labels.len(), 9);
    assert!(
        accuracy >= 0.45,
        "held-out accuracy {accuracy:.3} (majority class {majority:.3})"
    );
    assert!(accuracy >= 3.0 * majority);
    // Every example is accounted for, and none of the held-out ones was trained.
    assert_eq!(scout.examples_held_out as usize, held_out.len());
    assert_eq!(
        scout.examples_trained + scout.examples_discarded,
        (articles.len() - held_out.len()) as u64
    );
}

fn label(s: &str) -> Target {
    Target::Label(s.to_string())
}
