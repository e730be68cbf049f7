//! The store does not grow without bound: settled examples beyond an
//! agent's count, or past their age, are deleted by the writer; examples a
//! replay memory holds, and those still on their way (buffered, held out,
//! evicted and waiting to be taken back, waiting for review), stay; the status counters survive the deletion and
//! a restart. On both stores; the PostgreSQL half runs against the cluster
//! `make test` starts (and fails without it).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::db::{fresh_database, postgres_config};
use common::{example, small_config, update_now, wait_until};
use onthefly::replay::ReplayConfig;
use onthefly::store::{self, ExampleStore, PostgresStore, RetentionConfig, SqliteStore};
use onthefly::{Config, Coordinator, StoreConfig};

const KEEP: u64 = 100;
const REPLAY: usize = 20;

/// Counts of the store's rows: trained and not in a replay memory, in a
/// replay memory, and every row.
fn counts(config: &Config) -> (i64, i64, i64) {
    let queries = [
        "SELECT count(*) FROM training_examples WHERE state = 'trained' AND NOT replay",
        "SELECT count(*) FROM training_examples WHERE replay",
        "SELECT count(*) FROM training_examples",
    ];
    match &config.database {
        Some(db) => {
            let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
            let one = |client: &mut postgres::Client, q: &str| client.query_one(q, &[]).unwrap().get::<_, i64>(0);
            (
                one(&mut client, queries[0]),
                one(&mut client, queries[1]),
                one(&mut client, queries[2]),
            )
        }
        None => {
            let db = rusqlite::Connection::open(config.data_dir.join(store::SQLITE_FILE)).unwrap();
            let one = |q: &str| db.query_row(q, [], |r| r.get::<_, i64>(0)).unwrap();
            (one(queries[0]), one(queries[1]), one(queries[2]))
        }
    }
}

fn with_retention(config: Config, retention: RetentionConfig) -> Config {
    Config {
        update_threshold: 50,
        replay: ReplayConfig {
            capacity: REPLAY,
            ratio: 1.0,
        },
        store: StoreConfig {
            retention,
            ..config.store.clone()
        },
        ..config
    }
}

fn settled_beyond_a_count_are_deleted_and_counted(config: Config) {
    let config = with_retention(
        config,
        RetentionConfig {
            max_age_hours: None,
            max_settled_per_agent: Some(KEEP),
            interval_ms: 20,
        },
    );
    let c = Coordinator::new(config.clone()).unwrap();
    for i in 0..600 {
        c.add_training_example(example("scout", i, ["bbc", "cnn"][i % 2]))
            .unwrap();
        if i % 100 == 99 {
            update_now(&c, "scout");
        }
    }
    update_now(&c, "scout");
    c.flush(Duration::from_secs(60)).unwrap();
    let trained = c.get_training_status().agents["scout"].examples_trained;
    assert!(trained >= 500, "{trained} trained");
    assert!(
        wait_until(Duration::from_secs(60), || counts(&config).0 <= KEEP as i64),
        "settled rows beyond {KEEP}: {:?}",
        counts(&config)
    );
    let (settled, replayed, all) = counts(&config);
    assert_eq!(settled, KEEP as i64, "the newest {KEEP} settled rows stay");
    assert!(
        replayed > 0 && replayed <= REPLAY as i64,
        "{replayed} rows in the replay memory"
    );
    assert!(all < 600, "{all} rows left of 600");
    let retired = c.get_training_status().store.unwrap().retired;
    assert_eq!(retired as i64, 600 - all, "the status counts what was deleted");
    c.shutdown();
    drop(c);

    // A restart: the counters still count the deleted rows, and the replay
    // memory is whole.
    let c = Coordinator::new(config.clone()).unwrap();
    assert_eq!(c.get_training_status().agents["scout"].examples_trained, trained);
    assert_eq!(counts(&config).1, replayed);
    c.shutdown();
}

/// A pass by age: every settled row older than the bound goes, the replay
/// memory's and the buffered ones stay; a second pass deletes nothing more.
fn settled_past_their_age_are_deleted(config: Config, store: &dyn ExampleStore) {
    let policy = RetentionConfig {
        max_age_hours: Some(1.0),
        max_settled_per_agent: None,
        interval_ms: 1,
    };
    let before = counts(&config);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert_eq!(store.retire(&policy, now).unwrap(), 0, "nothing is an hour old yet");
    let two_hours_later = now + 2 * 3_600_000;
    assert_eq!(store.retire(&policy, two_hours_later).unwrap(), before.0 as u64);
    let after = counts(&config);
    assert_eq!((after.0, after.1), (0, before.1), "{before:?} → {after:?}");
    assert_eq!(store.retire(&policy, two_hours_later).unwrap(), 0);
}

