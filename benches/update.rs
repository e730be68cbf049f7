//! What does one update of 50 news articles cost? The default classifier's
//! update (the adaptive sparse pass over the 50 articles and 50 replayed
//! ones, the live model's and the candidate's evaluation on the 100-article
//! window, and the copy of the rows it changed between the trainer's copy
//! and the live model), beside the update the library made before: a fresh
//! Adam epoch over a 2¹⁸ × 32 hashed embedding bag and a linear layer
//! (8.4 M weights), rebuilt here as it was, with the full model copy it
//! started from. Ratios against that dense epoch are what docs/measurements.md quotes.
//! The EWC variants: the adaptive pass with the proximal EWC term, and the
//! Fisher of the 50.
//!
//! And the whole update as a user gets it: 50 news articles handed to a
//! coordinator (default configuration, store and checkpoints off, as in
//! `peer_news`), one update forced and waited for: replay, the pass, the
//! judging of live model and candidate, the swap (the copy of the changed
//! rows into the trainer's copy follows on the worker once the update is
//! over for the caller, while the next 50 are handed in; the next update
//! waits for it if it is not done). The articles are not predicted
//! first, so the update tokenises them itself (a stream that predicts each
//! article before handing it in has them cached). The same with EWC on
//! (λ 1): the pass with the proximal term, the Fisher of the batch and the
//! consolidation after each accepted update.
//!
//! Updates of one article: the whole update through the coordinator, and
//! the judging of such an update's candidate on the 100-article window,
//! afresh or derived from the live model's scores and the rows the pass
//! changed (what updates do). Here the window's rows stay in the cache
//! from one iteration to the next; in a stream they are read cold.
//!
//! `cargo bench --bench update`

#[path = "../tests/common/news.rs"]
#[allow(dead_code)]
mod news;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use onthefly::eval::{measure, measure_after_pass, measure_reusing, Judged};
use onthefly::ewc::{EwcConfig, EwcState, FisherKind};
use onthefly::features::ngram_ids;
use onthefly::fisher::diagonal_fisher;
use onthefly::models::{AgentModel, TextClassifier};
use onthefly::{
    train_one_epoch, Config, Coordinator, NewExample, StoreConfig, Target, TextModelConfig, TrainingExample,
};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn examples(articles: &[news::Article], offset: usize) -> Vec<TrainingExample> {
    articles
        .iter()
        .enumerate()
        .map(|(i, a)| {
            TrainingExample::new(
                (offset + i) as u64,
                "scout",
                "news",
                a.text.clone(),
                Target::Label(a.outlet.clone()),
            )
        })
        .collect()
}

/// The classifier this library trained before the hashed linear one: a
/// fastText-style 2¹⁸ × 32 mean embedding bag and a linear layer, trained by
/// one epoch of a fresh Adam (rate 0.1, minibatches of 16) per update.
struct DenseBag {
    vs: nn::VarStore,
    embedding: Tensor,
    out: Tensor,
}

impl DenseBag {
    fn new() -> DenseBag {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let embedding = root.var(
            "embedding",
            &[1 << 18, 32],
            nn::Init::Uniform {
                lo: -1.0 / 32.0,
                up: 1.0 / 32.0,
            },
        );
        let out = root.zeros("out", &[9, 32]);
        DenseBag { vs, embedding, out }
    }

    fn copy(&self) -> DenseBag {
        let mut copy = DenseBag::new();
        copy.vs.copy(&self.vs).unwrap();
        copy
    }

    fn epoch(&mut self, batch: &[TrainingExample], labels: &[&str]) {
        let mut adam = nn::Adam::default().build(&self.vs, 0.1).unwrap();
        for chunk in batch.chunks(16) {
            let (mut ids, mut offsets) = (Vec::new(), Vec::new());
            for e in chunk {
                offsets.push(ids.len() as i64);
                ids.extend(ngram_ids(&e.input_text, 1 << 18, 1000));
            }
            let targets: Vec<i64> = chunk
                .iter()
                .map(|e| match &e.expected_output {
                    Target::Label(l) => labels.iter().position(|x| x == l).unwrap() as i64,
                    _ => 0,
                })
                .collect();
            let (bag, _, _, _) = Tensor::embedding_bag(
                &self.embedding,
                &Tensor::from_slice(&ids),
                &Tensor::from_slice(&offsets),
                false,
                1,
                false,
                None::<Tensor>,
                false,
            );
            let loss = bag
                .matmul(&self.out.tr())
                .log_softmax(-1, Kind::Float)
                .nll_loss(&Tensor::from_slice(&targets));
            adam.backward_step(&loss);
        }
    }
}

