//! Faults: the PostgreSQL server stops in the middle of a stream and comes
//! back; a process is killed with SIGKILL mid-stream (with the database up,
//! and while it is down). Each test runs its own cluster, so stopping it
//! disturbs no other test.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::db::{postgres_config, PrivateCluster};
use common::small_config;
use onthefly::store::ExampleState;
use onthefly::{Config, Coordinator, NewExample, StoreConfig, Target};

/// A summary for the synthesizer: no built-in model learns free JSON, so the
/// stream exercises the store alone (no training shares the two cores).
fn summary(i: usize) -> NewExample {
    NewExample::new(
        "synthesizer",
        "summary",
        format!("article {i}: the council met on Tuesday and approved the budget"),
        Target::Json(serde_json::json!({ "summary": format!("budget approved ({i})"), "words": 4 })),
    )
}

/// Faster reconnection attempts than the defaults, so a test's outage ends
/// soon after the server is back.
fn quick_retries(config: Config) -> Config {
    Config {
        store: StoreConfig {
            retry_max_ms: 500,
            connect_timeout_ms: 1_000,
            ..StoreConfig::default()
        },
        ..config
    }
}

#[test]
fn a_database_outage_mid_stream_loses_nothing_and_never_stalls_ingest() {
    const TOTAL: usize = 100_000;
    let cluster = PrivateCluster::start();
    let config = quick_retries(postgres_config(&cluster.url()));
    let c = Coordinator::new(config.clone()).unwrap();

    let mut longest = Duration::ZERO;
    let mut ids = Vec::with_capacity(TOTAL);
    let mut outage = None;
    let mut spooled_during_outage = 0;
    let mut added_before_outage = 0;
    let started = Instant::now();
    // To the millisecond, as examples are stamped: the first may be stamped
    // in the same millisecond, below an unrounded clock reading.
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let first_stamp = std::time::UNIX_EPOCH + std::time::Duration::from_millis(since_epoch.as_millis() as u64);
    for i in 0..TOTAL {
        if i == TOTAL / 5 {
            added_before_outage = ids.len();
            cluster.stop();
            outage = Some(Instant::now());
        }
        if i == TOTAL / 2 {
            // The server stays down a few seconds, however fast the stream.
            let down = outage.unwrap().elapsed();
            std::thread::sleep(Duration::from_secs(3).saturating_sub(down));
            // Everything since the stop waits in memory or in the spool.
            let store = c.get_training_status().store.unwrap();
            assert!(!store.connected, "the writer noticed the outage");
            assert!(store.last_error.is_some() && store.last_error_ms.is_some());
            // Ingest never waited for the database: the 30,000 adds since the
            // stop all returned with the server down, none of their
            // operations in the database (held in memory or spooled).
            let added_while_down = (ids.len() - added_before_outage) as u64;
            assert_eq!(added_while_down, (TOTAL / 2 - TOTAL / 5) as u64);
            assert!(store.received - store.written >= added_while_down, "{store:?}");
            spooled_during_outage = store.spooled;
            cluster.resume();
        }
        let t = Instant::now();
        let receipt = c.add_training_example(summary(i)).unwrap();
        longest = longest.max(t.elapsed());
        ids.push(receipt.id.0);
    }
    let ingest = started.elapsed();
    let outage_len = outage.unwrap().elapsed();
    c.flush(Duration::from_secs(120)).unwrap();
    // Durable now (database or spool); the spool drains into the database.
    let drained = common::wait_until(Duration::from_secs(120), || {
        let s = c.get_training_status().store.unwrap();
        s.connected && s.spooled == 0 && s.backlog == 0
    });
    let store = c.get_training_status().store.unwrap();
    assert!(drained, "the backlog was not written: {store:?}");
    println!(
        "{TOTAL} examples in {ingest:.2?} (server down from 20 % to 50 % of the stream, at least 3 s; {outage_len:.1?} from the stop to the end); \
         longest add_training_example {longest:.2?}; {spooled_during_outage} operations in the spool at the restart; \
         written {} operations, rejected {}",
        store.written, store.rejected
    );
    assert!(
        spooled_during_outage > 0,
        "the backlog beyond 10,000 operations went to the spool"
    );
    assert!(store.connected);
    assert_eq!((store.backlog, store.spooled, store.rejected), (0, 0, 0));
    // The outage is over, and so is its error.
    assert_eq!((store.last_error, store.last_error_ms), (None, None));

    let rows = c.store().unwrap().examples(Some("synthesizer")).unwrap();
    assert_eq!(rows.len(), TOTAL, "every example stored exactly once");
    let stored: HashSet<u64> = rows.iter().map(|s| s.example.id.0).collect();
    assert_eq!(stored.len(), TOTAL);
    assert!(ids.iter().all(|id| stored.contains(id)));
    assert!(rows.iter().all(|s| s.state == ExampleState::Kept));
    // Field by field: what was replayed from memory and from the spool is
    // what was handed in.
    let index: std::collections::HashMap<u64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for row in &rows {
        let (e, sent) = (&row.example, summary(index[&row.example.id.0]));
        assert_eq!(
            (&e.agent_name, &e.task_type, &e.input_text, &e.expected_output),
            (
                &sent.agent_name,
                &sent.task_type,
                &sent.input_text,
                &sent.expected_output
            ),
            "row {}",
            e.id.0
        );
        assert_eq!(
            (e.uncertainty_score, e.importance_score, e.correction_priority),
            (sent.uncertainty_score, sent.importance_score, sent.correction_priority)
        );
        assert_eq!(
            (&e.source_url, &e.user_feedback),
            (&sent.source_url, &sent.user_feedback)
        );
        assert!(
            e.timestamp >= first_stamp && e.timestamp <= std::time::SystemTime::now(),
            "row {}",
            e.id.0
        );
    }
    assert_eq!(
        c.get_training_status().agents["synthesizer"].examples_kept,
        TOTAL as u64
    );
}

