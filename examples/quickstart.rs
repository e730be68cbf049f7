//! The Rust example of docs/rust.md: add an example and a correction, predict, print the status.

use onthefly::{Config, Coordinator, NewExample, Target, UserCorrection};
use std::time::Duration;

fn main() -> onthefly::Result<()> {
    // Or Config::from_env() for TRAINING_*, POSTGRES_*/DATABASE_URL, *_MODEL_PATH.
    let scout = Coordinator::new(Config {
        update_threshold: 50,
        ..Config::default()
    })?;

    let text = "Parliament passed the budget after a long night of debate.";
    let receipt = scout.add_training_example(
        NewExample::new("scout", "news_classification", text, Target::Label("politics".into()))
            .with_uncertainty(0.8)
            .with_source("https://example.org/budget"),
    )?; // returns at once; training runs in the background

    // A person's correction (priority 2) triggers an immediate update.
    scout.add_user_correction(UserCorrection::new(
        "scout",
        "news_classification",
        "The striker scored twice.",
        Target::Label("politics".into()),
        Target::Label("sport".into()),
    ))?;
    scout.wait_for_idle(Duration::from_secs(30));

    let p = scout.predict("scout", "news_classification", "The goalkeeper saved a penalty.")?;
    println!(
        "{:?} ({:.2}, model v{}), example {:?}",
        p.output, p.confidence, p.model_version, receipt.id
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&scout.get_training_status()).unwrap()
    );
    Ok(())
}
