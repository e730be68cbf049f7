//! A shutdown that could neither write nor spool what it had accepted says
//! so: the database and the spool's disk both failing (here, a file size
//! limit the child process runs under), the operations still queued are
//! dropped, and `shutdown_checked` (what the C ABI's and the Python
//! package's shutdowns return) is `StoreError::Lost`. It returned nothing
//! and the C shutdown returned OK, though most of a stream was gone.

mod common;

use common::{fresh_data_dir, small_config};
use onthefly::store::StoreError;
use onthefly::{Config, Coordinator, Error, NewExample, Target};

/// Set in the child process, which runs under the file size limit.
const CHILD_DIR: &str = "ONTHEFLY_TEST_SHUTDOWN_LOSS_DIR";

/// In the child: hands in 4,000 summaries of ~1 kB (kept for export:
/// nothing trains), prints what its checked shutdown says and returns
/// `true`. Elsewhere returns `false` at once.
fn child_if_asked() -> bool {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return false;
    };
    let c = Coordinator::new(Config {
        data_dir: dir.into(),
        ..small_config()
    })
    .unwrap();
    let padding = "the council met on Tuesday and approved the budget ".repeat(20);
    for i in 0..4_000 {
        let summary = serde_json::json!({ "summary": format!("{i}: {padding}") });
        c.add_training_example(NewExample::new(
            "synthesizer",
            "summary",
            format!("article {i}"),
            Target::Json(summary),
        ))
        .unwrap();
    }
    match c.shutdown_checked() {
        Ok(()) => println!("SHUTDOWN ok"),
        Err(Error::Store(StoreError::Lost { operations, reason })) => println!("SHUTDOWN lost {operations}: {reason}"),
        Err(other) => println!("SHUTDOWN other {other}"),
    }
    true
}

/// Runs this test in a child process under a file size limit of `blocks`
/// (SIGXFSZ ignored, so a write past it fails instead of killing the
/// child); returns what the child printed.
fn run_child(blocks: Option<u64>) -> String {
    let dir = fresh_data_dir();
    let limit = blocks.map_or(String::new(), |b| format!("ulimit -f {b}; "));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("trap '' XFSZ; {limit}exec \"$0\" \"$@\""))
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_shutdown_that_lost_operations_says_so",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // The harness prints the test's name on the same line.
    let said = stdout
        .find("SHUTDOWN")
        .map(|at| stdout[at..].lines().next().unwrap_or_default());
    said.unwrap_or_else(|| {
        panic!(
            "the child said nothing: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
    .to_string()
}

#[test]
fn a_shutdown_that_lost_operations_says_so() {
    if child_if_asked() {
        return;
    }
    assert_eq!(run_child(None), "SHUTDOWN ok", "without a limit nothing is lost");
    let said = run_child(Some(1_000));
    assert!(said.starts_with("SHUTDOWN lost "), "{said}");
    let lost: u64 = said["SHUTDOWN lost ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(lost > 0 && lost <= 4_000, "{said}");
    eprintln!("{said}");
}
