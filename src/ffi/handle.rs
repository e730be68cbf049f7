//! Training systems the caller opens and closes: an opaque
//! `OtfCoordinator` handle per [`Coordinator`], in the style of rustls-ffi.
//!
//! `otf_coordinator_new` opens one, every `otf_coordinator_<operation>`
//! acts on the handle it is given (the same operation, arguments and codes
//! as the global `otf_<operation>`), `otf_coordinator_shutdown` stops it
//! and `otf_coordinator_free` stops it and releases it. A handle may be
//! used from many threads at once; only `otf_coordinator_free` must come
//! after every other call on it has returned (a call racing a shutdown is
//! fine: it gets `OTF_RESULT_SHUT_DOWN`). A handle still open when the
//! process exits is shut down by the exit handler, as the global one is.

use std::ffi::c_char;
use std::sync::Arc;

use super::args::{optional_str, required_out};
use super::ops;
use super::result::{guard, FfiError, OtfResult};
use super::OtfFeedback;
use crate::config::Config;
use crate::coordinator::Coordinator;

/// A training system opened with `otf_coordinator_new` (opaque to C).
pub struct OtfCoordinator {
    coordinator: Arc<Coordinator>,
}

/// The coordinator behind a handle.
///
/// # Safety
/// `handle` is NULL or a handle from `otf_coordinator_new` not freed yet.
unsafe fn coordinator<'a>(handle: *const OtfCoordinator) -> Result<&'a Coordinator, FfiError> {
    // SAFETY: the caller's guarantee, passed on unchanged.
    let coordinator = unsafe { any_process(handle) }?;
    coordinator.check_process()?;
    Ok(coordinator)
}

/// The handle's coordinator, also in a process forked from the one that
/// opened it (where only shutting it down is allowed, and does nothing).
///
/// # Safety
/// As for [`coordinator`].
unsafe fn any_process<'a>(handle: *const OtfCoordinator) -> Result<&'a Coordinator, FfiError> {
    // SAFETY: the caller's guarantee: NULL (refused here) or a live handle.
    match unsafe { handle.as_ref() } {
        Some(handle) => Ok(&handle.coordinator),
        None => Err(FfiError::null("coordinator")),
    }
}

/// Opens a training system of its own (not the global one).
///
/// `config_json`: a JSON object with any fields of the configuration
/// (missing ones keep their defaults, unknown ones are an error), or NULL to
/// read it from the environment, as `otf_initialize` does. Two open handles
/// must not share a `data_dir` (the second is refused while the first is
/// open). On success `*out_coordinator` receives the handle, which the
/// caller releases with `otf_coordinator_free`.
///
/// # Safety
/// `config_json` is NULL or a NUL-terminated string valid during the call;
/// `out_coordinator` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_new(
    config_json: *const c_char,
    out_coordinator: *mut *mut OtfCoordinator,
) -> OtfResult {
    guard(|| {
        required_out(out_coordinator, "out_coordinator")?;
        // SAFETY: the caller's guarantee on `config_json`.
        let json = unsafe { optional_str(config_json, "config_json") }?;
        let config = match json {
            Some(json) => Config::from_json(json),
            None => Config::from_env(),
        }
        .map_err(|e| FfiError::from(crate::Error::from(e)))?;
        let coordinator = Arc::new(Coordinator::new(config)?);
        super::exit::shut_down_at_exit(&coordinator, Coordinator::shutdown);
        let handle = Box::into_raw(Box::new(OtfCoordinator { coordinator }));
        // SAFETY: checked not NULL above; the caller guarantees it is valid for a write.
        unsafe { out_coordinator.write(handle) };
        Ok(())
    })
}

/// Stops the training system and releases the handle: lets a running update
/// finish, writes everything to the store and joins every thread, as
/// `otf_shutdown` does. NULL is fine. No call on the handle may be running
/// or follow. It returns nothing: afterwards `otf_last_error_message` says
/// what was lost on the way out (operations the store could neither write
/// nor spool), the empty string when nothing was; `otf_coordinator_shutdown`
/// first returns it as a code.
///
/// # Safety
/// `coordinator` is NULL or a handle from `otf_coordinator_new` not freed
/// yet, with no call on it in progress.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_free(coordinator: *mut OtfCoordinator) {
    if coordinator.is_null() {
        return;
    }
    // SAFETY: the caller guarantees the handle came from `Box::into_raw` in
    // `otf_coordinator_new`, was not freed, and is not in use.
    let handle = unsafe { Box::from_raw(coordinator) };
    if handle.coordinator.is_forked_copy() {
        // Its threads and store writer are the parent's: dropping it here
        // would wait for threads this process does not have.
        std::mem::forget(handle);
        return;
    }
    // Shutting down joins threads and writes files: a panic there must not
    // unwind into C. A loss is the thread's last error.
    let _ = guard(|| {
        let outcome = handle.coordinator.shutdown_checked();
        drop(handle);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "a handle freed without otf_coordinator_shutdown lost operations");
        }
        outcome?;
        Ok(())
    });
}

