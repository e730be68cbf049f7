//! onthefly's side of the ingest comparison in `bench/peers/run.sh`: news
//! articles handed to `add_training_example`, written to PostgreSQL by the
//! store's writer thread in batches; against the original's path (one
//! synchronous INSERT per example from Python, `bench/peers/ingest_original.py`)
//! into the same server, with the same rows.
//!
//! It measures what each call costs the caller (p50, p99 over every call) and
//! rows per second: all the calls, then `flush`, which returns once every row
//! is committed. The examples' target is free JSON (`{"outlet": ...}`), which
//! no built-in model learns, so no training shares the CPU and only the
//! ingest path is measured (as in `benches/persist.rs`).
//!
//! Needs `ONTHEFLY_TEST_DATABASE_URL` (a server where it may create a
//! database), as `scripts/with_test_postgres.sh` exports:
//! `scripts/with_test_postgres.sh cargo run --release --example peer_ingest --
//! --stream target/peers/news.jsonl --rows 11469`. The last line printed is JSON.

#[path = "common/args.rs"]
mod args;

use std::time::{Duration, Instant};

use onthefly::{Config, Coordinator, DatabaseConfig, NewExample, Target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let admin = std::env::var("ONTHEFLY_TEST_DATABASE_URL")
        .map_err(|_| "set ONTHEFLY_TEST_DATABASE_URL (scripts/with_test_postgres.sh does)")?;
    let stream: String = args::value("--stream").ok_or("--stream FILE (from peer_news --export) is required")?;
    let articles: Vec<serde_json::Value> = std::fs::read_to_string(&stream)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let rows = args::value("--rows").unwrap_or(articles.len());
    let examples: Vec<NewExample> = (0..rows)
        .map(|i| {
            let a = &articles[i % articles.len()];
            NewExample::new(
                "scout",
                "news_outlet",
                a["text"].as_str().unwrap_or_default(),
                Target::Json(serde_json::json!({ "outlet": a["outlet"] })),
            )
            .with_source(a["url"].as_str().unwrap_or_default())
        })
        .collect();

    let database = format!("otf_peer_ingest_{}", std::process::id());
    let mut client = postgres::Client::connect(&admin, postgres::NoTls)?;
    client.batch_execute(&format!("CREATE DATABASE {database}"))?;
    let (server, _) = admin.rsplit_once('/').ok_or("a URL ending in /database")?;
    let data_dir = std::env::temp_dir().join(format!("onthefly-peer-ingest-{}", std::process::id()));
    let coordinator = Coordinator::new(Config {
        database: Some(DatabaseConfig {
            url: format!("{server}/{database}"),
            pool_size: 4,
        }),
        data_dir: data_dir.clone(),
        ..Config::default()
    })?;

    let mut latencies = Vec::with_capacity(rows);
    let started = Instant::now();
    for e in examples {
        let t = Instant::now();
        coordinator.add_training_example(e)?;
        latencies.push(t.elapsed());
    }
    let calls_s = started.elapsed().as_secs_f64();
    coordinator.flush(Duration::from_secs(300))?;
    let total_s = started.elapsed().as_secs_f64();
    coordinator.shutdown();
    drop(coordinator);
    let stored: i64 = postgres::Client::connect(&format!("{server}/{database}"), postgres::NoTls)?
        .query_one("SELECT count(*) FROM training_examples", &[])?
        .get(0);
    client.batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))?;
    let _ = std::fs::remove_dir_all(&data_dir);

    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    let report = serde_json::json!({
        "peer": "onthefly",
        "path": "add_training_example, batched writer (COPY), then flush",
        "rows": rows,
        "rows_stored": stored,
        "rows_per_s": rows as f64 / total_s,
        "total_s": total_s,
        "calls_s": calls_s,
        "latency_p50_us": at(0.5),
        "latency_p99_us": at(0.99),
        "latency_max_us": at(1.0),
    });
    println!("{report}");
    Ok(())
}
