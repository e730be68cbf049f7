//! Fixtures shared by the integration tests.
#![allow(dead_code)] // Each test file uses a different part of this module.

pub mod acceptance;
pub mod active;
pub mod continual;
pub mod db;
pub mod ner;
pub mod news;
pub mod permuted;
pub mod pixels;
pub mod vader;

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
/// held out — in one update, and asserts that the update was rolled back and
/// the live version did not move. Returns the update's record.
pub fn assert_wrong_answers_roll_back(
    c: &onthefly::Coordinator,
    agent: &str,
    task: &str,
    corrections: impl IntoIterator<Item = (String, Target, Target)>,
) -> onthefly::ModelPerformance {
    let version = c.get_training_status().agents[agent].models[task].version;
    for (input, right, wrong) in corrections {
        c.add_user_correction(onthefly::UserCorrection {
            priority: Priority::Low,
            ..onthefly::UserCorrection::new(agent, task, input, right, wrong)
        })
        .unwrap();
    }
    update_now(c, agent);
    let last = c.performance_history().pop().unwrap();
    assert!(last.rollback_triggered && last.task_type == task, "{last:?}");
    assert_eq!(c.get_training_status().agents[agent].models[task].version, version);
    last
}