/// Evicted examples wait in the store to be taken back once the trainer
/// catches up: retention leaves them, so a fast stream into a small buffer
/// is trained whole (retention deleted them untrained, their way counted
/// as ended).
fn evicted_examples_are_not_retired(config: Config) {
    let config = Config {
        max_buffer_size: 20,
        update_threshold: 20,
        ..with_retention(
            config,
            RetentionConfig {
                max_age_hours: None,
                max_settled_per_agent: Some(10),
                interval_ms: 20,
            },
        )
    };
    let c = Coordinator::new(config).unwrap();
    const N: usize = 3_000;
    for i in 0..N {
        c.add_training_example(example("scout", i, ["bbc", "cnn"][i % 2]))
            .unwrap();
    }
    assert!(c.wait_for_idle(Duration::from_secs(300)), "not idle");
    let scout = &c.get_training_status().agents["scout"];
    assert!(scout.examples_taken_back > 0, "the buffer never overflowed");
    assert_eq!(scout.examples_evicted, 0, "an evicted example was not taken back");
    assert_eq!(scout.examples_trained, N as u64, "every example trained");
    c.shutdown();
}

#[test]
fn retention_on_sqlite() {
    let config = small_config();
    evicted_examples_are_not_retired(small_config());
    settled_beyond_a_count_are_deleted_and_counted(config.clone());
    let store = SqliteStore::open(&config.data_dir.join(store::SQLITE_FILE)).unwrap();
    settled_past_their_age_are_deleted(config, &store);
}

#[test]
fn retention_on_postgres() {
    let config = postgres_config(&fresh_database());
    evicted_examples_are_not_retired(postgres_config(&fresh_database()));
    settled_beyond_a_count_are_deleted_and_counted(config.clone());
    let store = PostgresStore::connect(&config.database.clone().unwrap().url, 2, Duration::from_secs(5)).unwrap();
    settled_past_their_age_are_deleted(config, &store);
}

/// Two instances' passes at once (each instance's writer runs one every
/// `interval_ms`): every deleted row is counted once. The first pass is
/// held at its count's write by a session that locks the counter's row;
/// before, the second pass counted the same rows meanwhile, and added them
/// again once the first had deleted them.
#[test]
fn overlapping_passes_count_each_deleted_row_once() {
    // Nothing retired by the instance itself; a replay memory of 20.
    let config = with_retention(
        postgres_config(&fresh_database()),
        RetentionConfig {
            max_age_hours: None,
            max_settled_per_agent: None,
            interval_ms: 60_000,
        },
    );
    let c = Coordinator::new(config.clone()).unwrap();
    for i in 0..300 {
        c.add_training_example(example("scout", i, ["bbc", "cnn"][i % 2]))
            .unwrap();
    }
    update_now(&c, "scout");
    c.shutdown();
    drop(c);
    let settled = counts(&config).0;
    assert!(settled > 100, "{settled}");
    let url = config.database.clone().unwrap().url;
    let mut holder = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let retired = |client: &mut postgres::Client| -> i64 {
        client
            .query_one(
                "SELECT COALESCE(sum(retired), 0)::bigint FROM onthefly_retired WHERE agent_name = 'scout'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    holder
        .batch_execute(
            "INSERT INTO onthefly_retired (agent_name, state, retired) VALUES ('scout', 'trained', 0) \
             ON CONFLICT DO NOTHING",
        )
        .unwrap();
    let before = retired(&mut holder);
    let mut lock = holder.transaction().unwrap();
    lock.execute(
        "SELECT retired FROM onthefly_retired WHERE agent_name = 'scout' AND state = 'trained' FOR UPDATE",
        &[],
    )
    .unwrap();
    let later = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 2 * 3_600_000;
    let passes: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = PostgresStore::connect(&url, 1, Duration::from_secs(5)).unwrap();
                let policy = RetentionConfig {
                    max_age_hours: Some(1.0),
                    max_settled_per_agent: None,
                    interval_ms: 1,
                };
                store.retire(&policy, later).unwrap()
            })
        })
        .collect();
    // Both passes reach the counter's row (or the pass lock) meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    lock.commit().unwrap();
    let deleted: u64 = passes.into_iter().map(|p| p.join().unwrap()).sum();
    assert_eq!(deleted, settled as u64);
    assert_eq!(retired(&mut holder) - before, settled, "deleted rows counted twice");
}

#[test]
fn the_default_keeps_a_day() {
    let policy = StoreConfig::default().retention;
    assert_eq!((policy.max_age_hours, policy.max_settled_per_agent), (Some(24.0), None));
}
