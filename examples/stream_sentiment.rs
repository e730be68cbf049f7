//! The coordinator itself, with and without EWC, on the four VADER sentiment
//! domains streamed one after the other (tweets → movie reviews → Amazon →
//! NYT editorials): every update is the library's own (threshold 50, held-out
//! rollback, online EWC per accepted update). After each domain the live model
//! is measured on every domain's test split. This is how the default λ of the
//! coordinator's per-update EWC is chosen.
//!
//! `cargo run --release --example stream_sentiment -- --lambdas 0,1,10,100 [--lr 16] [--limit N] [--joint] [--split validation]`
//! (`--split validation`: scored on each domain's validation split, where
//! settings are chosen; the test split, the default, is where they are
//! reported)
//! (`--joint`: first the reference, all four domains' training examples in
//! one shuffled stream, measured once at the end)
//! (`--lr`: the classifier's adaptive base rate, `linear_learning_rate`)
//! (λ 0 means EWC off; `--replay-capacity 0` turns replay off). The last
//! line is JSON.

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // The experiment helpers this example does not use.
#[path = "../tests/common/continual.rs"]
mod continual;
#[path = "../tests/common/vader.rs"]
mod vader;

use std::time::Duration;

use onthefly::ewc::EwcConfig;
use onthefly::{Config, Coordinator, NewExample, TextModelConfig};

fn main() {
    let limit = args::value("--limit");
    let lambdas = args::numbers("--lambdas").unwrap_or_else(|| vec![0.0, 1.0, 10.0, 100.0]);
    let learning_rate = args::value("--lr").unwrap_or(TextModelConfig::default().linear_learning_rate);
    let replay_capacity =
        args::value("--replay-capacity").unwrap_or(onthefly::replay::ReplayConfig::default().capacity);
    let domains = continual::vader_domains(limit);
    let mut summary = serde_json::Map::new();
    let coordinator = |lambda: f64, data_dir: &std::path::Path| {
        Coordinator::new(Config {
            device: onthefly::DeviceChoice::Cpu,
            check_interval_ms: 3_600_000,
            checkpoints_kept: 0,
            data_dir: data_dir.to_path_buf(),
            text_model: TextModelConfig {
                hash_buckets: 1 << 16,
                linear_learning_rate: learning_rate,
                ..TextModelConfig::default()
            },
            ewc: EwcConfig {
                enabled: lambda > 0.0,
                lambda,
                ..EwcConfig::default()
            },
            replay: onthefly::replay::ReplayConfig {
                capacity: replay_capacity,
                ..Default::default()
            },
            ..Config::default()
        })
        .unwrap()
    };
    let stream = |c: &Coordinator, examples: &[&onthefly::TrainingExample]| {
        for e in examples {
            c.add_training_example(NewExample::new(
                "critic",
                "sentiment",
                e.input_text.clone(),
                e.expected_output.clone(),
            ))
            .unwrap();
            c.wait_for_idle(Duration::from_secs(300));
        }
        c.force_update_agent("critic").unwrap();
        c.wait_for_idle(Duration::from_secs(300));
    };
    // Settings are chosen on the validation split (`--split validation`)
    // and reported on the test split, the default.
    let split: fn(&continual::Domain) -> &[onthefly::TrainingExample] =
        match args::value::<String>("--split").as_deref() {
            Some("validation") => continual::validation,
            None | Some("test") => continual::test,
            Some(other) => panic!("--split validation|test, not {other}"),
        };
    let accuracies = |c: &Coordinator| continual::coordinator_accuracies(c, "critic", "sentiment", &domains, split);
    if args::flag("--joint") {
        // The reference: every domain's training examples in one shuffled
        // stream through the same loop (no domain comes after another).
        let data_dir = std::env::temp_dir().join(format!("onthefly-stream-sentiment-{}-joint", std::process::id()));
        let c = coordinator(0.0, &data_dir);
        let mut all: Vec<&onthefly::TrainingExample> = domains.iter().flat_map(|d| d.train.iter()).collect();
        onthefly::features::SplitMix64::new(7).shuffle(&mut all);
        stream(&c, &all);
        let row = accuracies(&c);
        let mean = row.iter().sum::<f64>() / row.len() as f64;
        println!(
            "joint (shuffled): final avg acc {mean:.4}  ({})",
            row.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>().join("  ")
        );
        summary.insert("joint".into(), serde_json::json!({ "final_avg_acc": mean }));
        c.shutdown();
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    for &lambda in &lambdas {
        let data_dir = std::env::temp_dir().join(format!("onthefly-stream-sentiment-{}-{lambda}", std::process::id()));
        let c = coordinator(lambda, &data_dir);
        let mut matrix: Vec<Vec<f64>> = Vec::new();
        for domain in &domains {
            let examples: Vec<&onthefly::TrainingExample> = domain.train.iter().collect();
            stream(&c, &examples);
            matrix.push(accuracies(&c));
        }
        let run = continual::Run { matrix };
        let status = &c.get_training_status().agents["critic"];
        println!(
            "λ {lambda:>6}: final avg acc {:.4}  avg forgetting {:.4}  (updates kept {}, rolled back {})",
            run.final_avg_acc(),
            run.avg_forgetting(),
            status.updates_accepted,
            status.updates_rolled_back
        );
        for row in &run.matrix {
            println!(
                "    {}",
                row.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>().join("  ")
            );
        }
        summary.insert(
            format!("{lambda}"),
            serde_json::json!({ "final_avg_acc": run.final_avg_acc(), "avg_forgetting": run.avg_forgetting() }),
        );
        c.shutdown();
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    println!("{}", serde_json::Value::Object(summary));
}