fn update_cost(c: &mut Criterion) {
    let articles = news::load_articles();
    let first = examples(&articles[..500], 0);
    let batch = examples(&articles[500..550], 500);
    let replayed = examples(&articles[300..350], 300);
    let window = examples(&articles[600..700], 600);
    let mut with_replay = batch.clone();
    with_replay.extend(replayed.iter().cloned());
    let mut model = TextClassifier::new(TextModelConfig::default(), Device::Cpu, 1).unwrap();
    train_one_epoch(&mut model, &first, 1, &[]).unwrap();
    train_one_epoch(&mut model, &batch, 1, &[]).unwrap(); // Every label known.
    let mut ewc = EwcState::new();
    let fisher = diagonal_fisher(&model, &first, FisherKind::Empirical, 64, 1).unwrap();
    ewc.consolidate(model.var_store(), fisher, 0.9).unwrap();
    let labels = news::OUTLETS;
    let dense = DenseBag::new();

    let mut group = c.benchmark_group("update_of_50");
    group.sample_size(10);
    group.bench_function("before_dense_adam_epoch", |b| {
        b.iter_batched(
            || dense.copy(),
            |mut m| m.epoch(&batch, &labels),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("before_full_model_copy", |b| b.iter(|| black_box(dense.copy())));
    group.bench_function("adaptive_pass_50_plus_50_replayed", |b| {
        b.iter_batched(
            || model.try_copy().unwrap(),
            |mut m| train_one_epoch(&mut m, &with_replay, 2, &[]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("adaptive_pass_with_ewc", |b| {
        b.iter_batched(
            || model.try_copy().unwrap(),
            |mut m| train_one_epoch(&mut m, &with_replay, 2, &[(&ewc, 1.0)]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("judge_live_and_candidate_on_100", |b| {
        b.iter(|| {
            black_box(measure(&model, &window).unwrap());
            black_box(measure(&model, &window).unwrap())
        })
    });
    // The candidate of an update of one article (and one replayed): the
    // judge scores the window afresh, or derives the scores from the live
    // model's and the rows the pass changed.
    let mut candidate = model.try_copy().unwrap();
    let two: Vec<&TrainingExample> = batch[..1].iter().chain(&replayed[..1]).collect();
    let (_, touched) = candidate.closed_form_pass(&two, &[]).unwrap().unwrap();
    let mut live = Judged::new();
    measure_reusing(&model, &window, &mut live).unwrap();
    group.bench_function("judge_candidate_of_one_article_afresh_on_100", |b| {
        b.iter(|| black_box(measure(&candidate, &window).unwrap()))
    });
    group.bench_function("judge_candidate_of_one_article_derived_on_100", |b| {
        b.iter(|| {
            let mut judged = Judged::new();
            black_box(measure_after_pass(&candidate, &window, &live, Some(&touched), &mut judged).unwrap())
        })
    });
    group.bench_function("fisher_of_50", |b| {
        b.iter(|| black_box(diagonal_fisher(&model, &batch, FisherKind::Empirical, 50, 3).unwrap()))
    });
    whole_update(
        &mut group,
        "whole_update_through_the_coordinator",
        &articles,
        50,
        EwcConfig::default(),
    );
    whole_update(
        &mut group,
        "whole_update_of_one_article_through_the_coordinator",
        &articles,
        1,
        EwcConfig::default(),
    );
    let ewc = EwcConfig {
        enabled: true,
        lambda: 1.0,
        ..EwcConfig::default()
    };
    whole_update(
        &mut group,
        "whole_update_with_ewc_through_the_coordinator",
        &articles,
        50,
        ewc,
    );
    group.finish();
}

/// The whole update of `size` articles as a user gets it (see the module
/// documentation), with `ewc` the EWC settings of every agent.
fn whole_update(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    articles: &[news::Article],
    size: usize,
    ewc: EwcConfig,
) {
    group.bench_function(name, |b| {
        let dir = std::env::temp_dir().join(format!("onthefly-bench-update-{}", std::process::id()));
        let coordinator = Coordinator::new(Config {
            data_dir: dir.clone(),
            predict_feedback_threshold: 0.0,
            checkpoints_kept: 0,
            store: StoreConfig {
                enabled: false,
                ..StoreConfig::default()
            },
            ewc: ewc.clone(),
            ..Config::default()
        })
        .unwrap();
        let mut next = 0usize;
        let mut hand_in = |n: usize| {
            for _ in 0..n {
                // Past the end the stream starts again (new ids, the same texts).
                let a = &articles[next % articles.len()];
                next += 1;
                let example = NewExample::new("scout", "news", a.text.clone(), Target::Label(a.outlet.clone()));
                coordinator.add_training_example(example).unwrap();
            }
        };
        // Every label known, the judging window full, the replay memory filling.
        hand_in(500);
        assert!(coordinator.wait_for_idle(Duration::from_secs(600)));
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                hand_in(size);
                coordinator.force_update_agent("scout").unwrap();
                assert!(coordinator.wait_for_idle(Duration::from_secs(600)));
                spent += started.elapsed();
            }
            spent
        });
        coordinator.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

criterion_group!(benches, update_cost);
criterion_main!(benches);
