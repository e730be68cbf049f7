//! How much faster per input is batch prediction than one call per input,
//! and how much slower is prediction while an update trains?
//!
//! - `predict_100_articles`: the default classifier, trained once on 500 news
//!   articles, predicting 100 articles: `predict_batch` of the 100 (one lock,
//!   one forward pass) against 100 calls of `predict_batch` with one input
//!   each (the cost of `predict` without its feedback step), in the same run;
//! - `predict_during_update`: one input and a batch of 100, first with no
//!   update running, then while a background thread keeps the same agent's
//!   updates going back to back (200 articles each, `force_update_agent`,
//!   then `wait_for_idle`): the live model serves while the trainer trains
//!   its own copy, and both share the CPU;
//! - latency percentiles (p50, p99, max) of the same four, 2,000 single calls
//!   and 200 batches each, printed at the end and written to
//!   `target/predict.json` (with how many updates ran meanwhile).
//!
//! `cargo bench --bench predict`

#[allow(dead_code)] // Only part of the news fixture is used here.
#[path = "../tests/common/news.rs"]
mod news;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use onthefly::{Config, Coordinator, NewExample, StoreConfig, Target};

/// Articles in each update of the background trainer.
const UPDATE_SIZE: usize = 200;

/// The criterion groups; with `percentiles` (under `cargo bench`, not `cargo
/// test --benches`) also the latency percentiles, returned as JSON.
fn predict(c: &mut Criterion, articles: &[news::Article], percentiles: bool) -> serde_json::Value {
    let coordinator = Coordinator::new(Config {
        device: onthefly::DeviceChoice::Cpu,
        held_out_fraction: 0.0,
        update_threshold: 1000,
        checkpoints_kept: 0,
        data_dir: std::env::temp_dir().join(format!("onthefly-bench-predict-{}", std::process::id())),
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        ..Config::default()
    })
    .unwrap();
    add(&coordinator, &articles[..500]);
    coordinator.force_update_agent("scout").unwrap();
    assert!(coordinator.wait_for_idle(Duration::from_secs(600)));
    let inputs: Vec<&str> = articles[500..600].iter().map(|a| a.text.as_str()).collect();

    let mut group = c.benchmark_group("predict_100_articles");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("one_call_per_input", |b| {
        b.iter(|| {
            for input in &inputs {
                black_box(coordinator.predict_batch("scout", "news", &[input]).unwrap());
            }
        })
    });
    group.bench_function("one_batch", |b| {
        b.iter(|| black_box(coordinator.predict_batch("scout", "news", &inputs).unwrap()))
    });
    group.finish();

    let one = &inputs[..1];
    let mut group = c.benchmark_group("predict_during_update");
    group.bench_function("one_input_idle", |b| {
        b.iter(|| black_box(coordinator.predict_batch("scout", "news", one).unwrap()))
    });
    group.bench_function("batch_of_100_idle", |b| {
        b.iter(|| black_box(coordinator.predict_batch("scout", "news", &inputs).unwrap()))
    });
    let measure = || percentiles.then(|| latencies(&coordinator, &inputs));
    let idle = measure();
    let training = &articles[600..];
    let stop = AtomicBool::new(false);
    let (updating, (updates, busy)) = std::thread::scope(|s| {
        let trainer = std::thread::Builder::new()
            .name("bench-trainer".into())
            .spawn_scoped(s, || keep_updating(&coordinator, training, &stop))
            .unwrap();
        group.bench_function("one_input_updating", |b| {
            b.iter(|| black_box(coordinator.predict_batch("scout", "news", one).unwrap()))
        });
        group.bench_function("batch_of_100_updating", |b| {
            b.iter(|| black_box(coordinator.predict_batch("scout", "news", &inputs).unwrap()))
        });
        let updating = measure();
        stop.store(true, Ordering::Release);
        (updating, trainer.join().unwrap())
    });
    group.finish();
    let status = coordinator.get_training_status();
    coordinator.shutdown();
    serde_json::json!({
        "idle": idle,
        "updating": updating,
        "updates_while_measuring": updates,
        "fraction_of_time_updating": busy,
        "update_size": UPDATE_SIZE,
        "updates_failed": status.agents["scout"].updates_failed,
    })
}

fn add(coordinator: &Coordinator, articles: &[news::Article]) {
    for a in articles {
        coordinator
            .add_training_example(NewExample::new(
                "scout",
                "news",
                a.text.clone(),
                Target::Label(a.outlet.clone()),
            ))
            .unwrap();
    }
}

/// Runs the scout's updates back to back until `stop`: how many ran, and
/// the fraction of the time one was queued or running.
fn keep_updating(coordinator: &Coordinator, articles: &[news::Article], stop: &AtomicBool) -> (usize, f64) {
    let (mut updates, mut busy) = (0, Duration::ZERO);
    let started = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let start = updates * UPDATE_SIZE % (articles.len() - UPDATE_SIZE);
        add(coordinator, &articles[start..start + UPDATE_SIZE]);
        let t = Instant::now();
        coordinator.force_update_agent("scout").unwrap();
        assert!(coordinator.wait_for_idle(Duration::from_secs(600)));
        busy += t.elapsed();
        updates += 1;
    }
    (updates, busy.as_secs_f64() / started.elapsed().as_secs_f64())
}

/// p50, p99 and max (µs) of 2,000 one-input calls and 200 batches of 100.
fn latencies(coordinator: &Coordinator, inputs: &[&str]) -> serde_json::Value {
    let measure = |batch: &[&str], calls: usize| {
        let mut times: Vec<f64> = (0..calls)
            .map(|_| {
                let t = Instant::now();
                black_box(coordinator.predict_batch("scout", "news", batch).unwrap());
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        serde_json::json!({ "calls": calls, "p50_us": at(0.5), "p99_us": at(0.99), "max_us": at(1.0) })
    };
    serde_json::json!({ "one_input": measure(&inputs[..1], 2_000), "batch_of_100": measure(inputs, 200) })
}

fn main() {
    let articles = news::load_articles();
    let mut c = Criterion::default().configure_from_args();
    // Under `cargo test --benches` the criterion part runs once; the report is for `cargo bench`.
    let full = std::env::args().any(|a| a == "--bench");
    let report = predict(&mut c, &articles, full);
    c.final_summary();
    if full {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/predict.json");
        std::fs::write(&path, report.to_string()).unwrap();
        println!("written to {}", path.display());
    }
}
