//! The global instance stops by itself when the process exits without
//! `otf_shutdown` (a Python script that returns, a C `exit`, a Rust `main`
//! that ends with the instance still running).
//!
//! Left to the process's end, the update thread would run on while
//! libtorch's static objects are destroyed (a crash, or a panic inside an
//! operator lookup) and the store's writer would be killed with rows still
//! queued. An `atexit` handler registered when the instance starts runs
//! before those destructors: handlers and static destructors run in the
//! reverse order of their registration, and libtorch registered its own
//! when it was loaded, before any instance could start. The handler does
//! what `otf_shutdown` does: it lets a running update finish, stops the
//! threads, writes the serving versions and flushes every accepted row.
//!
//! Nothing runs on `kill -9`, on a crash or on a signal the process does
//! not handle: there the store's own durability applies (README,
//! "What is kept when the process ends").

use std::ffi::c_int;
use std::sync::Once;

extern "C" {
    /// The C library's `atexit`.
    fn atexit(callback: extern "C" fn()) -> c_int;
}

static REGISTERED: Once = Once::new();

/// Registers [`shut_down_global`] to run at process exit (once per process).
pub(crate) fn shut_down_at_exit() {
    REGISTERED.call_once(|| {
        // SAFETY: `atexit` only stores the pointer; `shut_down_global` is a
        // plain function that lives as long as the program and never unwinds.
        if unsafe { atexit(shut_down_global) } != 0 {
            tracing::warn!("atexit refused the exit handler: call otf_shutdown before the process exits");
        }
    });
}

/// Shuts the global instance down if it runs; a panic is caught (it must
/// not unwind into the C library's exit).
extern "C" fn shut_down_global() {
    let _ = std::panic::catch_unwind(|| {
        if let Ok(coordinator) = crate::global::global() {
            coordinator.shutdown();
        }
    });
}