/// Set in the child process that streams examples until it is killed.
const CHILD_CONFIG: &str = "ONTHEFLY_TEST_STREAM_CHILD_CONFIG";

/// In a crash test's child process (its own test binary, started with
/// [`CHILD_CONFIG`] set): streams until it is killed. Elsewhere returns at
/// once.
fn streaming_child_if_asked() {
    let Ok(json) = std::env::var(CHILD_CONFIG) else { return };
    let config: Config = serde_json::from_str(&json).unwrap();
    let c = Coordinator::new(config).unwrap();
    println!("READY");
    // Waits for the parent to prepare (stop the server) and say go.
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    for i in 0.. {
        let id = c.add_training_example(summary(i)).unwrap().id;
        if i > 0 && i % 2_000 == 0 {
            // The promise under test: after flush returns, everything before it survives.
            c.flush(Duration::from_secs(60)).unwrap();
            println!("FLUSHED {}", id.0);
        }
    }
    unreachable!("streams until killed");
}

/// Starts the streaming child (test `test` of this binary, which calls
/// [`streaming_child_if_asked`] first); once it is ready, calls `between` and lets it
/// stream; kills it (SIGKILL) after it reported `flushes` flushes; returns
/// the last flushed id.
fn stream_then_kill(test: &str, config: &Config, flushes: usize, mut between: impl FnMut()) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(CHILD_CONFIG, serde_json::to_string(config).unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut go = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut flushed = 0;
    let mut seen = 0;
    while let Some(Ok(line)) = lines.next() {
        // libtest prints "test <name> ... " before the test's first line.
        if line.trim_end().ends_with("READY") {
            between();
            writeln!(go, "GO").unwrap();
        }
        if let Some(id) = line.trim().strip_prefix("FLUSHED ") {
            flushed = id.parse().unwrap();
            seen += 1;
            if seen == flushes {
                break;
            }
        }
    }
    // Whatever the child is doing now (adding, writing a batch, spooling).
    std::thread::sleep(Duration::from_millis(23));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(flushed > 0, "the child flushed nothing");
    flushed
}

fn assert_everything_flushed_survives(config: Config, flushed: u64) {
    let c = Coordinator::new(config).unwrap();
    let rows = c.store().unwrap().examples(Some("synthesizer")).unwrap();
    let stored: HashSet<u64> = rows.iter().map(|s| s.example.id.0).collect();
    let missing: Vec<u64> = (1..=flushed).filter(|id| !stored.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} flushed examples lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(stored.len(), rows.len(), "no example stored twice");
    println!("flushed through id {flushed}; {} stored after the restart", rows.len());
    // The restarted coordinator goes on with fresh ids.
    let next = c.add_training_example(summary(0)).unwrap().id.0;
    assert!(next > *stored.iter().max().unwrap());
}

#[test]
fn a_kill_mid_stream_keeps_everything_flushed_in_sqlite() {
    streaming_child_if_asked();
    let config = quick_retries(small_config());
    let flushed = stream_then_kill(
        "a_kill_mid_stream_keeps_everything_flushed_in_sqlite",
        &config,
        3,
        || {},
    );
    assert_everything_flushed_survives(config, flushed);
}

