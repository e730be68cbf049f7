//! One update of 50 examples for every built-in model kind, part by part:
//! the copy an update starts from, the training epoch without and with the
//! EWC penalty, the Fisher of the 50, one prediction, the evaluation on 100
//! held-out examples, and a checkpoint written and read back into the model. Each kind
//! on its real data (news outlets, VADER ratings, WNUT tags, VADER sentiment
//! for the MiniLM head).
//!
//! `cargo bench --bench models`

#[allow(dead_code)] // Only part of each fixture is used here.
#[path = "../tests/common/ner.rs"]
mod ner;
#[allow(dead_code)]
#[path = "../tests/common/news.rs"]
mod news;
#[allow(dead_code)]
#[path = "../tests/common/vader.rs"]
mod vader;

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use onthefly::checkpoint::{self, CheckpointMeta};
use onthefly::eval::evaluate;
use onthefly::ewc::{EwcState, FisherKind};
use onthefly::fisher::diagonal_fisher;
use onthefly::models::{AgentModel, MiniLm, MiniLmHead, TextClassifier, TextRegressor, TokenTagger};
use onthefly::{train_one_epoch, Target, TargetKind, TextModelConfig, TrainingExample};

fn examples(items: impl Iterator<Item = (String, Target)>) -> Vec<TrainingExample> {
    items
        .enumerate()
        .map(|(i, (text, target))| TrainingExample::new(i as u64, "agent", "task", text, target))
        .collect()
}

/// `first` trains the model and gives it a Fisher; `batch` is the update;
/// `held_out` judges it.
fn bench_kind(c: &mut Criterion, name: &str, mut model: Box<dyn AgentModel>, data: &[TrainingExample]) {
    let (first, rest) = data.split_at(300);
    let (batch, rest) = rest.split_at(50);
    let held_out = &rest[..100];
    // Every label or tag of the data is known to the model before the clock runs.
    model.prepare(data).unwrap();
    train_one_epoch(model.as_mut(), first, 1, &[]).unwrap();
    let mut ewc = EwcState::new();
    let fisher = diagonal_fisher(model.as_ref(), first, FisherKind::Empirical, 64, 1).unwrap();
    ewc.consolidate(model.var_store(), fisher, 0.9).unwrap();
    let dir = std::env::temp_dir().join(format!("onthefly-bench-models-{}-{name}", std::process::id()));
    let meta = CheckpointMeta {
        version: 1,
        agent_name: "agent".into(),
        task_type: "task".into(),
        model_kind: model.kind(),
        target_kind: model.target_kind(),
        model: model.metadata(),
        ewc_consolidations: ewc.consolidations(),
        created_ms: 0,
        base: None,
        packed: Default::default(),
        checksummed: false,
    };

    let mut group = c.benchmark_group(format!("update_of_50/{name}"));
    group.sample_size(10);
    group.bench_function("copy", |b| b.iter(|| black_box(model.try_clone().unwrap())));
    group.bench_function("epoch_without_ewc", |b| {
        b.iter_batched(
            || model.try_clone().unwrap(),
            |mut m| train_one_epoch(m.as_mut(), batch, 2, &[]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("epoch_with_ewc", |b| {
        b.iter_batched(
            || model.try_clone().unwrap(),
            |mut m| train_one_epoch(m.as_mut(), batch, 2, &[(&ewc, 100.0)]).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("fisher_of_50", |b| {
        b.iter(|| black_box(diagonal_fisher(model.as_ref(), batch, FisherKind::Empirical, 50, 3).unwrap()))
    });
    let one = [held_out[0].input_text.as_str()];
    group.bench_function("predict_one", |b| b.iter(|| black_box(model.predict(&one).unwrap())));
    group.bench_function("evaluate_100", |b| {
        b.iter(|| black_box(evaluate(model.as_ref(), held_out).unwrap()))
    });
    group.bench_function("checkpoint_save_and_restore", |b| {
        b.iter(|| {
            checkpoint::save(&dir, model.as_ref(), &ewc, &meta, 1).unwrap();
            let saved = checkpoint::load(&dir, 1).unwrap();
            let mut restored = model.try_clone().unwrap();
            restored.restore(&saved.params, &saved.meta.model).unwrap();
            black_box(restored)
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

fn models(c: &mut Criterion) {
    let config = TextModelConfig::default();
    let device = tch::Device::Cpu;

    let articles = news::load_articles();
    let news_data = examples(
        articles
            .iter()
            .take(450)
            .map(|a| (a.text.clone(), Target::Label(a.outlet.clone()))),
    );
    bench_kind(
        c,
        "text_classifier",
        Box::new(TextClassifier::new(config.clone(), device, 1).unwrap()),
        &news_data,
    );

    let tweets = vader::load_ratings("tweets_GroundTruth.txt");
    let scores = examples(
        tweets
            .iter()
            .take(450)
            .map(|s| (s.text.clone(), Target::Score(((s.rating + 4.0) / 8.0).clamp(0.0, 1.0)))),
    );
    bench_kind(
        c,
        "text_regressor",
        Box::new(TextRegressor::new(config.clone(), device, 1).unwrap()),
        &scores,
    );

    let sentences = ner::load_sentences();
    let tags = examples(
        sentences
            .iter()
            .take(450)
            .map(|s| (s.text(), Target::Tags(s.tags.clone()))),
    );
    bench_kind(
        c,
        "token_tagger",
        Box::new(TokenTagger::new(config.clone(), device, 1).unwrap()),
        &tags,
    );

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/minilm");
    let reviews = vader::load_domain("movieReviewSnippets_GroundTruth.txt");
    let sentiment = examples(
        reviews
            .iter()
            .step_by(7)
            .take(450)
            .map(|s| (s.text.clone(), Target::Label(s.label().into()))),
    );
    let head = MiniLmHead::new(
        MiniLm::load(&dir, device).unwrap(),
        dir,
        TargetKind::Label,
        config.learning_rate,
        config.minibatch_size,
    )
    .unwrap();
    bench_kind(c, "minilm_head", Box::new(head), &sentiment);
}

criterion_group!(benches, models);
criterion_main!(benches);
