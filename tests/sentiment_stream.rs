//! Guards the four-domain sentiment stream's figures (docs/measurements.md,
//! "Replay and EWC": `cargo run --release --example stream_sentiment --
//! --lambdas 0`, the library's default replay): the VADER domains (tweets →
//! movies → Amazon → NYT) streamed one after the other through a
//! coordinator, each example waited for; after each domain the live model is
//! scored on every domain's test split. Waiting makes the run deterministic,
//! so the margins are what a real change would move: final average accuracy
//! 0.01 below 0.755, average forgetting 0.01 above -0.010 (negative: the
//! earlier domains gained from the later ones).

mod common;

use std::time::Duration;

use common::continual;
use onthefly::{Config, Coordinator, NewExample, TextModelConfig, TrainingExample};

const MEASURED_ACCURACY: f64 = 0.755;
const MEASURED_FORGETTING: f64 = -0.010;
const MARGIN: f64 = 0.01;

#[test]
fn the_sentiment_domains_stream_keeps_its_accuracy_and_forgetting() {
    let domains = continual::vader_domains(None);
    let c = Coordinator::new(Config {
        device: onthefly::DeviceChoice::Cpu,
        check_interval_ms: 3_600_000,
        checkpoints_kept: 0,
        data_dir: common::fresh_data_dir(),
        text_model: TextModelConfig {
            hash_buckets: 1 << 16,
            ..TextModelConfig::default()
        },
        ..Config::default()
    })
    .unwrap();
    let mut matrix = Vec::new();
    for domain in &domains {
        let examples: Vec<&TrainingExample> = domain.train.iter().collect();
        for e in examples {
            c.add_training_example(NewExample::new(
                "critic",
                "sentiment",
                e.input_text.clone(),
                e.expected_output.clone(),
            ))
            .unwrap();
            assert!(c.wait_for_idle(Duration::from_secs(300)));
        }
        c.force_update_agent("critic").unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(300)));
        matrix.push(continual::coordinator_accuracies(
            &c,
            "critic",
            "sentiment",
            &domains,
            continual::test,
        ));
    }
    let run = continual::Run { matrix };
    let (accuracy, forgetting) = (run.final_avg_acc(), run.avg_forgetting());
    println!("final average accuracy {accuracy:.4}, average forgetting {forgetting:.4}");
    assert!(
        accuracy >= MEASURED_ACCURACY - MARGIN,
        "{accuracy:.4}, docs/measurements.md says {MEASURED_ACCURACY}"
    );
    assert!(
        forgetting <= MEASURED_FORGETTING + MARGIN,
        "{forgetting:.4}, docs/measurements.md says {MEASURED_FORGETTING}"
    );
    c.shutdown();
}
