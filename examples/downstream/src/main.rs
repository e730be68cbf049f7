//! A scout agent in its own crate: streams a few labelled articles into a
//! coordinator of its own, forces an update, waits for it and prints the prediction
//! and the version that made it (`PREDICTION <label> <version>`).

use std::time::Duration;

use onthefly::{Config, Coordinator, NewExample, StoreConfig, Target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::args().nth(1).ok_or("usage: downstream-agent DATA_DIR")?;
    let config = Config {
        data_dir: data_dir.into(),
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        ..Config::default()
    };
    let coordinator = Coordinator::new(config)?;
    let outlets = ["bbc", "cnn", "reuters"];
    for i in 0..30 {
        let outlet = outlets[i % 3];
        let text = format!("{outlet} report {i} on the markets and the weather");
        coordinator.add_training_example(NewExample::new("scout", "news", text, Target::Label(outlet.into())))?;
    }
    coordinator.force_update_agent("scout")?;
    if !coordinator.wait_for_idle(Duration::from_secs(300)) {
        return Err("the update did not finish".into());
    }
    let prediction = coordinator.predict("scout", "news", "reuters report on the markets")?;
    println!(
        "PREDICTION {} {}",
        prediction.output.to_json(),
        prediction.model_version
    );
    coordinator.shutdown();
    Ok(())
}
