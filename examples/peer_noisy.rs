//! onthefly's side of the wrong-label comparison in `bench/peers/run.sh`
//! (issue 28, part 3): a labelled stream in which a share of the labels is
//! wrong, learned in updates of 50 that are waited for, scored against the
//! true labels.
//!
//! The stream (`tests/common/noisy.rs`): `--data news` (the 3,823 articles,
//! outlet, 9 classes), `--data vader` (the four VADER domains' rated
//! snippets, 3 classes), `vader:DOMAIN` or `vader:rest` (all but the
//! tweets), in `--order date` (the file's order; the news articles by date)
//! or `--order shuffled` (a fixed-seed shuffle). The last `--test-fraction`
//! (0.2) of that order is set aside, with its true labels, as clean unseen
//! data; of the rest, `--noise` (0.0..1.0) of the labels are replaced by
//! another class chosen at random (seed `--seed`, 1). The same stream, order
//! and wrong labels are what `--export FILE` writes for the Python peers
//! (`bench/peers/news_stream.py`): one JSON line per text with `text`,
//! `outlet` (the true class), `label` (the one handed in) and `test`.
//!
//! Measured: prequential accuracy against the true labels (each text of the
//! stream predicted by the live model, then handed in with its possibly
//! wrong label, then every update waited for), and accuracy of the final
//! model on the clean unseen part. The library's default configuration
//! otherwise (store off, no checkpoints, as `peer_news`).
//!
//! `--ewc-lambda L` turns EWC on at strength `L` (the speed of EWC on short
//! texts, issue 28 part 5), `--replay-capacity N` sets the replay memory,
//! `--update-threshold N` the size of an update (50; 1: every text learned
//! at once, each update still judged).
//!
//! `--skip N` and `--limit N` take a part of the file's order before it is
//! shuffled (the news articles 1–1,000, `--limit 1000`, are where settings
//! are chosen; 1,001–3,823, `--skip 1000`, are reported).
//!
//! `cargo run --release --example peer_noisy -- --data news --order date --noise 0.2 [--export FILE]`

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

use std::io::Write;
use std::time::Instant;

use onthefly::Config;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut spec = noisy::Spec::new(
        &args::value::<String>("--data").unwrap_or_else(|| "news".into()),
        &args::value::<String>("--order").unwrap_or_else(|| "date".into()),
        args::value("--noise").unwrap_or(0.0),
    );
    spec.test_fraction = args::value("--test-fraction").unwrap_or(spec.test_fraction);
    spec.seed = args::value("--seed").unwrap_or(spec.seed);
    spec.skip = args::value("--skip").unwrap_or(0);
    spec.limit = args::value("--limit").unwrap_or(usize::MAX);
    let items = noisy::stream(&spec);
    if let Some(path) = args::value::<String>("--export") {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for item in &items {
            let line = serde_json::json!({
                "text": item.text, "outlet": item.truth, "label": item.given, "test": item.test,
            });
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        eprintln!("{} texts written to {path}", items.len());
        return Ok(());
    }

    let data_dir = std::env::temp_dir().join(format!("onthefly-peer-noisy-{}", std::process::id()));
    let defaults = noisy::defaults_without_store(data_dir.clone());
    let config = Config {
        held_out_fraction: args::value("--held-out").unwrap_or(defaults.held_out_fraction),
        update_threshold: args::value("--update-threshold").unwrap_or(defaults.update_threshold),
        replay: args::replay(&defaults.replay),
        ewc: args::ewc(&defaults.ewc),
        text_model: onthefly::TextModelConfig {
            linear_learning_rate: args::value("--linear-rate").unwrap_or(defaults.text_model.linear_learning_rate),
            full_step_ngrams: args::value("--full-step").unwrap_or(defaults.text_model.full_step_ngrams),
            ..defaults.text_model.clone()
        },
        ..defaults
    };
    let started = Instant::now();
    let outcome = noisy::run(&items, config);
    let stream_s = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut report = serde_json::to_value(&outcome)?;
    report["peer"] = "onthefly".into();
    report["data"] = spec.data.clone().into();
    report["order"] = spec.order.clone().into();
    report["noise"] = spec.noise.into();
    report["seed"] = spec.seed.into();
    report["skip"] = spec.skip.into();
    report["stream_s"] = stream_s.into();
    println!("{report}");
    Ok(())
}
