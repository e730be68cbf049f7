//! How do several instances sharing one PostgreSQL database scale on this
//! machine? For 1, 2 and 4 processes: each a cluster instance, each
//! ingesting its share of a stream of news articles for 4 agents (one task
//! each, so up to 4 updates can run at once under their separate training
//! locks), then training until nothing is buffered anywhere. Reports
//! examples and updates per second from the start of ingest to the last
//! commit, and what PostgreSQL carried (rows, notifications).
//!
//! `scripts/with_test_postgres.sh cargo run --release --example cluster_scale`
//! (any server: `DATABASE_URL=postgresql://… cargo run --release --example cluster_scale`).
//! Options: `--articles N` per agent (default 1200), `--processes 1,2,4`.
//! JSON in `target/cluster_scale.json`.

#[path = "common/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../tests/common/news.rs"]
mod news;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use onthefly::{ClusterConfig, Config, Coordinator, DatabaseConfig, NewExample, Target};
use postgres::{Client, NoTls};

const AGENTS: [&str; 4] = ["scout", "analyst", "critic", "fact_checker"];

fn config(url: &str, instance: &str, data_dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        database: Some(DatabaseConfig {
            url: url.to_string(),
            pool_size: 4,
        }),
        device: onthefly::DeviceChoice::Cpu,
        held_out_fraction: 0.2,
        check_interval_ms: 500,
        max_examples_per_update: 50,
        max_buffer_size: 10_000,
        max_concurrent_updates: 2,
        ..Config::default()
    };
    config.text_model.hash_buckets = 1 << 15;
    config.cluster = Some(ClusterConfig {
        instance_id: instance.to_string(),
        poll_interval_ms: 300,
        ..ClusterConfig::default()
    });
    config
}

fn buffered(client: &mut Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM training_examples WHERE state = 'buffered'", &[])
        .unwrap()
        .get(0)
}

/// One instance: ingests its share, trains until nothing is buffered, exits.
fn child(url: &str, part: usize, parts: usize, per_agent: usize) {
    let dir = std::env::temp_dir().join(format!("onthefly-scale-{}", std::process::id()));
    let c = Coordinator::new(config(url, &format!("p{part}"), &dir)).unwrap();
    let articles = news::load_articles();
    println!("READY");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    for (i, a) in articles.iter().take(per_agent).enumerate() {
        for (k, agent) in AGENTS.iter().enumerate() {
            if (i * AGENTS.len() + k) % parts == part {
                c.add_training_example(NewExample::new(
                    *agent,
                    "news",
                    a.text.clone(),
                    Target::Label(a.outlet.clone()),
                ))
                .unwrap();
            }
        }
    }
    c.flush(Duration::from_secs(120)).unwrap();
    let mut client = Client::connect(url, NoTls).unwrap();
    while buffered(&mut client) > 0 {
        for agent in AGENTS {
            let _ = c.force_update_agent(agent);
        }
        c.wait_for_idle(Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(20));
    }
    c.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    println!("IDLE");
}

fn fresh_database(admin: &str, name: &str) -> String {
    let mut client = Client::connect(admin, NoTls).expect("connect to PostgreSQL");
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database name");
    format!("{base}/{name}")
}

fn main() {
    let per_agent: usize = args::value("--articles").unwrap_or(1200);
    if let Some(part) = args::value::<usize>("--child") {
        let url: String = args::value("--url").unwrap();
        child(&url, part, args::value("--parts").unwrap(), per_agent);
        return;
    }
    let admin = std::env::var("DATABASE_URL")
        .or_else(|_| std::env::var("ONTHEFLY_TEST_DATABASE_URL"))
        .expect("set DATABASE_URL, or run under scripts/with_test_postgres.sh");
    let counts: Vec<usize> = args::numbers("--processes")
        .map(|v| v.into_iter().map(|x| x as usize).collect())
        .unwrap_or_else(|| vec![1, 2, 4]);
    println!(
        "{} agents × {per_agent} news articles, 20 % held out, updates of 50, on {} cores",
        AGENTS.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("processes  examples/s  updates/s  updates  wall s  notifications  rows/s written");
    let mut results = Vec::new();
    for &parts in &counts {
        let url = fresh_database(&admin, &format!("onthefly_scale_{parts}"));
        let mut children: Vec<_> = (0..parts)
            .map(|part| {
                let mut child = Command::new(std::env::current_exe().unwrap())
                    .args(["--child", &part.to_string(), "--parts", &parts.to_string()])
                    .args(["--url", &url, "--articles", &per_agent.to_string()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
                assert_eq!(lines.next().unwrap().unwrap(), "READY");
                (child, lines)
            })
            .collect();
        let started = Instant::now();
        for (child, _) in &mut children {
            writeln!(child.stdin.as_mut().unwrap(), "GO").unwrap();
        }
        for (child, lines) in &mut children {
            assert_eq!(lines.next().unwrap().unwrap(), "IDLE");
            assert!(child.wait().unwrap().success());
        }
        let wall = started.elapsed().as_secs_f64();
        let mut client = Client::connect(&url, NoTls).unwrap();
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM training_examples), (SELECT count(*) FROM model_performance), \
                 (SELECT count(*) FROM model_checkpoints), \
                 (SELECT count(*) FROM training_examples WHERE state IN ('trained', 'discarded'))",
                &[],
            )
            .unwrap();
        let (examples, updates, published, trained): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        // Each example is one insert and (trained ones) one state change; each
        // update a record; each accepted one a checkpoint row and a notification.
        let rows_written = examples + trained + updates + published;
        println!(
            "{parts:>9}  {:>10.0}  {:>9.2}  {updates:>7}  {wall:>6.1}  {published:>13}  {:>14.0}",
            examples as f64 / wall,
            updates as f64 / wall,
            rows_written as f64 / wall
        );
        results.push(serde_json::json!({
            "processes": parts,
            "examples": examples,
            "updates": updates,
            "published": published,
            "wall_s": wall,
            "examples_per_s": examples as f64 / wall,
            "updates_per_s": updates as f64 / wall,
            "rows_written_per_s": rows_written as f64 / wall,
        }));
        drop(client);
        let mut admin_client = Client::connect(&admin, NoTls).unwrap();
        let _ = admin_client.batch_execute(&format!("DROP DATABASE IF EXISTS onthefly_scale_{parts}"));
    }
    let out = serde_json::json!({ "agents": AGENTS.len(), "articles_per_agent": per_agent, "runs": results });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cluster_scale.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("{out}");
}
