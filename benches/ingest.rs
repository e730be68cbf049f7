//! How fast can agents hand examples in, and what does a buffered example
//! cost in memory?
//!
//! - criterion: `add_training_example` throughput from 1, 2 and 8 threads,
//!   with no training (a task no model learns) and with training running (a
//!   label task whose buffer keeps reaching the update threshold);
//! - latency percentiles (p50, p99, p99.9) of single calls in the same
//!   settings, measured over 100,000 calls per setting;
//! - resident memory per buffered example (measured from `/proc/self/statm`
//!   before and after filling buffers) and of 8 agents with full buffers.
//!
//! `cargo bench --bench ingest` (percentiles and memory are printed at the
//! end and written to `target/ingest.json`). Persistence is off here: this
//! measures the library's own ingest path (validation, routing, buffers,
//! training beside it); `benches/persist.rs` measures the store. (With the
//! store on, criterion's millions of calls write gigabytes of articles.)

#[allow(dead_code)] // Only part of the news fixture is used here.
#[path = "../tests/common/news.rs"]
mod news;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use onthefly::{Config, Coordinator, NewExample, Target};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

fn no_store() -> onthefly::StoreConfig {
    onthefly::StoreConfig {
        enabled: false,
        ..onthefly::StoreConfig::default()
    }
}

fn coordinator(max_buffer_size: usize) -> Coordinator {
    let dir = std::env::temp_dir().join(format!(
        "onthefly-bench-ingest-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    Coordinator::new(Config {
        device: onthefly::DeviceChoice::Cpu,
        data_dir: dir,
        checkpoints_kept: 0,
        max_buffer_size,
        update_threshold: 50.min(max_buffer_size),
        store: no_store(),
        ..Config::default()
    })
    .unwrap()
}

/// The example the `n`th call hands in: a summary (kept, never trained) or
/// a labelled article (buffered, trained).
fn example(articles: &[news::Article], training: bool, n: usize) -> NewExample {
    let a = &articles[n % articles.len()];
    let target = if training {
        Target::Label(a.outlet.clone())
    } else {
        Target::Json(serde_json::json!({ "summary": a.outlet }))
    };
    let task = if training { "news" } else { "summary" };
    NewExample::new("scout", task, a.text.clone(), target)
}

fn throughput(c: &mut Criterion, articles: &Arc<Vec<news::Article>>) {
    for training in [false, true] {
        let mut group = c.benchmark_group(if training {
            "ingest_while_training"
        } else {
            "ingest_idle"
        });
        group.throughput(Throughput::Elements(1));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(3));
        for threads in [1usize, 2, 8] {
            let target = Arc::new(coordinator(1000));
            group.bench_function(format!("{threads}_threads"), |b| {
                b.iter_custom(|iters| {
                    let per_thread = (iters as usize).div_ceil(threads);
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for t in 0..threads {
                            let (target, articles) = (Arc::clone(&target), Arc::clone(articles));
                            s.spawn(move || {
                                for i in 0..per_thread {
                                    target
                                        .add_training_example(example(&articles, training, t * per_thread + i))
                                        .unwrap();
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            });
            target.shutdown();
        }
        group.finish();
    }
}

fn percentiles(mut latencies: Vec<Duration>) -> serde_json::Value {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e6;
    serde_json::json!({ "p50_us": at(0.5), "p99_us": at(0.99), "p999_us": at(0.999), "calls": latencies.len() })
}

fn latency(articles: &Arc<Vec<news::Article>>) -> serde_json::Value {
    const CALLS: usize = 100_000;
    let mut out = serde_json::Map::new();
    for training in [false, true] {
        for threads in [1usize, 2, 8] {
            let target = Arc::new(coordinator(1000));
            let per_thread = CALLS / threads;
            let all: Vec<Duration> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (target, articles) = (Arc::clone(&target), Arc::clone(articles));
                        s.spawn(move || {
                            (0..per_thread)
                                .map(|i| {
                                    let e = example(&articles, training, t * per_thread + i);
                                    let start = Instant::now();
                                    target.add_training_example(e).unwrap();
                                    start.elapsed()
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
            });
            target.shutdown();
            let name = format!("{}_{threads}_threads", if training { "training" } else { "idle" });
            out.insert(name, percentiles(all));
        }
    }
    serde_json::Value::Object(out)
}

/// Resident memory of the process, in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn memory(articles: &[news::Article]) -> serde_json::Value {
    // Buffers that never train (threshold at the capacity, no update forced),
    // so what grows is what the buffers hold.
    let c = Coordinator::new(Config {
        device: onthefly::DeviceChoice::Cpu,
        data_dir: std::env::temp_dir().join(format!("onthefly-bench-memory-{}", std::process::id())),
        max_buffer_size: 1000,
        update_threshold: 1000,
        held_out_fraction: 0.0,
        check_interval_ms: 3_600_000,
        store: no_store(),
        ..Config::default()
    })
    .unwrap();
    let before = resident();
    let agents = 8;
    for agent in 0..agents {
        for i in 0..999 {
            let a = &articles[(agent * 999 + i) % articles.len()];
            c.add_training_example(NewExample::new(
                format!("agent{agent}"),
                "news",
                a.text.clone(),
                Target::Label(a.outlet.clone()),
            ))
            .unwrap();
        }
    }
    let after = resident();
    let buffered: usize = c.get_training_status().buffer_sizes.values().sum();
    let mean_text: f64 = articles.iter().map(|a| a.text.len() as f64).sum::<f64>() / articles.len() as f64;
    c.shutdown();
    serde_json::json!({
        "agents": agents,
        "buffered_examples": buffered,
        "resident_growth_bytes": after.saturating_sub(before),
        "bytes_per_buffered_example": after.saturating_sub(before) as f64 / buffered.max(1) as f64,
        "mean_input_text_bytes": mean_text,
        "resident_after_bytes": after,
    })
}

fn main() {
    let articles = Arc::new(news::load_articles());
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c, &articles);
    c.final_summary();
    // Under `cargo test --benches` only the criterion part runs, once.
    if std::env::args().any(|a| a == "--bench") {
        let report = serde_json::json!({ "latency": latency(&articles), "memory": memory(&articles) });
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ingest.json");
        std::fs::write(&path, report.to_string()).unwrap();
        println!("written to {}", path.display());
    }
}
