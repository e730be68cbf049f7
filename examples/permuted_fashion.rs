//! Permuted Fashion-MNIST, the classic EWC benchmark: an MLP learns several
//! tasks in sequence (task 1 the original pixel order, then fixed random
//! permutations), with plain fine-tuning, EWC, online EWC and joint training.
//! λ is chosen on a validation split of the training images, then everything
//! is reported on the test images.
//!
//! `cargo run --release --example permuted_fashion -- --json`
//! Options: `--tasks N` (default 5), `--train N` images per task (default
//! 10000), `--epochs N` (default 2), `--grid 1,10,100`. The last line is JSON.

#[path = "common/args.rs"]
mod args;
#[path = "../tests/common/permuted.rs"]
mod permuted;

use permuted::{avg_forgetting, final_avg_acc, run, Settings};

fn main() {
    let json = args::flag("--json");
    let n_tasks = args::value("--tasks").unwrap_or(5);
    let train_n = args::value("--train").unwrap_or(10_000);
    let epochs = args::value("--epochs").unwrap_or(2);
    let grid = args::numbers("--grid").unwrap_or_else(|| vec![1.0, 10.0, 100.0, 1e3, 1e4]);

    let tasks = permuted::tasks(n_tasks, train_n, 2_000, 10_000);
    println!("{n_tasks} tasks, {train_n} training / 2000 validation / 10000 test images each, {epochs} epoch(s)");
    let base = Settings {
        epochs,
        lambda: 0.0,
        gamma: 0.9,
        learning_rate: 1e-3,
        batch: 128,
        fisher_samples: 500,
    };
    let mut summary = serde_json::Map::new();
    for method in ["finetune", "ewc", "online_ewc", "joint"] {
        let mut s = base;
        if method == "ewc" || method == "online_ewc" {
            let mut best: Option<(f64, f64, f64)> = None;
            for &lambda in &grid {
                let m = run(method, &tasks, &Settings { lambda, ..base }, false);
                let (acc, forgetting) = (final_avg_acc(&m), avg_forgetting(&m));
                println!("  {method:<10} λ {lambda:>7}: validation final avg acc {acc:.4}, forgetting {forgetting:.4}");
                if best.is_none_or(|(_, a, _)| acc > a) {
                    best = Some((lambda, acc, forgetting));
                }
            }
            s.lambda = best.unwrap().0;
            println!(
                "  {method:<10} chose λ = {} (best validation average accuracy)",
                s.lambda
            );
        }
        let m = run(method, &tasks, &s, true);
        println!("{method}: test accuracy per task after each stage");
        for (stage, row) in m.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|a| format!("{a:.3}")).collect();
            let after = if method == "joint" {
                "all".to_string()
            } else {
                format!("task {}", stage + 1)
            };
            println!("  after {after:<7} {}", cells.join("  "));
        }
        println!(
            "  final avg acc {:.4}   avg forgetting {:.4}",
            final_avg_acc(&m),
            avg_forgetting(&m)
        );
        let mut entry = serde_json::json!({ "final_avg_acc": final_avg_acc(&m), "avg_forgetting": avg_forgetting(&m) });
        if method == "ewc" || method == "online_ewc" {
            entry["lambda"] = serde_json::json!(s.lambda);
        }
        if method == "online_ewc" {
            entry["gamma"] = serde_json::json!(s.gamma);
        }
        summary.insert(method.to_string(), entry);
    }
    if json {
        println!("{}", serde_json::Value::Object(summary));
    }
}
