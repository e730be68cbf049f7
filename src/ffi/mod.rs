//! The C ABI. The only module with `unsafe` code. The header
//! `include/onthefly.h` is generated from this module by `build.rs`
//! (cbindgen).
//!
//! Two ways to reach a training system, with the same operations:
//!
//! - the global one, as the original exposed it (`otf_initialize`,
//!   `otf_add_training_example`, …; see [`crate::global`]): one per process;
//! - handles (`otf_coordinator_new`, `otf_coordinator_add_training_example`,
//!   …, `otf_coordinator_free`; see `handle.rs`): as many as the caller opens,
//!   each with its own `data_dir`, opened and closed at will (tests,
//!   notebooks, a process serving two configurations).
//!
//! Conventions, the same for every function:
//!
//! - Each returns an `OtfResult`: `OTF_RESULT_OK`, or the code of what
//!   failed; `otf_last_error_message()` then says what was wrong, in words.
//! - Each runs inside `catch_unwind`: a panic becomes `OTF_RESULT_PANIC`,
//!   never an abort or an unwind into C.
//! - Strings are NUL-terminated UTF-8, borrowed for the call only. Arguments
//!   documented as optional may be NULL; any other NULL is
//!   `OTF_RESULT_NULL_PARAMETER`.
//! - Outputs and targets are JSON text: a label is a JSON string (`"\"bbc\""`),
//!   a score a number (`"0.7"`), token tags an array of strings, anything
//!   else free JSON.
//! - Out-parameters are written only on success. A string the library
//!   returns belongs to the caller, who frees it with `otf_string_free`.
#![deny(unsafe_op_in_unsafe_fn)]

mod args;
pub(crate) mod exit;
#[cfg(test)]
mod free_tests;
mod handle;
mod ops;
mod result;
#[cfg(test)]
mod tests;

use std::ffi::c_char;
use std::time::Duration;

use args::{optional_str, write_optional};
pub use handle::*;
use result::{guard, FfiError};
pub use result::{otf_last_error_message, OtfResult};

use crate::config::Config;
use crate::global;

/// What became of a prediction handed in with `otf_add_prediction_feedback`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtfFeedback {
    /// The answer was known and the prediction worth learning: it is a training example now.
    Learned = 0,
    /// The answer is not known and the prediction was uncertain: it waits for a label.
    AwaitingLabel = 1,
    /// Confident enough and not wrong: nothing to learn.
    NotNeeded = 2,
    /// The answer is not known and the prediction was uncertain, but the
    /// task's review queue is full of more useful ones: not kept.
    NotKept = 3,
}

/// The library's version as a NUL-terminated string, such as `"0.1.0"`.
///
/// The string is static: the caller must not free it.
#[no_mangle]
pub extern "C" fn otf_version() -> *const c_char {
    // A constant, so nothing here can panic.
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Starts the global training system.
///
/// `config_json`: a JSON object with any fields of the configuration (missing
/// ones keep their defaults, unknown ones are an error), or NULL to read it
/// from the environment (`TRAINING_*`, `DATABASE_URL` or `POSTGRES_*`,
/// `<AGENT>_MODEL_PATH`). Calling it again with the same configuration
/// succeeds; with another it is `OTF_RESULT_ALREADY_INITIALIZED`.
///
/// # Safety
/// `config_json` is NULL or a NUL-terminated string valid during the call.
#[no_mangle]
pub unsafe extern "C" fn otf_initialize(config_json: *const c_char) -> OtfResult {
    guard(|| {
        // SAFETY: the caller's guarantee on `config_json`.
        let json = unsafe { optional_str(config_json, "config_json") }?;
        let config = match json {
            Some(json) => Config::from_json(json),
            None => Config::from_env(),
        }
        .map_err(|e| FfiError::from(crate::Error::from(e)))?;
        global::initialize_online_training(config)?;
        Ok(())
    })
}

/// The configuration the environment gives (`TRAINING_*`, `DATABASE_URL` or
/// `POSTGRES_*`, `<AGENT>_MODEL_PATH`: what `otf_initialize(NULL)` uses) as
/// a JSON object of every field, which a caller may change and hand to
/// `otf_initialize` or `otf_coordinator_new` (the Python package puts its
/// keyword arguments on top of it). A malformed value is an error naming
/// its variable; whether the values fit together (a threshold not above
/// the buffer, say) is checked where the configuration is used, after the
/// caller's changes. On success `*out_json` receives it, freed with
/// `otf_string_free`.
///
/// # Safety
/// `out_json` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_config_from_environment(out_json: *mut *mut c_char) -> OtfResult {
    guard(|| {
        args::required_out(out_json, "out_json")?;
        let config = Config::from_env_unchecked().map_err(|e| FfiError::from(crate::Error::from(e)))?;
        // SAFETY: checked not NULL above; the caller guarantees it is valid for a write.
        unsafe { hand_out_config(&config, out_json) }
    })
}

