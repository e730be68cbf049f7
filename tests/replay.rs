//! The replay memory is part of what a model learned: each change is
//! written to the store, and a restarted coordinator replays the same
//! examples, in SQLite and in PostgreSQL alike.

mod common;

use std::time::Duration;

use common::db::{fresh_database, postgres_config};
use common::{example, small_config};
use onthefly::replay::ReplayConfig;
use onthefly::{Config, Coordinator, ExampleId};

const IDLE: Duration = Duration::from_secs(60);
const OUTLETS: [&str; 3] = ["bbc", "cnn", "rte"];

/// Updates of 10 with a memory of 12: it fills, then examples come and go.
fn with_small_memory(config: Config) -> Config {
    Config {
        update_threshold: 10,
        max_examples_per_update: 10,
        replay: ReplayConfig {
            capacity: 12,
            ..ReplayConfig::default()
        },
        rollback_threshold: 1.0,
        acceptance: onthefly::judge::AcceptanceConfig {
            test: onthefly::judge::AcceptanceTest::Threshold,
            ..Default::default()
        },
        ..config
    }
}

fn stream(c: &Coordinator, from: usize, n: usize) {
    for i in from..from + n {
        c.add_training_example(example("scout", i, OUTLETS[i % 3])).unwrap();
        if (i + 1) % 10 == 0 {
            assert!(c.wait_for_idle(IDLE));
        }
    }
    assert!(c.wait_for_idle(IDLE));
}

/// The memory after 60 examples, and after a restart of the same store.
fn memory_across_a_restart(config: Config) -> (Vec<ExampleId>, Vec<ExampleId>, Coordinator) {
    let first = Coordinator::new(config.clone()).unwrap();
    stream(&first, 0, 60);
    let before = first.replay_memory("scout", "news").unwrap();
    let status = first.get_training_status();
    assert_eq!(status.agents["scout"].updates_accepted, 6);
    assert_eq!(status.agents["scout"].models["news"].replay_examples, before.len());
    first.shutdown();
    drop(first);
    let second = Coordinator::new(config).unwrap();
    let after = second.replay_memory("scout", "news").unwrap();
    (before, after, second)
}

fn check(before: &[ExampleId], after: &[ExampleId], restarted: &Coordinator) {
    assert_eq!(before.len(), 12, "three labels, four each");
    assert!(
        before.iter().any(|id| id.0 > 12),
        "later examples replaced some of the first ones: {before:?}"
    );
    assert_eq!(after, before, "the restarted coordinator replays the same examples");
    // The memory goes on from there, and the store follows it.
    stream(restarted, 60, 30);
    let next = restarted.replay_memory("scout", "news").unwrap();
    assert_eq!(next.len(), 12);
    assert_ne!(next, before);
}

#[test]
fn the_replay_memory_survives_a_restart_in_sqlite() {
    let config = with_small_memory(small_config());
    let (before, after, restarted) = memory_across_a_restart(config.clone());
    check(&before, &after, &restarted);
    let next = restarted.replay_memory("scout", "news").unwrap();
    restarted.shutdown();
    drop(restarted);
    let conn = rusqlite::Connection::open(config.data_dir.join(onthefly::store::SQLITE_FILE)).unwrap();
    let mut stmt = conn
        .prepare("SELECT id FROM training_examples WHERE replay ORDER BY id")
        .unwrap();
    let stored: Vec<ExampleId> = stmt
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|id| ExampleId(id.unwrap() as u64))
        .collect();
    assert_eq!(stored, next, "the store names the memory's examples");
}

#[test]
fn the_replay_memory_survives_a_restart_in_postgres() {
    let url = fresh_database();
    let config = with_small_memory(postgres_config(&url));
    let (before, after, restarted) = memory_across_a_restart(config);
    check(&before, &after, &restarted);
    let next = restarted.replay_memory("scout", "news").unwrap();
    restarted.shutdown();
    drop(restarted);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let stored: Vec<ExampleId> = client
        .query("SELECT id FROM training_examples WHERE replay ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| ExampleId(r.get::<_, i64>(0) as u64))
        .collect();
    assert_eq!(stored, next, "the store names the memory's examples");
}

#[test]
fn a_smaller_capacity_after_a_restart_forgets_in_the_store_too() {
    let config = with_small_memory(small_config());
    let first = Coordinator::new(config.clone()).unwrap();
    stream(&first, 0, 30);
    first.shutdown();
    drop(first);
    let smaller = Config {
        replay: ReplayConfig {
            capacity: 6,
            ..ReplayConfig::default()
        },
        ..config.clone()
    };
    let second = Coordinator::new(smaller).unwrap();
    let kept = second.replay_memory("scout", "news").unwrap();
    assert_eq!(kept.len(), 6);
    second.shutdown();
    drop(second);
    let conn = rusqlite::Connection::open(config.data_dir.join(onthefly::store::SQLITE_FILE)).unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM training_examples WHERE replay", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 6);
}
