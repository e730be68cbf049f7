//! Fixtures shared by the integration tests.
#![allow(dead_code)] // Each test file uses a different part of this module.

pub mod acceptance;
pub mod active;
pub mod continual;
pub mod db;
pub mod judging;
pub mod ner;
pub mod news;
pub mod noisy;
pub mod permuted;
pub mod pixels;
pub mod vader;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use onthefly::{Config, NewExample, Priority, Target, TextModelConfig, TrainingExample};

/// A fresh folder under `target/test-data` for one test's checkpoints.
pub fn fresh_data_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-data")
        .join(format!(
            "{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A configuration with a small text model (fast to copy and train), no held-out
/// share, a background check that never fires within a test unless asked, and
/// its own checkpoint folder.
pub fn small_config() -> Config {
    Config {
        data_dir: fresh_data_dir(),
        device: onthefly::DeviceChoice::Cpu,
        held_out_fraction: 0.0,
        check_interval_ms: 3_600_000,
        text_model: TextModelConfig {
            hash_buckets: 4096,
            embedding_dim: 16,
            ..TextModelConfig::default()
        },
        ..Config::default()
    }
}

/// The default text model with 2¹⁴ buckets: a news classifier fast to
/// copy and train in a test.
pub fn text_model_of_2_14_buckets() -> TextModelConfig {
    TextModelConfig {
        hash_buckets: 1 << 14,
        ..TextModelConfig::default()
    }
}

/// A label target.
pub fn label(s: &str) -> Target {
    Target::Label(s.to_string())
}

/// An example for agent `agent`, task `news`, with a distinct text.
pub fn example(agent: &str, i: usize, outlet: &str) -> NewExample {
    NewExample::new(
        agent,
        "news",
        format!("article number {i} about {outlet} things"),
        label(outlet),
    )
}

/// A buffered example as the buffer sees it.
pub fn buffered(id: u64, priority: Priority, importance: f64, uncertainty: f64) -> TrainingExample {
    TrainingExample {
        uncertainty_score: uncertainty,
        importance_score: importance,
        correction_priority: priority,
        ..TrainingExample::new(id, "scout", "news", format!("text {id}"), label("bbc"))
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

/// The demo's binary (`examples/newsroom.rs`), which `cargo test
/// --all-targets` builds beside the tests.
pub fn newsroom_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "target/{}/examples/newsroom",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    ));
    assert!(
        binary.exists(),
        "{} is missing: build the examples (`cargo test --all-targets` does)",
        binary.display()
    );
    binary
}

/// The URL of the throwaway PostgreSQL that `make test` starts. Panics (the
/// test fails, it does not skip) when the tests were not started through it.
pub fn database_url() -> String {
    std::env::var("ONTHEFLY_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("ONTHEFLY_TEST_DATABASE_URL is not set: run the tests with `make test`, which starts PostgreSQL")
    })
}

/// Forces an update of `agent` and waits for it (and anything it queued).
pub fn update_now(c: &onthefly::Coordinator, agent: &str) {
    c.force_update_agent(agent).unwrap();
    assert!(c.wait_for_idle(Duration::from_secs(600)), "the update did not finish");
}

/// Teaches (agent, task) the wrong answers of `corrections` — `(input,
/// right, wrong)`, handed in as low-priority corrections, which are never
/// held out — in one update, and asserts that the update of the whole batch
/// was rolled back. Its parts are then retrained in halves (to isolate the
/// harmful examples); a part small enough may pass the paired test (the
/// tagger's entity F1 on a window of tweets, most without entities, has
/// little power), so the live version may move, but only by an update of at
/// most half of the batch.
/// Returns the whole batch's record.
pub fn assert_wrong_answers_roll_back(
    c: &onthefly::Coordinator,
    agent: &str,
    task: &str,
    corrections: impl IntoIterator<Item = (String, Target, Target)>,
) -> onthefly::ModelPerformance {
    let recorded = c.performance_history().len();
    let mut n = 0;
    for (input, right, wrong) in corrections {
        c.add_user_correction(onthefly::UserCorrection {
            priority: Priority::Low,
            ..onthefly::UserCorrection::new(agent, task, input, right, wrong)
        })
        .unwrap();
        n += 1;
    }
    update_now(c, agent);
    // The agent's other tasks may update in the same call.
    let records: Vec<_> = c
        .performance_history()
        .into_iter()
        .skip(recorded)
        .filter(|r| r.task_type == task)
        .collect();
    let whole = records.first().expect("an update ran").clone();
    assert!(
        whole.rollback_triggered && whole.examples_trained >= n,
        "the whole batch of {n}: {whole:?}"
    );
    for kept in records.iter().filter(|r| !r.rollback_triggered) {
        assert!(
            kept.examples_trained <= whole.examples_trained / 2,
            "an accepted part of the batch: {kept:?}"
        );
    }
    whole
}

/// A TorchScript classifier of the labels `bbc` and `cnn` configured for
/// `key` ("agent/task") whose module file is not a module (a missing file
/// is refused at start): its task's model cannot be created, and what it
/// can learn is known from the spec alone.
pub fn broken_torchscript_classifier(key: &str) -> BTreeMap<String, onthefly::models::TorchScriptSpec> {
    let path = fresh_data_dir().join("module.pt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"not a TorchScript module").unwrap();
    BTreeMap::from([(
        key.to_string(),
        onthefly::models::TorchScriptSpec {
            path,
            target_kind: onthefly::TargetKind::Label,
            labels: vec!["bbc".into(), "cnn".into()],
            hash_buckets: 1024,
            max_tokens: 100,
            learning_rate: 0.05,
            minibatch_size: 16,
        },
    )])
}
