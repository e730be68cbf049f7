//! What every C function returns, and the words that go with a failure.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;
use crate::store::StoreError;

/// The outcome of a call. `OTF_RESULT_OK` is success; every other value names
/// one kind of failure, and `otf_last_error_message()` says what was wrong.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtfResult {
    /// Success; out-parameters were written.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument was refused: out of range, NaN or infinite, too long, empty,
    /// not JSON, of the wrong kind for the task.
    InvalidArgument = 3,
    /// The configuration JSON (or an environment variable) was refused, or
    /// its `data_dir` is in use by another running coordinator.
    InvalidConfig = 4,
    /// `otf_initialize` has not been called (successfully) yet.
    NotInitialized = 5,
    /// `otf_initialize` was called before with a different configuration.
    AlreadyInitialized = 6,
    /// `otf_shutdown` was called; the system takes nothing more.
    ShutDown = 7,
    /// No example was ever added for this agent.
    UnknownAgent = 8,
    /// The agent has no trained model for this task yet.
    NoModel = 9,
    /// The store (PostgreSQL or SQLite) failed, or could not be opened.
    Store = 10,
    /// A model failed (libtorch error, a user model's error).
    Model = 11,
    /// A checkpoint could not be read or written.
    Checkpoint = 12,
    /// The wait (flush, idle) ended before the work did.
    Timeout = 13,
    /// Something else failed inside the library (a thread could not start).
    Internal = 14,
    /// The library panicked; the panic was caught and did not reach C.
    Panic = 15,
    /// A file named by the caller could not be written.
    Io = 16,
    /// The process was forked from the one that started the instance: its
    /// threads did not survive the fork; start one in this process instead.
    Forked = 17,
}

/// A failure on its way to C: its code and its message.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub code: OtfResult,
    pub message: String,
}

impl FfiError {
    pub fn new(code: OtfResult, message: impl Into<String>) -> FfiError {
        FfiError {
            code,
            message: message.into(),
        }
    }

    pub fn null(argument: &str) -> FfiError {
        FfiError::new(OtfResult::NullParameter, format!("{argument} must not be NULL"))
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        let code = match &e {
            Error::Invalid(_) | Error::ModelExists { .. } | Error::Review(_) => OtfResult::InvalidArgument,
            Error::Config(_) | Error::DataDirInUse { .. } => OtfResult::InvalidConfig,
            Error::UnknownAgent(_) => OtfResult::UnknownAgent,
            Error::NoModel { .. } => OtfResult::NoModel,
            Error::AlreadyInitialized => OtfResult::AlreadyInitialized,
            Error::NotInitialized => OtfResult::NotInitialized,
            Error::ShutDown => OtfResult::ShutDown,
            Error::Model(_) => OtfResult::Model,
            Error::Checkpoint(_) => OtfResult::Checkpoint,
            Error::Store(StoreError::FlushTimeout(_)) => OtfResult::Timeout,
            Error::Store(_) => OtfResult::Store,
            Error::Io { .. } => OtfResult::Io,
            Error::Thread { .. } => OtfResult::Internal,
            Error::Forked { .. } => OtfResult::Forked,
        };
        FfiError::new(code, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message with a NUL inside still reads as text in C.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // During thread teardown the slot may be gone: then there is nobody to read it.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// Runs a C function's body: a panic becomes `OTF_RESULT_PANIC`, an error its
/// code; the thread's last error message is set (emptied on success).
pub(crate) fn guard(body: impl FnOnce() -> Result<(), FfiError>) -> OtfResult {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        Err(FfiError::new(
            OtfResult::Panic,
            format!("internal panic (caught): {}", crate::grad::panic_message(&*panic)),
        ))
    });
    match outcome {
        Ok(()) => {
            set_last_error("");
            OtfResult::Ok
        }
        Err(e) => {
            set_last_error(&e.message);
            e.code
        }
    }
}

/// The message of the last call on the calling thread: what was wrong when
/// it failed, the empty string when it succeeded (or before any call).
///
/// The string belongs to the library and stays valid until the next `otf_`
/// call on the same thread; copy it to keep it. Do not free it.
#[no_mangle]
pub extern "C" fn otf_last_error_message() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No exported function is known to panic, so the mechanism every one
    /// of them runs in is tested directly: a panic is `OTF_RESULT_PANIC`
    /// with its message, and the thread's next call starts clean.
    #[test]
    fn a_panic_inside_a_call_is_otf_result_panic_with_its_message() {
        let code = guard(|| panic!("a model's forward pass failed"));
        assert_eq!(code, OtfResult::Panic);
        let message = LAST_ERROR.with(|m| m.borrow().to_string_lossy().into_owned());
        assert!(
            message.contains("internal panic (caught)") && message.contains("a model's forward pass failed"),
            "{message}"
        );
        assert_eq!(guard(|| Ok(())), OtfResult::Ok);
        assert!(LAST_ERROR.with(|m| m.borrow().is_empty()));
    }
}