#[test]
fn a_kill_mid_stream_keeps_everything_flushed_in_postgres() {
    streaming_child_if_asked();
    let cluster = PrivateCluster::start();
    let config = quick_retries(postgres_config(&cluster.url()));
    let flushed = stream_then_kill(
        "a_kill_mid_stream_keeps_everything_flushed_in_postgres",
        &config,
        3,
        || {},
    );
    assert_everything_flushed_survives(config, flushed);
}

#[test]
fn a_kill_during_an_outage_keeps_everything_flushed_in_the_spool() {
    streaming_child_if_asked();
    let cluster = PrivateCluster::start();
    let config = quick_retries(postgres_config(&cluster.url()));
    // The server stops as soon as the child has started: everything it
    // flushes goes to the spool.
    let flushed = stream_then_kill(
        "a_kill_during_an_outage_keeps_everything_flushed_in_the_spool",
        &config,
        2,
        || cluster.stop(),
    );
    let spool = config.data_dir.join("spool/store-spool.jsonl");
    assert!(
        std::fs::metadata(&spool).unwrap().len() > 0,
        "the child spooled its backlog"
    );
    cluster.resume();
    // The next start replays the spool before anything else.
    assert_everything_flushed_survives(config.clone(), flushed);
    assert_eq!(
        std::fs::metadata(&spool).unwrap().len(),
        0,
        "the spool is empty once replayed"
    );
}

/// Set in the child process that only starts (replaying the spool) and
/// waits to be killed.
const REPLAY_CHILD_CONFIG: &str = "ONTHEFLY_TEST_REPLAY_CHILD_CONFIG";

/// In the replay test's second child: starts a coordinator, which replays
/// the spool first, then waits to be killed. Elsewhere returns at once.
fn replaying_child_if_asked() {
    let Ok(json) = std::env::var(REPLAY_CHILD_CONFIG) else {
        return;
    };
    let config: Config = serde_json::from_str(&json).unwrap();
    let _c = Coordinator::new(config).unwrap();
    println!("REPLAYED");
    std::thread::sleep(Duration::from_secs(600));
    unreachable!("killed before");
}

/// A process killed while it replays the spool (its operations half in the
/// database): the next start replays it again from the start, and every
/// flushed example is stored exactly once.
#[test]
fn a_kill_during_spool_replay_keeps_everything_flushed_exactly_once() {
    const TEST: &str = "a_kill_during_spool_replay_keeps_everything_flushed_exactly_once";
    streaming_child_if_asked();
    replaying_child_if_asked();
    let cluster = PrivateCluster::start();
    let config = quick_retries(postgres_config(&cluster.url()));
    let flushed = stream_then_kill(TEST, &config, 4, || cluster.stop());
    let spool = config.data_dir.join("spool/store-spool.jsonl");
    // What the next start keeps of it: the kill may land in the middle of
    // an append, and opening the spool cuts off a torn last line.
    let content = std::fs::read(&spool).unwrap();
    let spooled = content.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
    assert!(spooled > 0, "the child spooled its backlog");
    cluster.resume();

    // Small batches, so the replay takes many transactions.
    let replaying = Config {
        store: StoreConfig {
            batch_size: 20,
            ..config.store.clone()
        },
        ..config.clone()
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
        .env(REPLAY_CHILD_CONFIG, serde_json::to_string(&replaying).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut client = postgres::Client::connect(&cluster.url(), postgres::NoTls).unwrap();
    let stored = |client: &mut postgres::Client| -> i64 {
        client
            .query_one(
                "SELECT CASE WHEN to_regclass('training_examples') IS NULL THEN 0 \
                 ELSE (SELECT count(*) FROM training_examples) END",
                &[],
            )
            .unwrap()
            .get(0)
    };
    // Killed once part of the spool is in the database and the spool file
    // still holds it all (it is emptied only after the whole replay).
    assert!(
        common::wait_until(Duration::from_secs(120), || stored(&mut client) > 0),
        "the replay wrote nothing"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = stored(&mut client);
    assert_eq!(
        std::fs::metadata(&spool).unwrap().len(),
        spooled,
        "the kill landed after the replay ({at_kill} rows stored)"
    );
    println!("killed with {at_kill} rows of the spool in the database");
    assert_everything_flushed_survives(config, flushed);
    assert_eq!(
        std::fs::metadata(&spool).unwrap().len(),
        0,
        "the spool is empty once replayed"
    );
}