/// The configuration the environment gives with `settings_json` (a JSON
/// object of fields, nested objects merged field by field; NULL for none)
/// on top, checked as a whole, as a JSON object of every field to hand to
/// `otf_initialize` or `otf_coordinator_new` (the Python package's keyword
/// arguments go through it). A value out of range is named by its variable
/// when the environment set it and `settings_json` did not; `POSTGRES_*`
/// without `POSTGRES_HOST` is an error unless `settings_json` sets
/// `database`. On success `*out_json` receives it, freed with
/// `otf_string_free`.
///
/// # Safety
/// `settings_json` is NULL or NUL-terminated and valid during the call;
/// `out_json` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_config_from_environment_with(
    settings_json: *const c_char,
    out_json: *mut *mut c_char,
) -> OtfResult {
    guard(|| {
        args::required_out(out_json, "out_json")?;
        // SAFETY: the caller's guarantee on `settings_json`.
        let settings = unsafe { args::optional_str(settings_json, "settings_json") }?.unwrap_or("{}");
        let config = Config::from_env_with(settings).map_err(|e| FfiError::from(crate::Error::from(e)))?;
        // SAFETY: checked not NULL above; the caller guarantees it is valid for a write.
        unsafe { hand_out_config(&config, out_json) }
    })
}

/// Writes `config` as JSON to `*out_json`, for the caller to free with
/// `otf_string_free`.
///
/// # Safety
/// `out_json` is not NULL and valid for a write.
unsafe fn hand_out_config(config: &Config, out_json: *mut *mut c_char) -> Result<(), FfiError> {
    let json = serde_json::to_string(config)
        .map_err(|e| FfiError::new(OtfResult::Internal, format!("configuration not serialisable: {e}")))?;
    // SAFETY: the caller's guarantee on `out_json`.
    unsafe { out_json.write(args::into_c_string(json)) };
    Ok(())
}

/// Adds a labelled example (the original's `add_training_example`).
///
/// `expected_output_json` is the correct output as JSON; `uncertainty_score`
/// and `importance_score` lie in 0..=1 (the original's default is 0.5);
/// `correction_priority` is 0..=3 (2 and 3 trigger an immediate update).
/// `source_url` and `user_feedback` are optional. On success `*out_id`
/// (optional) receives the example's id.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call; `out_id`
/// is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_add_training_example(
    agent_name: *const c_char,
    task_type: *const c_char,
    input_text: *const c_char,
    expected_output_json: *const c_char,
    uncertainty_score: f64,
    importance_score: f64,
    correction_priority: i32,
    source_url: *const c_char,
    user_feedback: *const c_char,
    out_id: *mut u64,
) -> OtfResult {
    guard(|| {
        // SAFETY: the caller's guarantees, passed on unchanged.
        unsafe {
            ops::add_training_example(
                global::global()?,
                agent_name,
                task_type,
                input_text,
                expected_output_json,
                uncertainty_score,
                importance_score,
                correction_priority,
                source_url,
                user_feedback,
                out_id,
            )
        }
    })
}

/// Hands in a prediction an agent made (the original's
/// `add_prediction_feedback`): `confidence_score` in 0..=1,
/// `actual_output_json` the correct output when known (optional),
/// `source_url` optional. On success `*out_outcome` (optional) says whether it
/// became a training example, waits for a label, was not needed, or was not
/// kept (the full review queue dropped it at once: `OTF_FEEDBACK_NOT_KEPT`).
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_outcome` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_add_prediction_feedback(
    agent_name: *const c_char,
    task_type: *const c_char,
    input_text: *const c_char,
    predicted_output_json: *const c_char,
    confidence_score: f64,
    actual_output_json: *const c_char,
    source_url: *const c_char,
    out_outcome: *mut OtfFeedback,
) -> OtfResult {
    guard(|| {
        // SAFETY: the caller's guarantees, passed on unchanged.
        unsafe {
            ops::add_prediction_feedback(
                global::global()?,
                agent_name,
                task_type,
                input_text,
                predicted_output_json,
                confidence_score,
                actual_output_json,
                source_url,
                out_outcome,
            )
        }
    })
}

/// Adds a person's correction (the original's `add_user_correction`):
/// `priority` 0..=3 (the original's default is 2, which triggers an immediate
/// update; 3 is critical), `user_feedback` optional. On success `*out_id`
/// (optional) receives the example's id.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call; `out_id`
/// is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_add_user_correction(
    agent_name: *const c_char,
    task_type: *const c_char,
    input_text: *const c_char,
    incorrect_output_json: *const c_char,
    correct_output_json: *const c_char,
    priority_level: i32,
    user_feedback: *const c_char,
    out_id: *mut u64,
) -> OtfResult {
    guard(|| {
        // SAFETY: the caller's guarantees, passed on unchanged.
        unsafe {
            ops::add_user_correction(
                global::global()?,
                agent_name,
                task_type,
                input_text,
                incorrect_output_json,
                correct_output_json,
                priority_level,
                user_feedback,
                out_id,
            )
        }
    })
}

/// Predicts with the live model of (agent, task). On success `*out_json`
/// receives `{"output": <JSON>, "confidence": <0..1>, "model_version": <n>,
/// "review_id": <n or null>}`, which the caller frees with `otf_string_free`
/// (`review_id`: the review item an unsure prediction was queued as; an
/// example of the same input takes it out of the queue). A label comes back
/// in the form the task's labels were given (`true`, `3`, `"bbc"`).
/// `OTF_RESULT_NO_MODEL` until the task's first update.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_json` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_predict(
    agent_name: *const c_char,
    task_type: *const c_char,
    input_text: *const c_char,
    out_json: *mut *mut c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::predict(global::global()?, agent_name, task_type, input_text, out_json) })
}

