//! The global instance, and every handle still open, stop by themselves
//! when the process exits without `otf_shutdown` / `otf_coordinator_free`
//! (a Python script that returns, a C `exit`, a Rust `main` that ends with
//! an instance still running).
//!
//! Left to the process's end, the update thread would run on while
//! libtorch's static objects are destroyed (a crash, or a panic inside an
//! operator lookup) and the store's writer would be killed with rows still
//! queued. An `atexit` handler registered when the first instance starts runs
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
use std::sync::{Arc, Once, Weak};

use parking_lot::Mutex;

use crate::coordinator::Coordinator;

extern "C" {
    /// The C library's `atexit`.
    fn atexit(callback: extern "C" fn()) -> c_int;
}

static REGISTERED: Once = Once::new();

/// The handles' coordinators, weakly: a freed handle's is gone by itself.
static HANDLES: Mutex<Vec<Weak<Coordinator>>> = Mutex::new(Vec::new());

/// Registers [`shut_down_all`] to run at process exit (once per process).
pub(crate) fn shut_down_global_at_exit() {
    REGISTERED.call_once(|| {
        // SAFETY: `atexit` only stores the pointer; `shut_down_all` is a
        // plain function that lives as long as the program and never unwinds.
        if unsafe { atexit(shut_down_all) } != 0 {
            tracing::warn!("atexit refused the exit handler: shut instances down before the process exits");
        }
    });
}

/// Also shuts `coordinator` (a handle's) down at process exit, unless it is
/// gone by then.
pub(crate) fn shut_down_at_exit(coordinator: &Arc<Coordinator>) {
    let mut handles = HANDLES.lock();
    handles.retain(|h| h.strong_count() > 0);
    handles.push(Arc::downgrade(coordinator));
    drop(handles);
    shut_down_global_at_exit();
}

/// Shuts the global instance and every open handle down; a panic is caught
/// (it must not unwind into the C library's exit).
extern "C" fn shut_down_all() {
    let _ = std::panic::catch_unwind(|| {
        if let Ok(coordinator) = crate::global::global() {
            coordinator.shutdown();
        }
        // Upgraded outside the registry's lock: a shutdown takes its time.
        let open: Vec<Arc<Coordinator>> = HANDLES.lock().iter().filter_map(Weak::upgrade).collect();
        for coordinator in open {
            coordinator.shutdown();
        }
    });
}
