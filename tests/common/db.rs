//! PostgreSQL for the store tests: a fresh database on the cluster `make test`
//! starts, or a private cluster a test may stop and start (an outage).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use onthefly::{Config, DatabaseConfig};

use super::{database_url, small_config};

/// A new, empty database on the test cluster; its URL.
pub fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let admin = database_url();
    let name = format!("otf_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test cluster");
    client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database name");
    format!("{base}/{name}")
}

/// `small_config()` storing in PostgreSQL at `url`.
pub fn postgres_config(url: &str) -> Config {
    Config {
        database: Some(DatabaseConfig {
            url: url.to_string(),
            pool_size: 4,
        }),
        ..small_config()
    }
}

/// A PostgreSQL cluster of one test, removed when dropped.
pub struct PrivateCluster {
    dir: PathBuf,
    port: u16,
}

fn cluster_script(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg_cluster.sh");
    let out = Command::new(&script)
        .args(args)
        .output()
        .expect("run scripts/pg_cluster.sh");
    assert!(
        out.status.success(),
        "pg_cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl PrivateCluster {
    /// Creates and starts a cluster with a database `onthefly`.
    pub fn start() -> PrivateCluster {
        // Not under the checkout: the server's user may not reach it.
        let dir = PathBuf::from(cluster_script(&["newdir", "private"]));
        let port: u16 = cluster_script(&["free-port"]).parse().unwrap();
        let path = dir.to_str().unwrap().to_string();
        cluster_script(&["init", &path]);
        let cluster = PrivateCluster { dir, port };
        cluster.resume();
        cluster_script(&["createdb", &path, &port.to_string(), "onthefly"]);
        cluster
    }

    /// Its database's URL.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/onthefly", self.port)
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) {
        cluster_script(&["stop", self.dir.to_str().unwrap()]);
    }

    /// Starts the server again, on the same port.
    pub fn resume(&self) {
        cluster_script(&["start", self.dir.to_str().unwrap(), &self.port.to_string()]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg_cluster.sh"))
            .args(["destroy", self.dir.to_str().unwrap()])
            .output();
    }
}

/// A fresh database holding the original JustNews system's
/// `training_examples` (the columns its `_persist_training_example` INSERT
/// names) with `rows` rows of the scout's news; its URL.
#[allow(dead_code)]
pub fn database_with_original_table(rows: usize) -> String {
    let url = fresh_database();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE training_examples (id SERIAL PRIMARY KEY, agent_name TEXT, task_type TEXT, input_text TEXT, \
             expected_output TEXT, uncertainty_score REAL, importance_score REAL, source_url TEXT, timestamp TIMESTAMP, \
             user_feedback TEXT, correction_priority INTEGER); \
             INSERT INTO training_examples (agent_name, task_type, input_text, expected_output, uncertainty_score, \
             importance_score, source_url, timestamp, user_feedback, correction_priority) \
             SELECT 'scout', 'news', 'article ' || i, '\"bbc\"', 0.5, 0.5, NULL, now(), NULL, 0 \
             FROM generate_series(1, {rows}) AS i;"
        ))
        .unwrap();
    url
}
