//! What does EWC cost per update? One update of 50 news articles on the
//! default classifier (2¹⁸ × 32 hashed n-gram embedding, 9 outlets): the copy
//! an update starts from, one epoch without EWC (the baseline), one epoch with
//! the EWC penalty, and the Fisher of the 50 examples. Ratios against the
//! baseline are what the README quotes.
//!
//! `cargo bench --bench update`

#[path = "../tests/common/news.rs"]
mod news;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use onthefly::ewc::{diagonal_fisher, EwcState, FisherKind};
use onthefly::models::{AgentModel, TextClassifier};
use onthefly::{train_one_epoch, Target, TextModelConfig, TrainingExample};

fn examples(articles: &[news::Article], offset: usize) -> Vec<TrainingExample> {
    articles
        .iter()
        .enumerate()
        .map(|(i, a)| TrainingExample {
            source_url: a.url.clone(),
            ..TrainingExample::new(
                (offset + i) as u64,
                "scout",
                "news",
                a.text.clone(),
                Target::Label(a.outlet.clone()),
            )
        })
        .collect()
}

fn update_cost(c: &mut Criterion) {
    let articles = news::load_articles();
    let first = examples(&articles[..500], 0);
    let batch = examples(&articles[500..550], 500);
    let mut model = TextClassifier::new(TextModelConfig::default(), tch::Device::Cpu, 1).unwrap();
    train_one_epoch(&mut model, &first, 1, &[]).unwrap();
    let mut ewc = EwcState::new();
    let fisher = diagonal_fisher(&model, &first, FisherKind::Empirical, 64, 1).unwrap();
    ewc.consolidate(model.var_store(), fisher, 0.9).unwrap();

    let mut group = c.benchmark_group("update_of_50");
    group.sample_size(10);
    group.bench_function("copy_model", |b| b.iter(|| black_box(model.try_copy().unwrap())));
    group.bench_function("epoch_without_ewc", |b| {
        b.iter_batched(
            || model.try_copy().unwrap(),
            |mut m| train_one_epoch(&mut m, &batch, 2, &[]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("epoch_with_ewc", |b| {
        b.iter_batched(
            || model.try_copy().unwrap(),
            |mut m| train_one_epoch(&mut m, &batch, 2, &[(&ewc, 100.0)]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("fisher_of_50", |b| {
        b.iter(|| black_box(diagonal_fisher(&model, &batch, FisherKind::Empirical, 50, 3).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, update_cost);
criterion_main!(benches);