/// Stops the training system behind the handle (see `otf_shutdown`); the
/// handle stays valid until `otf_coordinator_free`, and calls that add
/// anything get `OTF_RESULT_SHUT_DOWN`. Safe while other threads call it.
/// `OTF_RESULT_STORE` when accepted operations could be neither written nor
/// spooled (a failing database and a full disk) and are lost; it has
/// stopped all the same.
///
/// # Safety
/// `coordinator` is NULL or a handle from `otf_coordinator_new` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_shutdown(coordinator: *const OtfCoordinator) -> OtfResult {
    guard(|| {
        // SAFETY: the caller's guarantee on the handle.
        unsafe { any_process(coordinator) }?.shutdown_checked()?;
        Ok(())
    })
}

/// `otf_add_training_example` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call; `out_id` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_add_training_example(
    coordinator: *const OtfCoordinator,
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
                self::coordinator(coordinator)?,
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

/// `otf_add_prediction_feedback` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call; `out_outcome` is NULL or valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_add_prediction_feedback(
    coordinator: *const OtfCoordinator,
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
                self::coordinator(coordinator)?,
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

/// `otf_add_user_correction` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call; `out_id` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_add_user_correction(
    coordinator: *const OtfCoordinator,
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
                self::coordinator(coordinator)?,
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

/// `otf_predict` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call; `out_json` is NULL or valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_predict(
    coordinator: *const OtfCoordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    input_text: *const c_char,
    out_json: *mut *mut c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe {
        ops::predict(
            self::coordinator(coordinator)?,
            agent_name,
            task_type,
            input_text,
            out_json,
        )
    })
}

/// `otf_list_checkpoints` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call; `out_json` is NULL or valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_list_checkpoints(
    coordinator: *const OtfCoordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    out_json: *mut *mut c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::list_checkpoints(self::coordinator(coordinator)?, agent_name, task_type, out_json) })
}

/// `otf_register_task` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_register_task(
    coordinator: *const OtfCoordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    kind: *const c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::register_task(self::coordinator(coordinator)?, agent_name, task_type, kind) })
}

/// `otf_force_update_agent` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; `agent_name` is NULL or
/// NUL-terminated and valid during the call.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_force_update_agent(
    coordinator: *const OtfCoordinator,
    agent_name: *const c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::force_update_agent(self::coordinator(coordinator)?, agent_name) })
}

/// `otf_get_training_status` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; `out_json` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_get_training_status(
    coordinator: *const OtfCoordinator,
    out_json: *mut *mut c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::get_training_status(self::coordinator(coordinator)?, out_json) })
}

/// `otf_metrics_text` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; `out_text` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_metrics_text(
    coordinator: *const OtfCoordinator,
    out_text: *mut *mut c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::metrics_text(self::coordinator(coordinator)?, out_text) })
}

/// `otf_rollback_model` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_rollback_model(
    coordinator: *const OtfCoordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    version: u64,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::rollback_model(self::coordinator(coordinator)?, agent_name, task_type, version) })
}

/// `otf_flush` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_flush(coordinator: *const OtfCoordinator, timeout_ms: u32) -> OtfResult {
    // SAFETY: the caller's guarantee on the handle.
    guard(|| ops::flush(unsafe { self::coordinator(coordinator) }?, timeout_ms))
}

/// `otf_wait_for_idle` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_wait_for_idle(
    coordinator: *const OtfCoordinator,
    timeout_ms: u32,
) -> OtfResult {
    // SAFETY: the caller's guarantee on the handle.
    guard(|| ops::wait_for_idle(unsafe { self::coordinator(coordinator) }?, timeout_ms))
}

/// `otf_export_dataset` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call; `out_count` is NULL or valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_export_dataset(
    coordinator: *const OtfCoordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    path: *const c_char,
    out_count: *mut u64,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::export_dataset(self::coordinator(coordinator)?, agent_name, task_type, path, out_count) })
}

/// `otf_next_for_review` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; every string is NULL or
/// NUL-terminated and valid during the call; `out_json` is NULL or valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_next_for_review(
    coordinator: *const OtfCoordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    n: u32,
    out_json: *mut *mut c_char,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe { ops::next_for_review(self::coordinator(coordinator)?, agent_name, task_type, n, out_json) })
}

/// `otf_label` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle; `output_json` is NULL or
/// NUL-terminated and valid during the call; `out_id` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_label(
    coordinator: *const OtfCoordinator,
    review_id: u64,
    output_json: *const c_char,
    priority_level: i32,
    out_id: *mut u64,
) -> OtfResult {
    // SAFETY: the caller's guarantees, passed on unchanged.
    guard(|| unsafe {
        ops::label(
            self::coordinator(coordinator)?,
            review_id,
            output_json,
            priority_level,
            out_id,
        )
    })
}

/// `otf_skip` on a handle.
///
/// # Safety
/// `coordinator` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn otf_coordinator_skip(coordinator: *const OtfCoordinator, review_id: u64) -> OtfResult {
    // SAFETY: the caller's guarantee on the handle.
    guard(|| ops::skip(unsafe { self::coordinator(coordinator) }?, review_id))
}
