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
//! Some of libtorch's static objects are made lazily, at their first use
//! (the JIT-compiled CPU kernels of `embedding_bag`, during the first
//! updates), so their destructors are registered after the handler and run
//! before it: an update still running then called freed code (a crash in
//! about 1 exit in 10 of a Python script over ctypes). The handler is
//! therefore registered again after each of the first updates
//! ([`register_again_after_update`]): the latest registration runs first, and
//! later ones find nothing left to do.
//!
//! Nothing runs on `kill -9`, on a crash or on a signal the process does
//! not handle: there the store's own durability applies
//! (docs/operations.md, "Persistence and what is kept when the process ends").

use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, Weak};

use parking_lot::Mutex;

extern "C" {
    /// The C library's `atexit`.
    fn atexit(callback: extern "C" fn()) -> c_int;
}

static REGISTERED: Once = Once::new();

/// How many times the handler is registered so far.
static REGISTRATIONS: AtomicUsize = AtomicUsize::new(0);

/// Registrations at most: the first updates of every model kind of a
/// process make libtorch's lazy objects; later ones make none.
const MAX_REGISTRATIONS: usize = 64;

/// The handler's work is done once, by whichever registration runs first.
static SHUT_DOWN: Once = Once::new();

/// Registers the handler with the C library; false when it refused.
fn register() -> bool {
    // SAFETY: `atexit` only stores the pointer; `shut_down_all` is a plain
    // function that lives as long as the program and never unwinds.
    let registered = unsafe { atexit(shut_down_all) } == 0;
    if registered {
        REGISTRATIONS.fetch_add(1, Ordering::AcqRel);
    }
    registered
}

/// One instance's shutdown at exit. It holds its instance weakly, so a
/// freed handle's is gone by itself; the registry names no instance type, so
/// it imports nothing of what it stops.
struct ExitHook {
    /// Whether the instance is still alive (a dead hook is pruned).
    alive: Box<dyn Fn() -> bool + Send>,
    /// Shuts the instance down if it is still alive.
    shut_down: Box<dyn Fn() + Send>,
}

/// The open handles' shutdowns.
static HANDLES: Mutex<Vec<ExitHook>> = Mutex::new(Vec::new());

/// What shuts the global instance down, handed in by `global.rs` so that
/// this module need not import it (the two would import each other).
static GLOBAL_SHUTDOWN: Mutex<Option<fn()>> = Mutex::new(None);

/// Registers `shut_down_global` (which stops the process's global instance)
/// and [`shut_down_all`] to run at process exit.
pub(crate) fn shut_down_global_at_exit(shut_down_global: fn()) {
    *GLOBAL_SHUTDOWN.lock() = Some(shut_down_global);
    register_once();
}

/// Registers [`shut_down_all`] to run at process exit (once per process).
fn register_once() {
    REGISTERED.call_once(|| {
        if register() {
            crate::runtime::run_after_updates(register_again_after_update);
        } else {
            tracing::warn!("atexit refused the exit handler: shut instances down before the process exits");
        }
    });
}

/// After an update: registers the handler again (up to
/// [`MAX_REGISTRATIONS`] times), so that it runs before the destructors of
/// what libtorch made during that update. Only where the handler is in use
/// (the global instance or a C handle was started).
fn register_again_after_update() {
    let done = REGISTRATIONS.load(Ordering::Acquire);
    if REGISTERED.is_completed() && (1..MAX_REGISTRATIONS).contains(&done) {
        register();
    }
}

/// Also runs `shut_down` on `instance` (a handle's) at process exit, unless
/// the instance is gone by then.
pub(crate) fn shut_down_at_exit<T: Send + Sync + 'static>(instance: &Arc<T>, shut_down: fn(&T)) {
    let weak = Arc::downgrade(instance);
    let probe: Weak<T> = weak.clone();
    let hook = ExitHook {
        alive: Box::new(move || probe.strong_count() > 0),
        shut_down: Box::new(move || {
            if let Some(instance) = weak.upgrade() {
                shut_down(&instance);
            }
        }),
    };
    let mut handles = HANDLES.lock();
    handles.retain(|h| (h.alive)());
    handles.push(hook);
    drop(handles);
    register_once();
}

/// Shuts the global instance and every open handle down, the first time it
/// runs; a panic is caught (it must not unwind into the C library's exit).
extern "C" fn shut_down_all() {
    let _ = std::panic::catch_unwind(|| SHUT_DOWN.call_once(shut_down_every_instance));
}

fn shut_down_every_instance() {
    // Copied out of its lock: the shutdown takes its time.
    let shut_down_global = *GLOBAL_SHUTDOWN.lock();
    if let Some(shut_down_global) = shut_down_global {
        shut_down_global();
    }
    // Taken out of the registry's lock: a shutdown takes its time.
    let open: Vec<ExitHook> = std::mem::take(&mut *HANDLES.lock());
    for hook in open {
        (hook.shut_down)();
    }
}
