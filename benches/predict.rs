//! How much faster per input is batch prediction than one call per input?
//! The default classifier, trained once on 500 news articles, predicting
//! 100 articles: `predict_batch` of the 100 (one lock, one forward pass)
//! against 100 calls of `predict_batch` with one input each (the cost of
//! `predict` without its feedback step), in the same run.
//!
//! `cargo bench --bench predict`

#[allow(dead_code)] // Only part of the news fixture is used here.
#[path = "../tests/common/news.rs"]
mod news;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use onthefly::{Config, Coordinator, NewExample, StoreConfig, Target};

fn predict(c: &mut Criterion) {
    let articles = news::load_articles();
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
    for a in &articles[..500] {
        coordinator
            .add_training_example(NewExample::new(
                "scout",
                "news",
                a.text.clone(),
                Target::Label(a.outlet.clone()),
            ))
            .unwrap();
    }
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
    coordinator.shutdown();
}

criterion_group!(benches, predict);
criterion_main!(benches);
