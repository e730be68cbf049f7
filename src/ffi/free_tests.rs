//! `otf_coordinator_free` returns nothing, so a loss on the way out (the
//! operations a failing database and a full disk left unwritten) is said
//! by `otf_last_error_message` afterwards. The child process runs under a
//! file size limit, as `tests/shutdown_loss.rs` does for the Rust API.

use std::ffi::{CStr, CString};
use std::ptr;

use super::*;

/// Set in the child process.
const CHILD_DIR: &str = "ONTHEFLY_TEST_FREE_LOSS_DIR";
const NAME: &str = "ffi::free_tests::freeing_a_handle_that_lost_operations_says_so_in_the_last_error";

/// In the child: 4,000 summaries of ~1 kB through a handle (kept for
/// export: nothing trains), the handle freed without a shutdown, and the
/// last error message printed. Returns whether this is the child.
fn child_if_asked() -> bool {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return false;
    };
    let config = serde_json::json!({ "data_dir": dir, "device": "cpu" }).to_string();
    let config = CString::new(config).unwrap();
    let mut handle: *mut OtfCoordinator = ptr::null_mut();
    // SAFETY: a live string and out-parameter.
    assert_eq!(
        unsafe { otf_coordinator_new(config.as_ptr(), &mut handle) },
        OtfResult::Ok
    );
    let padding = "the council met on Tuesday and approved the budget ".repeat(20);
    let (agent, task) = (c"synthesizer", c"summary");
    for i in 0..4_000 {
        let input = CString::new(format!("article {i}")).unwrap();
        let summary = serde_json::json!({ "summary": format!("{i}: {padding}") }).to_string();
        let summary = CString::new(summary).unwrap();
        // SAFETY: a live handle and strings; optional arguments NULL.
        let code = unsafe {
            otf_coordinator_add_training_example(
                handle,
                agent.as_ptr(),
                task.as_ptr(),
                input.as_ptr(),
                summary.as_ptr(),
                0.5,
                0.5,
                0,
                ptr::null(),
                ptr::null(),
                ptr::null_mut(),
            )
        };
        assert_eq!(code, OtfResult::Ok);
    }
    // SAFETY: the handle opened above, no call on it in progress.
    unsafe { otf_coordinator_free(handle) };
    // SAFETY: the library's string, read before the next call.
    let said = unsafe { CStr::from_ptr(otf_last_error_message()) }
        .to_string_lossy()
        .into_owned();
    // To the parent, which reads the child's output.
    use std::io::Write;
    writeln!(std::io::stdout(), "FREED [{said}]").unwrap();
    true
}

/// This test in a child process under a file size limit of `blocks`;
/// returns the message the child printed.
fn run_child(blocks: Option<u64>) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-data")
        .join(format!("ffi-free-{}-{}", std::process::id(), blocks.unwrap_or(0)));
    let _ = std::fs::remove_dir_all(&dir);
    let limit = blocks.map_or(String::new(), |b| format!("ulimit -f {b}; "));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("trap '' XFSZ; {limit}exec \"$0\" \"$@\""))
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR, &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let said = stdout.find("FREED [").and_then(|at| {
        let rest = &stdout[at + "FREED [".len()..];
        rest.find(']').map(|end| rest[..end].to_string())
    });
    said.unwrap_or_else(|| {
        panic!(
            "the child said nothing: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn freeing_a_handle_that_lost_operations_says_so_in_the_last_error() {
    if child_if_asked() {
        return;
    }
    assert_eq!(run_child(None), "", "without a limit nothing is lost");
    let said = run_child(Some(1_000));
    assert!(said.contains("lost"), "{said}");
}