/// The checkpoint versions of (agent, task) kept on disk, oldest first, as a
/// JSON array: `[{"version": 3, "serving": true, "metric": "accuracy",
/// "before": 0.61, "after": 0.64, "created_ms": 1765000000000}, ...]`
/// (`metric`, `before`, `after`, `created_ms` are null without a store
/// record). The versions `otf_rollback_model` can restore. The caller frees
/// `*out_json` with `otf_string_free`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_json` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_list_checkpoints(
    agent_name: *const c_char,
    task_type: *const c_char,
    out_json: *mut *mut c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::list_checkpoints(global::global()?, agent_name, task_type, out_json) })
}

/// Declares what a task learns, before or after its first example: `kind`
/// is `"classifier"` (labels: strings, booleans or integer class ids),
/// `"regressor"` (scores in 0..=1; integers 0 and 1 are scores too),
/// `"tagger"` (one tag per word) or `"kept"` (any JSON, stored for export,
/// not trained). Without a declaration the task's first target fixes it.
/// Declaring it again with the same kind does nothing; with another kind it
/// is `OTF_RESULT_INVALID_ARGUMENT`. The declaration is stored.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call.
#[no_mangle]
pub unsafe extern "C" fn otf_register_task(
    agent_name: *const c_char,
    task_type: *const c_char,
    kind: *const c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantee on each string, passed on unchanged.
    guard(|| unsafe { ops::register_task(global::global()?, agent_name, task_type, kind) })
}

/// Queues an update of the agent now, whatever its buffer holds.
///
/// # Safety
/// `agent_name` is NULL or NUL-terminated and valid during the call.
#[no_mangle]
pub unsafe extern "C" fn otf_force_update_agent(agent_name: *const c_char) -> OtfResult {
    // SAFETY: the caller's guarantee on `agent_name`, passed on unchanged.
    guard(|| unsafe { ops::force_update_agent(global::global()?, agent_name) })
}

/// The training status as JSON (the original's fields plus per-agent detail
/// and the store's state). On success `*out_json` receives it; the caller frees
/// it with `otf_string_free`.
///
/// # Safety
/// `out_json` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_get_training_status(out_json: *mut *mut c_char) -> OtfResult {
    // SAFETY: the caller's guarantee on `out_json`, passed on unchanged.
    guard(|| unsafe { ops::get_training_status(global::global()?, out_json) })
}

/// The training system in Prometheus' text exposition format (see the Rust
/// `Coordinator::metrics_text`). On success `*out_text` receives it; the
/// caller frees it with `otf_string_free`.
///
/// # Safety
/// `out_text` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_metrics_text(out_text: *mut *mut c_char) -> OtfResult {
    // SAFETY: the caller's guarantee on `out_text`, passed on unchanged.
    guard(|| unsafe { ops::metrics_text(global::global()?, out_text) })
}

/// Restores a kept checkpoint version of (agent, task) as the live model (for
/// a quality problem a person reported); recorded in the history.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call.
#[no_mangle]
pub unsafe extern "C" fn otf_rollback_model(
    agent_name: *const c_char,
    task_type: *const c_char,
    version: u64,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::rollback_model(global::global()?, agent_name, task_type, version) })
}

/// Returns once everything accepted before the call is durable (in the
/// database or the fsynced spool), or `OTF_RESULT_TIMEOUT` after `timeout_ms`.
#[no_mangle]
pub extern "C" fn otf_flush(timeout_ms: u32) -> OtfResult {
    guard(|| ops::flush(global::global()?, timeout_ms))
}

