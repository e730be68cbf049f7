//! Containing panics: gradient-mode helpers that survive them, and the text of
//! a caught panic.
//!
//! `tch::no_grad` restores the thread's gradient mode only when its closure
//! returns; a panic inside it (caught further up) would leave gradients off
//! for every later update on that thread. These helpers use an RAII guard, or
//! set the mode explicitly, so a caught panic cannot leak a mode.

/// Runs `f` with gradient tracking off, restoring the previous mode on return
/// and on unwind.
pub(crate) fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _guard = tch::no_grad_guard();
    f()
}

/// Runs `f` with gradient tracking on, whatever mode an earlier (perhaps
/// panicked) computation left on this thread.
pub(crate) fn with_grad<T>(f: impl FnOnce() -> T) -> T {
    tch::with_grad(f)
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
