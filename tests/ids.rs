//! An id, once returned, never names another example: not even after the
//! process is killed (`kill -9`) with ids handed out whose rows had not
//! reached the store yet.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{example, small_config};
use onthefly::{Config, Coordinator};

/// Set in the child process that adds examples until it is killed.
const CHILD_DIR: &str = "ONTHEFLY_TEST_IDS_CHILD_DIR";

/// Ids the parent reads before it kills the child.
const SEEN_BEFORE_KILL: usize = 3_000;

/// In the child (this test binary, started with [`CHILD_DIR`] set): adds
/// examples as fast as it can and prints each returned id. Elsewhere
/// returns at once.
fn adding_child_if_asked() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let c = Coordinator::new(Config {
        data_dir: dir.into(),
        ..small_config()
    })
    .unwrap();
    for i in 0.. {
        let receipt = c
            .add_training_example(example("scout", i, ["bbc", "cnn"][i % 2]))
            .unwrap();
        println!("ID {}", receipt.id.0);
    }
}

#[test]
fn ids_returned_before_a_kill_are_never_handed_out_again() {
    adding_child_if_asked();
    let data_dir = common::fresh_data_dir();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ids_returned_before_a_kill_are_never_handed_out_again",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, &data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut returned = Vec::new();
    while returned.len() < SEEN_BEFORE_KILL {
        let line = lines.next().expect("the child ended before the kill").unwrap();
        if let Some(id) = line.strip_prefix("ID ") {
            returned.push(id.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap();
    // What it printed before the kill landed was returned too.
    returned.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ID ")?.parse::<u64>().ok()),
    );
    child.wait().unwrap();
    let highest = *returned.iter().max().unwrap();

    let conn = rusqlite::Connection::open(data_dir.join(onthefly::store::SQLITE_FILE)).unwrap();
    let stored: i64 = conn
        .query_row("SELECT COALESCE(max(id), 0) FROM training_examples", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    eprintln!(
        "{} ids returned (highest {highest}), highest stored {stored}",
        returned.len()
    );

    let c = Coordinator::new(Config {
        data_dir,
        ..small_config()
    })
    .unwrap();
    for i in 0..10 {
        let id = c.add_training_example(example("scout", i, "bbc")).unwrap().id.0;
        assert!(
            id > highest,
            "id {id} handed out again after the restart (returned before the kill up to {highest}, stored up to {stored})"
        );
    }
}
