//! A Rust program whose global instance is never shut down (its `main`
//! ends, or it calls `std::process::exit`) loses nothing and exits cleanly:
//! the exit handler `initialize_online_training` registered stops the
//! threads and stores every accepted example.

mod common;

use std::process::Command;

use common::small_config;
use onthefly::{add_training_example, force_update_agent, initialize_online_training, Config, NewExample, Target};

/// Set in the child process: its data folder.
const CHILD_DIR: &str = "ONTHEFLY_TEST_GLOBAL_EXIT_DIR";

/// Examples the child adds (updates of the default classifier run meanwhile).
const EXAMPLES: usize = 20_000;

fn config(dir: &str) -> Config {
    Config {
        data_dir: dir.into(),
        text_model: onthefly::TextModelConfig::default(),
        ..small_config()
    }
}

/// In the child: starts the global instance, adds, asks for an update and
/// exits without shutting down. Elsewhere returns at once.
fn exiting_child_if_asked() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    initialize_online_training(config(&dir)).unwrap();
    for i in 0..EXAMPLES {
        let outlet = ["bbc", "cnn", "reuters"][i % 3];
        let text = format!("article {i} from {outlet} about topic {}", i % 17);
        add_training_example(NewExample::new("scout", "news", text, Target::Label(outlet.into()))).unwrap();
    }
    force_update_agent("scout").unwrap();
    std::process::exit(0);
}

#[test]
fn a_rust_program_exiting_without_shutdown_stores_every_example() {
    exiting_child_if_asked();
    for _ in 0..5 {
        let dir = common::fresh_data_dir();
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_rust_program_exiting_without_shutdown_stores_every_example",
                "--nocapture",
            ])
            .env(CHILD_DIR, &dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{}: {stderr}", output.status);
        assert!(!stderr.contains("panicked"), "{stderr}");
        let conn = rusqlite::Connection::open(dir.join(onthefly::store::SQLITE_FILE)).unwrap();
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM training_examples", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, EXAMPLES as i64, "accepted examples missing from the store");
    }
}
