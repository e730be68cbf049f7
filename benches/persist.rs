//! What does persistence cost the agents, and how fast does it write?
//! Against one PostgreSQL server, in one run:
//!
//! - `rows/original_insert_per_example`: the original's way, one INSERT per
//!   example on the caller's thread (autocommit), the baseline;
//! - `rows/batched_writer`: `add_training_example` for every example, then
//!   `flush` (so every row is committed): the writer thread's batches (COPY);
//! - `caller/...`: what one call costs the caller in each way.
//!
//! Examples are free-JSON summaries (no built-in model learns them), so no
//! training shares the CPU and only persistence is measured.
//!
//! `cargo bench --bench persist` (starts a throwaway PostgreSQL cluster under
//! `target/` unless `scripts/with_test_postgres.sh` gave one; either runs
//! with `fsync=off`, which favours the baseline's commit per row).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use onthefly::{Config, Coordinator, DatabaseConfig, NewExample, StoreConfig, Target};

/// Examples per measured iteration of the throughput benchmarks.
const ROWS: usize = 2_000;

/// The server `scripts/with_test_postgres.sh` started, or the throwaway one
/// this benchmark started itself (plain `cargo bench`).
fn admin_url() -> String {
    std::env::var("ONTHEFLY_TEST_DATABASE_URL").expect("main sets it when no server was given")
}

/// A throwaway PostgreSQL cluster under `target/`, removed when dropped.
struct OwnCluster(String);

impl OwnCluster {
    fn script(args: &[&str]) -> String {
        let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg_cluster.sh"))
            .args(args)
            .output()
            .expect("run scripts/pg_cluster.sh");
        assert!(
            out.status.success(),
            "pg_cluster.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts one unless a server was given; exports its URL.
    fn start_unless_given() -> Option<OwnCluster> {
        if std::env::var("ONTHEFLY_TEST_DATABASE_URL").is_ok() {
            return None;
        }
        // Not under the checkout: the server's user may not reach it.
        let dir = Self::script(&["newdir", "bench"]);
        Self::script(&["init", &dir]);
        let cluster = OwnCluster(dir.clone());
        let port = Self::script(&["free-port"]);
        Self::script(&["start", &dir, &port]);
        Self::script(&["createdb", &dir, &port, "onthefly_bench"]);
        std::env::set_var(
            "ONTHEFLY_TEST_DATABASE_URL",
            format!("postgresql://postgres@127.0.0.1:{port}/onthefly_bench"),
        );
        Some(cluster)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg_cluster.sh"))
            .args(["destroy", &self.0])
            .output();
    }
}

/// A new database on the server; its URL.
fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let admin = admin_url();
    let name = format!(
        "otf_bench_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn summary(i: usize) -> NewExample {
    NewExample::new(
        "synthesizer",
        "summary",
        format!("article {i}: the council met on Tuesday and approved next year's budget after a long debate"),
        Target::Json(serde_json::json!({ "summary": format!("budget approved ({i})") })),
    )
}

/// The original's table and INSERT (its ten columns, one row per call).
struct Original {
    client: postgres::Client,
    insert: postgres::Statement,
}

impl Original {
    fn new() -> Original {
        let mut client = postgres::Client::connect(&fresh_database(), postgres::NoTls).unwrap();
        client
            .batch_execute(
                "CREATE TABLE training_examples (id SERIAL PRIMARY KEY, agent_name TEXT, task_type TEXT, \
                 input_text TEXT, expected_output TEXT, uncertainty_score DOUBLE PRECISION, \
                 importance_score DOUBLE PRECISION, source_url TEXT, timestamp TIMESTAMPTZ, user_feedback TEXT, \
                 correction_priority INTEGER)",
            )
            .unwrap();
        let insert = client
            .prepare(
                "INSERT INTO training_examples (agent_name, task_type, input_text, expected_output, \
                 uncertainty_score, importance_score, source_url, timestamp, user_feedback, correction_priority) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .unwrap();
        Original { client, insert }
    }

    fn add(&mut self, e: &NewExample) {
        let expected = e.expected_output.to_json().to_string();
        let priority = i32::from(u8::from(e.correction_priority));
        self.client
            .execute(
                &self.insert,
                &[
                    &e.agent_name,
                    &e.task_type,
                    &e.input_text,
                    &expected,
                    &e.uncertainty_score,
                    &e.importance_score,
                    &e.source_url,
                    &std::time::SystemTime::now(),
                    &e.user_feedback,
                    &priority,
                ],
            )
            .unwrap();
    }
}

fn coordinator() -> Coordinator {
    let data_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-data")
        .join(format!("persist-{}", std::process::id()));
    Coordinator::new(Config {
        database: Some(DatabaseConfig {
            url: fresh_database(),
            pool_size: 4,
        }),
        data_dir,
        device: onthefly::DeviceChoice::Cpu,
        store: StoreConfig::default(),
        ..Config::default()
    })
    .unwrap()
}

fn persist(c: &mut Criterion) {
    let mut original = Original::new();
    let ours = coordinator();
    let examples: Vec<NewExample> = (0..ROWS).map(summary).collect();

    let mut rows = c.benchmark_group("rows");
    rows.throughput(Throughput::Elements(ROWS as u64));
    rows.sample_size(10);
    rows.bench_function("original_insert_per_example", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for e in &examples {
                    original.add(e);
                }
            }
            start.elapsed()
        })
    });
    rows.bench_function("batched_writer", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for e in &examples {
                    ours.add_training_example(e.clone()).unwrap();
                }
                ours.flush(Duration::from_secs(120)).unwrap();
            }
            start.elapsed()
        })
    });
    rows.finish();

    let mut caller = c.benchmark_group("caller");
    let mut i = 0;
    caller.bench_function("original_insert_per_example", |b| {
        b.iter(|| {
            i += 1;
            original.add(&examples[i % ROWS]);
        })
    });
    caller.bench_function("add_training_example", |b| {
        b.iter(|| {
            i += 1;
            ours.add_training_example(examples[i % ROWS].clone()).unwrap()
        })
    });
    caller.finish();
    ours.flush(Duration::from_secs(120)).unwrap();
    let status = ours.get_training_status().store.unwrap();
    assert_eq!((status.backlog, status.rejected), (0, 0));
    ours.shutdown();
}

criterion_group!(benches, persist);

fn main() {
    // Started before the benchmarks and removed after them (criterion_main!
    // would leave no place for the cleanup).
    let _server = OwnCluster::start_unless_given();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
