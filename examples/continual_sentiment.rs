//! Domain-incremental sentiment: the four VADER domains in sequence (tweets →
//! movie reviews → Amazon reviews → NYT editorials), class = sign of the human
//! rating, ratings within ±0.5 left out. Compares plain fine-tuning, EWC, online
//! EWC and joint training with the built-in classifier; λ is chosen on a
//! validation split, then everything is reported on the test split.
//!
//! `cargo run --release --example continual_sentiment -- --json`
//! Options: `--epochs N` (default 2), `--limit N` snippets per domain,
//! `--grid 1,10,100` λ values to search. The last line is the JSON summary.

#[path = "common/args.rs"]
mod args;
#[path = "../tests/common/continual.rs"]
mod continual;
#[path = "../tests/common/vader.rs"]
mod vader;

use continual::{choose_lambda, run, test, Settings};

fn main() {
    let json = args::flag("--json");
    let epochs = args::value("--epochs").unwrap_or(2);
    let limit = args::value("--limit");
    let grid = args::numbers("--grid").unwrap_or_else(|| vec![1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]);

    let domains = continual::vader_domains(limit);
    for d in &domains {
        println!(
            "{:<15} train {:>5}  validation {:>4}  test {:>5}",
            d.name,
            d.train.len(),
            d.validation.len(),
            d.test.len()
        );
    }
    let settings = Settings {
        epochs,
        ..Settings::sentiment()
    };

    let mut summary = serde_json::Map::new();
    for method in ["finetune", "ewc", "online_ewc", "joint"] {
        let mut s = settings.clone();
        if method == "ewc" || method == "online_ewc" {
            let (lambda, runs) = choose_lambda(method, &domains, &settings, &grid);
            for (l, r) in &runs {
                println!(
                    "  {method:<10} λ {l:>8}: validation final avg acc {:.4}, forgetting {:.4}",
                    r.final_avg_acc(),
                    r.avg_forgetting()
                );
            }
            println!("  {method:<10} chose λ = {lambda} (best validation average accuracy)");
            s.lambda = lambda;
        }
        let result = run(method, &domains, &s, test);
        println!("{method}: test accuracy per domain after each stage");
        for (stage, row) in result.matrix.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|a| format!("{a:.3}")).collect();
            let after = if method == "joint" {
                "all".to_string()
            } else {
                domains[stage].name.clone()
            };
            println!("  after {after:<15} {}", cells.join("  "));
        }
        println!(
            "  final avg acc {:.4}   avg forgetting {:.4}",
            result.final_avg_acc(),
            result.avg_forgetting()
        );
        let mut entry = serde_json::json!({
            "final_avg_acc": result.final_avg_acc(),
            "avg_forgetting": result.avg_forgetting(),
        });
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
