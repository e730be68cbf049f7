//! onthefly's side of the news-stream comparison in `bench/peers/run.sh`:
//! prequential accuracy (predict each article with the live model, then hand
//! in its outlet) over the news articles in date order, and articles per
//! second, with the coordinator's default text classifier (the one `make
//! demo` trains).
//!
//! onthefly learns in updates of `update_threshold` (50) examples on a
//! background thread, so what it has learned when an article arrives depends
//! on how fast the stream comes:
//!
//! - default: as fast as possible, the stream never waits for training
//!   (articles per second is the caller's rate; the updates lag behind);
//! - `--wait`: after each article, wait until no update is queued or running
//!   (`wait_for_idle`), so every update finishes before the next article is
//!   predicted (articles per second includes all the training).
//!
//! Everything else is the library's default configuration, except that the
//! store is off and no checkpoints are written (`--durable` keeps both, as
//! `make demo` does), and that predictions are not fed back automatically
//! (the stream hands in every answer itself). 20 % of the
//! articles (by a hash of their text) are held out to judge updates and never
//! trained on, unless `--held-out 0`.
//!
//! `--update-threshold N` updates after every N examples instead of the
//! default 50 (1: after every article, as Vowpal Wabbit learns).
//!
//! `--linear-rate R`, `--full-step N` and `--linear-minibatch M` set the classifier's
//! adaptive rate and examples per step (the defaults were chosen on the
//! first 1,000 articles: `--limit 1000`).
//!
//! `--replay-capacity N` (0: no replay) and `--ewc-lambda L` (0: off) are
//! the ablation's switches; `--keep-every-update` keeps every update (no
//! rollback), to measure what the judge's rollbacks were worth.
//!
//! `--export FILE` writes the stream (id, date order, text, outlet, link,
//! and the words onthefly hashes, `tokens`) as JSON lines for the Python
//! peers and stops. `--limit N` takes the first N articles. `--order
//! shuffled` takes them in a fixed-seed shuffle (seed 1) instead of by date,
//! where runs of one outlet do not decide the figures (for the export too).
//! `prequential_accuracy_from_1001` scores only the articles after the
//! first 1,000, where the defaults were chosen. The last line printed is
//! JSON.
//!
//! `cargo run --release --example peer_news -- [--wait] [--durable] [--hash-buckets N]`

#[path = "common/args.rs"]
mod args;
#[path = "../tests/common/news.rs"]
mod news;

use std::io::Write;
use std::time::{Duration, Instant};

use onthefly::{Config, Coordinator, StoreConfig};