/// Waits until no update is queued or running; `OTF_RESULT_TIMEOUT` if that
/// takes longer than `timeout_ms`.
#[no_mangle]
pub extern "C" fn otf_wait_for_idle(timeout_ms: u32) -> OtfResult {
    guard(|| ops::wait_for_idle(global::global()?, timeout_ms))
}

/// Stops the global training system: lets a running update finish, writes
/// everything to the store and joins every thread. Later calls that add
/// anything get `OTF_RESULT_SHUT_DOWN`; it cannot be started again in this
/// process. `OTF_RESULT_STORE` when accepted operations could be neither
/// written nor spooled (a failing database and a full disk) and are lost;
/// it has stopped all the same.
#[no_mangle]
pub extern "C" fn otf_shutdown() -> OtfResult {
    guard(|| {
        global::shutdown()?;
        Ok(())
    })
}

/// Adopts the original JustNews system's database (see the Rust
/// `onthefly::store::adopt_original_database`): moves its tables aside
/// (`justnews_<name>`), creates this library's schema and imports the
/// original's examples as buffered examples, with their timestamps. Call it
/// once before `otf_initialize` on that database; calling it again imports
/// nothing twice. `database_url` is a PostgreSQL URL, or NULL for the one
/// the environment names (`DATABASE_URL` or `POSTGRES_*`). On success
/// `*out_imported` (optional) receives the number of rows this call imported.
///
/// # Safety
/// `database_url` is NULL or NUL-terminated and valid during the call;
/// `out_imported` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_adopt_original_database(database_url: *const c_char, out_imported: *mut u64) -> OtfResult {
    guard(|| {
        // SAFETY: the caller's guarantee on `database_url`.
        let url = match unsafe { optional_str(database_url, "database_url") }? {
            Some(url) => url.to_string(),
            None => Config::from_env()
                .map_err(|e| FfiError::from(crate::Error::from(e)))?
                .database
                .map(|d| d.url)
                .ok_or_else(|| {
                    FfiError::new(
                        OtfResult::InvalidConfig,
                        "no database configured: pass a URL or set DATABASE_URL (or POSTGRES_*)",
                    )
                })?,
        };
        let adoption = crate::store::adopt_original_database(&url, Duration::from_secs(10))
            .map_err(|e| FfiError::from(crate::Error::from(e)))?;
        // SAFETY: the caller's guarantee on `out_imported`.
        unsafe { write_optional(out_imported, adoption.imported) };
        Ok(())
    })
}

/// Frees a string the library returned (`otf_predict`,
/// `otf_get_training_status`). NULL is fine; freeing a string twice, or one
/// the library did not return, is undefined behaviour.
///
/// # Safety
/// `s` is NULL or a string returned by this library and not freed yet.
#[no_mangle]
pub unsafe extern "C" fn otf_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: the caller guarantees `s` came from `CString::into_raw` here and was not freed.
    drop(unsafe { std::ffi::CString::from_raw(s) });
}

/// Writes the examples of (agent, task) to `path` as a JSON-lines fine-tuning
/// data set (see the Rust `Coordinator::export_dataset`); on success
/// `*out_count` (optional) receives the number of examples written.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_count` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_export_dataset(
    agent_name: *const c_char,
    task_type: *const c_char,
    path: *const c_char,
    out_count: *mut u64,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::export_dataset(global::global()?, agent_name, task_type, path, out_count) })
}

/// Hands out up to `n` predictions of (agent, task) waiting for a label, the
/// most useful first. On success `*out_json` receives a JSON array of
/// `{"review_id", "input_text", "predicted_output", "confidence",
/// "usefulness", ...}` objects (possibly empty; `predicted_output` is the
/// JSON of the output, as `otf_predict` gives it), freed with
/// `otf_string_free`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_json` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_next_for_review(
    agent_name: *const c_char,
    task_type: *const c_char,
    n: u32,
    out_json: *mut *mut c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::next_for_review(global::global()?, agent_name, task_type, n, out_json) })
}

/// Labels a review item with `output_json` (JSON, of the prediction's kind):
/// it becomes a user correction with `priority` 0..=3, or 2 when `priority`
/// is -1. On success `*out_id` (optional) receives the correction's id.
/// Labelling an item twice, or an unknown id, is `OTF_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `output_json` is NULL or NUL-terminated and valid during the call;
/// `out_id` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_label(
    review_id: u64,
    output_json: *const c_char,
    priority_level: i32,
    out_id: *mut u64,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::label(global::global()?, review_id, output_json, priority_level, out_id) })
}

/// Returns a handed-out review item to its queue, unlabelled. An item not
/// handed out, labelled already, or unknown is `OTF_RESULT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn otf_skip(review_id: u64) -> OtfResult {
    guard(|| ops::skip(global::global()?, review_id))
}
