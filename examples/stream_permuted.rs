//! Permuted Fashion-MNIST through the coordinator's own update loop: a
//! caller's MLP (784-256-256-10, installed with `register_model`, the
//! library's adaptive optimiser with its state in the model) learns the
//! tasks one after the other from a stream of labelled images (updates of
//! 50, each judged on held-out images and kept or rolled back, replay and
//! EWC as configured). After each task every task's images are measured.
//! The base rate is chosen on the validation images (plain, no replay),
//! then the ablation (plain / replay / EWC / replay + EWC) is reported on the
//! test images.
//!
//! `cargo run --release --example stream_permuted -- [--tasks 5] [--train 5000] [--rates 0.01,0.03,0.1] [--lambdas 1] [--gamma 0.9] [--only-ewc] [--validation]`
//! The last line is JSON.

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // The experiment helpers this example does not use.
#[path = "../tests/common/permuted.rs"]
mod permuted;
#[path = "../tests/common/pixels.rs"]
mod pixels;

use pixels::{stream, Settings};

fn main() {
    let n_tasks = args::value("--tasks").unwrap_or(5);
    let train_n = args::value("--train").unwrap_or(5_000);
    let rates = args::numbers("--rates").unwrap_or_else(|| vec![0.01, 0.03, 0.1]);
    let lambdas = args::numbers("--lambdas").unwrap_or_else(|| vec![1.0]);
    let gamma = args::value("--gamma").unwrap_or(onthefly::ewc::EwcConfig::default().gamma);
    let only_ewc = args::flag("--only-ewc");
    // Measures the ablation on the validation images (to choose γ or λ).
    let on_test = !args::flag("--validation");
    let replay = onthefly::replay::ReplayConfig::default().capacity;
    let tasks = permuted::tasks(n_tasks, train_n, 2_000, 2_000);
    println!("{n_tasks} tasks, {train_n} training / 2000 validation / 2000 test images each, one pass");
    let data_dir =
        |name: &str| std::env::temp_dir().join(format!("onthefly-stream-permuted-{}-{name}", std::process::id()));
    let run = |name: &str, settings: Settings, test: bool| {
        let dir = data_dir(name);
        let outcome = stream(&tasks, settings, test, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "  {} {name:<22} final avg acc {:.4}  avg forgetting {:.4}  {:.0} s  (updates kept {}, rolled back {})",
            if test { "test      " } else { "validation" },
            outcome.final_avg_acc(),
            outcome.avg_forgetting(),
            outcome.seconds,
            outcome.accepted,
            outcome.rolled_back
        );
        outcome
    };
    let mut best = (f64::MIN, 0.0);
    for &learning_rate in &rates {
        let settings = Settings {
            learning_rate,
            lambda: 0.0,
            replay_capacity: 0,
            gamma,
        };
        let acc = run(&format!("plain rate {learning_rate}"), settings, false).final_avg_acc();
        if acc > best.0 {
            best = (acc, learning_rate);
        }
    }
    let learning_rate = best.1;
    println!("chose base rate {learning_rate} (best validation average accuracy, plain)");
    let mut summary = serde_json::Map::new();
    summary.insert("learning_rate".into(), learning_rate.into());
    let mut configs = match only_ewc {
        true => Vec::new(),
        false => vec![("plain".to_string(), 0.0, 0), ("replay".to_string(), 0.0, replay)],
    };
    for &lambda in &lambdas {
        configs.push((format!("ewc {lambda}"), lambda, 0));
        configs.push((format!("replay + ewc {lambda}"), lambda, replay));
    }
    for (name, lambda, replay_capacity) in configs {
        let settings = Settings {
            learning_rate,
            lambda,
            replay_capacity,
            gamma,
        };
        let outcome = run(&name, settings, on_test);
        for row in &outcome.matrix {
            println!(
                "      {}",
                row.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>().join("  ")
            );
        }
        summary.insert(
            name,
            serde_json::json!({
                "final_avg_acc": outcome.final_avg_acc(),
                "avg_forgetting": outcome.avg_forgetting(),
                "seconds": outcome.seconds,
                "updates_accepted": outcome.accepted,
                "updates_rolled_back": outcome.rolled_back,
            }),
        );
    }
    println!("{}", serde_json::Value::Object(summary));
}
