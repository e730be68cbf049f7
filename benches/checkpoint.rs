//! What does a checkpoint cost per update, and what does loading the newest
//! version cost? The default classifier learns the news stream in date order
//! through the coordinator (updates of 50, each waited for, checkpoints on),
//! once writing every version in full (`checkpoint_full_every` 1, what the
//! library did before) and once with the default (a full file every 10
//! versions, deltas between). Printed (and written to
//! `target/checkpoint.json`): the mean file size of each kind. Measured by
//! criterion: loading a full version (today's load = 1.0) against loading
//! the newest version of a chain of 9 deltas, as files and as a restart
//! that serves it (a coordinator started on the folder).
//!
//! The baseline of the issue that asked for deltas ("loading the newest
//! version no slower than today") is measured too: a full file of the
//! classifier the library had then (a 2¹⁸ × 32 embedding bag and a 32 × 9
//! linear layer, 33.6 MB), written and loaded by today's code.
//!
//! `cargo bench --bench checkpoint`

#[path = "../tests/common/news.rs"]
#[allow(dead_code)]
mod news;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use onthefly::checkpoint::{self, CheckpointMeta};
use onthefly::ewc::EwcState;
use onthefly::models::{AgentModel, Gradients, ModelKind, ModelOutput, TrainingSettings};
use onthefly::{Config, Coordinator, ModelError, NewExample, StoreConfig, Target, TargetKind, TrainingExample};
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// The variables of the classifier the library had when deltas were asked
/// for: what its full checkpoint held. Only written and loaded here.
struct EmbeddingBagOfThen {
    vs: VarStore,
}

impl EmbeddingBagOfThen {
    fn new() -> EmbeddingBagOfThen {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = (&root / "embedding").randn("weight", &[1 << 18, 32], 0.0, 0.1);
        let _ = (&root / "linear").randn("weight", &[9, 32], 0.0, 0.1);
        let _ = (&root / "linear").zeros("bias", &[9]);
        EmbeddingBagOfThen { vs }
    }
}

impl AgentModel for EmbeddingBagOfThen {
    fn kind(&self) -> ModelKind {
        ModelKind::Custom
    }
    fn target_kind(&self) -> TargetKind {
        TargetKind::Label
    }
    fn var_store(&self) -> &VarStore {
        &self.vs
    }
    fn prepare(&mut self, _examples: &[TrainingExample]) -> Result<(), ModelError> {
        Ok(())
    }
    fn loss(&self, _examples: &[&TrainingExample], _: Gradients) -> Result<Tensor, ModelError> {
        Err(ModelError::NotSupported("only written and loaded".into()))
    }
    fn predict(&self, _inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        Err(ModelError::NotSupported("only written and loaded".into()))
    }
    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        Err(ModelError::NotSupported("only written and loaded".into()))
    }
    fn settings(&self) -> TrainingSettings {
        TrainingSettings::adam(0.0, 1)
    }
}

