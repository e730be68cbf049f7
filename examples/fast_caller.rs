//! The fast caller of issue 28, part 4: a labelled stream handed in as fast
//! as the calls return, with the library's defaults (the store on, an
//! embedded SQLite database in a fresh data folder), then one
//! `wait_for_idle`; `--runs N` times over the same stream. Prints, per run,
//! how much of the stream was trained, quarantined, held out, and the final
//! model's accuracy on the clean unseen part, then the spread across runs.
//!
//! The stream is `tests/common/noisy.rs`'s (`--data`, `--order`, `--noise`
//! as in `peer_noisy`).
//!
//! `cargo run --release --example fast_caller -- --data vader:rest --order shuffled --runs 3`

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)] // The helpers this example does not use.
#[path = "../tests/common/news.rs"]
mod news;
#[allow(dead_code)] // The runner this example does not use.
#[path = "../tests/common/noisy.rs"]
mod noisy;
#[allow(dead_code)]
#[path = "../tests/common/vader.rs"]
mod vader;

use std::time::Instant;

use onthefly::Config;

fn main() {
    let spec = noisy::Spec::new(
        &args::value::<String>("--data").unwrap_or_else(|| "vader:rest".into()),
        &args::value::<String>("--order").unwrap_or_else(|| "shuffled".into()),
        args::value("--noise").unwrap_or(0.0),
    );
    let runs: usize = args::value("--runs").unwrap_or(3);
    let items = noisy::stream(&spec);
    let defaults = Config::default();
    let mut accuracies = Vec::new();
    for run in 0..runs {
        let data_dir = std::env::temp_dir().join(format!("onthefly-fast-caller-{}-{run}", std::process::id()));
        let started = Instant::now();
        let (outcome, agent) = noisy::run_fast(
            &items,
            Config {
                data_dir: data_dir.clone(),
                text_model: onthefly::TextModelConfig {
                    linear_learning_rate: args::value("--linear-rate")
                        .unwrap_or(defaults.text_model.linear_learning_rate),
                    full_step_ngrams: args::value("--full-step").unwrap_or(defaults.text_model.full_step_ngrams),
                    ..defaults.text_model.clone()
                },
                ..Config::default()
            },
        );
        let _ = std::fs::remove_dir_all(&data_dir);
        println!(
            "run {run}: {} handed in, {} held out, {} trained, {} quarantined, {} evicted, {} taken back, \
             {} updates kept, {} rolled back; unseen accuracy {:.4} ({:.0} s)",
            agent.examples_received,
            agent.examples_held_out,
            agent.examples_trained,
            agent.examples_quarantined,
            agent.examples_evicted,
            agent.examples_taken_back,
            agent.updates_accepted,
            agent.updates_rolled_back,
            outcome.unseen_accuracy,
            started.elapsed().as_secs_f64()
        );
        accuracies.push(outcome.unseen_accuracy);
    }
    let lo = accuracies.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = accuracies.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "unseen accuracy over {runs} runs: {lo:.4} – {hi:.4} (spread {:.4})",
        hi - lo
    );
}