const AGENT: &str = "scout";
const TASK: &str = "news_classification";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut articles = news::load_articles();
    if let Some(limit) = args::value::<usize>("--limit") {
        articles.truncate(limit);
    }
    let order: String = args::value("--order").unwrap_or_else(|| "date".into());
    match order.as_str() {
        "date" => {}
        "shuffled" => onthefly::features::SplitMix64::new(1).shuffle(&mut articles),
        other => return Err(format!("--order date|shuffled, not {other}").into()),
    }
    if let Some(path) = args::value::<String>("--export") {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for a in &articles {
            let tokens = onthefly::features::tokenize(&a.text);
            let line =
                serde_json::json!({ "id": a.id, "text": a.text, "outlet": a.outlet, "url": a.url, "tokens": tokens });
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        println!("{} articles written to {path}", articles.len());
        return Ok(());
    }
    let wait = args::flag("--wait");
    let durable = args::flag("--durable");

    let data_dir = std::env::temp_dir().join(format!("onthefly-peer-news-{}", std::process::id()));
    let defaults = Config::default();
    // `--keep-every-update`: the judge keeps everything (the original's rule
    // on a drop of more than 1), to see what its rollbacks were worth.
    let keep_all = args::flag("--keep-every-update");
    let config = Config {
        data_dir: data_dir.clone(),
        predict_feedback_threshold: 0.0,
        rollback_threshold: if keep_all { 1.0 } else { defaults.rollback_threshold },
        acceptance: onthefly::judge::AcceptanceConfig {
            test: match keep_all {
                true => onthefly::judge::AcceptanceTest::Threshold,
                false => defaults.acceptance.test,
            },
            ..defaults.acceptance.clone()
        },
        held_out_fraction: args::value("--held-out").unwrap_or(defaults.held_out_fraction),
        update_threshold: args::value("--update-threshold").unwrap_or(defaults.update_threshold),
        replay: args::replay(&defaults.replay),
        ewc: args::ewc(&defaults.ewc),
        text_model: onthefly::TextModelConfig {
            linear_learning_rate: args::value("--linear-rate").unwrap_or(defaults.text_model.linear_learning_rate),
            full_step_ngrams: args::value("--full-step").unwrap_or(defaults.text_model.full_step_ngrams),
            linear_minibatch_size: args::value("--linear-minibatch")
                .unwrap_or(defaults.text_model.linear_minibatch_size),
            hash_buckets: args::value("--hash-buckets").unwrap_or(defaults.text_model.hash_buckets),
            ..defaults.text_model.clone()
        },
        checkpoints_kept: if durable { defaults.checkpoints_kept } else { 0 },
        store: StoreConfig {
            enabled: durable,
            ..StoreConfig::default()
        },
        ..defaults
    };
    let coordinator = Coordinator::new(config)?;

    let started = Instant::now();
    let mut correct = 0usize;
    let mut correct_from_1001 = 0usize;
    let mut waited = Duration::ZERO;
    for (i, a) in articles.iter().enumerate() {
        // Before the first update there is no model: that counts as wrong.
        let right = usize::from(news::predict_then_hand_in(&coordinator, AGENT, TASK, a));
        correct += right;
        correct_from_1001 += right * usize::from(i >= 1000);
        if wait {
            let t = Instant::now();
            assert!(
                coordinator.wait_for_idle(Duration::from_secs(600)),
                "an update took over 10 minutes"
            );
            waited += t.elapsed();
        }
    }
    let stream_s = started.elapsed().as_secs_f64();
    // What the stream left unlearned (fewer than 50 examples, or the lagging
    // updates of the fast mode) is not part of the prequential figure.
    let caught_up = Instant::now();
    coordinator.wait_for_idle(Duration::from_secs(600));
    let catch_up_s = caught_up.elapsed().as_secs_f64();

    let history = coordinator.performance_history();
    let update_ms: u64 = history.iter().map(|r| r.duration_ms).sum();
    // Every judged update trained its batch once beside as many replayed
    // examples (replay ratio 1, once the memory holds that many), kept or not.
    let trained_in_updates: u64 = history.iter().map(|r| r.examples_trained as u64).sum();
    let replay_ratio =
        coordinator.config().replay.ratio * f64::from(u8::from(coordinator.config().replay.capacity > 0));
    let status = coordinator.get_training_status();
    let scout = &status.agents[AGENT];
    let n = articles.len();
    let report = serde_json::json!({
        "peer": "onthefly",
        "model": "default text classifier (hashed uni+bi-gram linear softmax, 2^18 buckets, adaptive sparse steps)",
        "mode": if wait { "wait_for_each_update" } else { "as_fast_as_possible" },
        "durable": durable,
        "articles": n,
        "order": order,
        "prequential_accuracy": correct as f64 / n as f64,
        "prequential_accuracy_from_1001": correct_from_1001 as f64 / n.saturating_sub(1000).max(1) as f64,
        "gradient_steps_per_article_at_most": trained_in_updates as f64 * (1.0 + replay_ratio) / n as f64,
        "stream_s": stream_s,
        "examples_per_s": n as f64 / stream_s,
        "waiting_for_updates_s": waited.as_secs_f64(),
        "catch_up_after_stream_s": catch_up_s,
        "updates_accepted": scout.updates_accepted,
        "mean_update_ms": update_ms as f64 / history.len().max(1) as f64,
        "updates_rolled_back": scout.updates_rolled_back,
        "examples_trained_during_stream_or_after": scout.examples_trained,
        "examples_held_out": scout.examples_held_out,
        "update_threshold": coordinator.config().update_threshold,
        "device": status.device,
    });
    coordinator.shutdown();
    let _ = std::fs::remove_dir_all(&data_dir);
    println!("{report}");
    Ok(())
}