/// Writes a full checkpoint of [`EmbeddingBagOfThen`] into a fresh folder;
/// returns the folder and the version written.
fn write_checkpoint_of_then() -> (PathBuf, u64) {
    let dir = std::env::temp_dir().join(format!("onthefly-checkpoint-bench-{}-then", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = EmbeddingBagOfThen::new();
    let meta = CheckpointMeta {
        version: 1,
        agent_name: "scout".into(),
        task_type: "news".into(),
        model_kind: ModelKind::Custom,
        target_kind: TargetKind::Label,
        model: serde_json::Value::Null,
        ewc_consolidations: 0,
        created_ms: 0,
        base: None,
        checksummed: true,
        packed: Default::default(),
    };
    checkpoint::write(&dir, &model, &EwcState::new(), &meta).unwrap();
    (dir, 1)
}

/// Articles streamed (about 24 updates of 50, after the held-out window).
const ARTICLES: usize = 1_500;

/// Streams the articles with `full_every` into a fresh data folder; returns
/// it and the task's checkpoint folder in it.
fn stream(full_every: usize, articles: &[news::Article]) -> (PathBuf, PathBuf) {
    let data_dir = std::env::temp_dir().join(format!("onthefly-checkpoint-bench-{}-{full_every}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let config = Config {
        data_dir: data_dir.clone(),
        device: onthefly::DeviceChoice::Cpu,
        check_interval_ms: 3_600_000,
        // Every version stays, to be measured.
        checkpoints_kept: 1_000,
        checkpoint_full_every: full_every,
        store: StoreConfig {
            enabled: false,
            ..StoreConfig::default()
        },
        ..Config::default()
    };
    let c = Coordinator::new(config.clone()).unwrap();
    for a in &articles[..ARTICLES] {
        c.add_training_example(NewExample::new(
            "scout",
            "news",
            a.text.clone(),
            Target::Label(a.outlet.clone()),
        ))
        .unwrap();
        assert!(c.wait_for_idle(Duration::from_secs(120)));
    }
    c.shutdown();
    (data_dir, config.model_dir("scout").join("news"))
}

/// Mean size in bytes of the full and of the delta files in `dir`, and how many of each.
fn sizes(dir: &Path) -> ((f64, usize), (f64, usize)) {
    let (mut full, mut delta) = (Vec::new(), Vec::new());
    for version in checkpoint::versions(dir).unwrap() {
        // The update wrote the delta; a full file beside it is the serving
        // version written at shutdown, once per process.
        let file = Some(checkpoint::delta_path_of(dir, version))
            .filter(|p| p.exists())
            .unwrap_or_else(|| checkpoint::path_of(dir, version));
        let bytes = file.metadata().unwrap().len() as f64;
        match checkpoint::is_delta(&file) {
            true => delta.push(bytes),
            false => full.push(bytes),
        }
    }
    let mean = |v: &[f64]| (v.iter().sum::<f64>() / v.len().max(1) as f64, v.len());
    (mean(&full), mean(&delta))
}

fn checkpoint_cost(c: &mut Criterion) {
    let articles = news::load_articles();
    let (full_data, full_dir) = stream(1, &articles);
    let (delta_data, delta_dir) = stream(10, &articles);
    let ((full_bytes, fulls), _) = sizes(&full_dir);
    let ((mixed_full_bytes, mixed_fulls), (delta_bytes, deltas)) = sizes(&delta_dir);
    // The newest version at the end of a chain of 9 deltas, and its full base.
    let versions = checkpoint::versions(&delta_dir).unwrap();
    let longest = *versions
        .iter()
        .rev()
        .find(|v| checkpoint::deltas_before(&delta_dir, **v) == 9)
        .expect("a chain of 9 deltas");
    let base = longest - 9;
    let report = serde_json::json!({
        "articles": ARTICLES,
        "full_every_1": {"full_files": fulls, "mean_full_bytes": full_bytes},
        "full_every_10": {
            "full_files": mixed_fulls, "mean_full_bytes": mixed_full_bytes,
            "delta_files": deltas, "mean_delta_bytes": delta_bytes,
        },
        "bytes_per_update_ratio": (mixed_full_bytes * mixed_fulls as f64 + delta_bytes * deltas as f64)
            / (mixed_fulls + deltas) as f64 / full_bytes,
    });
    eprintln!("{report:#}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/checkpoint.json", report.to_string());

    let (then_dir, then_version) = write_checkpoint_of_then();
    let then_bytes = checkpoint::path_of(&then_dir, then_version).metadata().unwrap().len();
    eprintln!("a full checkpoint of the classifier of then: {then_bytes} bytes");
    let mut group = c.benchmark_group("checkpoint_load");
    group.bench_function("full_version_of_the_classifier_when_deltas_were_asked_for", |b| {
        b.iter(|| black_box(checkpoint::load(&then_dir, then_version).unwrap()))
    });
    group.bench_function("full_version", |b| {
        b.iter(|| black_box(checkpoint::load(&delta_dir, base).unwrap()))
    });
    group.bench_function("newest_of_9_deltas", |b| {
        b.iter(|| black_box(checkpoint::load(&delta_dir, longest).unwrap()))
    });
    group.finish();

    // What a restart pays to serve the version: a coordinator started on a
    // folder whose serving version is the full one, or the end of the chain.
    let restart_dir = |serving: u64| {
        let data_dir = delta_data.with_extension(format!("restart-{serving}"));
        let _ = std::fs::remove_dir_all(&data_dir);
        let dir = data_dir.join("models").join("scout").join("news");
        std::fs::create_dir_all(&dir).unwrap();
        for version in base..=longest {
            let file = checkpoint::file_of(&delta_dir, version).unwrap();
            std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
        }
        checkpoint::set_current(&dir, serving).unwrap();
        data_dir
    };
    // Timed: the start until the version serves; the shutdown is not (it
    // writes a delta-served version in full, for the next start).
    let restart = |serving: u64, iters: u64| {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            let data_dir = restart_dir(serving);
            let started = std::time::Instant::now();
            let c = Coordinator::new(Config {
                data_dir: data_dir.clone(),
                device: onthefly::DeviceChoice::Cpu,
                store: StoreConfig {
                    enabled: false,
                    ..StoreConfig::default()
                },
                ..Config::default()
            })
            .unwrap();
            assert_eq!(c.get_training_status().agents["scout"].models["news"].version, serving);
            spent += started.elapsed();
            c.shutdown();
            drop(c);
            let _ = std::fs::remove_dir_all(data_dir);
        }
        spent
    };
    let mut group = c.benchmark_group("restart_serving");
    group.bench_function("full_version", |b| b.iter_custom(|iters| restart(base, iters)));
    // After a clean shutdown the serving version is a full file (the line
    // above); after a crash it may be the end of a chain.
    group.bench_function("newest_of_9_deltas_after_a_crash", |b| {
        b.iter_custom(|iters| restart(longest, iters))
    });
    group.finish();
    for data_dir in [full_data, delta_data, then_dir] {
        let _ = std::fs::remove_dir_all(data_dir);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = checkpoint_cost
}
criterion_main!(benches);
