//! The body of every operation the C ABI offers on a training system, once:
//! the global functions (`otf_add_training_example`, …) and the handle
//! functions (`otf_coordinator_add_training_example`, …) both read their
//! arguments and call these with the coordinator they act on.

use std::ffi::c_char;
use std::time::Duration;

use super::args::{
    into_c_string, optional_json, optional_str, priority, required_json, required_out, required_str, write_optional,
};
use super::result::{FfiError, OtfResult};
use super::OtfFeedback;
use crate::base::{kind_of_learner, ExampleId, NewExample};
use crate::coordinator::{Coordinator, FeedbackOutcome};
use crate::feedback::{PredictionFeedback, UserCorrection};

/// See `otf_add_training_example`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call; `out_id`
/// is NULL or valid for a write.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn add_training_example(
    c: &Coordinator,
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
) -> Result<(), FfiError> {
    // SAFETY (all reads below): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    let expected = unsafe { required_json(expected_output_json, "expected_output_json") }?;
    let _one_at_a_time = c.first_labels_guard(agent, task);
    let (expected_output, form) = c.read_json_target(agent, task, "expected_output", expected)?;
    let example = NewExample {
        agent_name: agent.to_string(),
        task_type: task.to_string(),
        input_text: unsafe { required_str(input_text, "input_text") }?.to_string(),
        expected_output,
        uncertainty_score,
        importance_score,
        source_url: unsafe { optional_str(source_url, "source_url") }?
            .unwrap_or_default()
            .to_string(),
        user_feedback: unsafe { optional_str(user_feedback, "user_feedback") }?.map(str::to_string),
        correction_priority: priority(correction_priority)?,
    };
    let receipt = c.add_training_example(example)?;
    c.fix_label_form(agent, task, form);
    // SAFETY: the caller's guarantee on `out_id`.
    unsafe { write_optional(out_id, receipt.id.0) };
    Ok(())
}

/// See `otf_add_prediction_feedback`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_outcome` is NULL or valid for a write.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn add_prediction_feedback(
    c: &Coordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    input_text: *const c_char,
    predicted_output_json: *const c_char,
    confidence_score: f64,
    actual_output_json: *const c_char,
    source_url: *const c_char,
    out_outcome: *mut OtfFeedback,
) -> Result<(), FfiError> {
    // SAFETY (all reads below): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    let predicted = unsafe { required_json(predicted_output_json, "predicted_output_json") }?;
    let _one_at_a_time = c.first_labels_guard(agent, task);
    let (predicted_output, predicted_form) = c.read_json_target(agent, task, "predicted_output", predicted)?;
    let actual = match unsafe { optional_json(actual_output_json, "actual_output_json") }? {
        Some(value) => Some(c.read_json_target(agent, task, "actual_output", value)?),
        None => None,
    };
    let form = actual.as_ref().map_or(predicted_form, |(_, form)| *form);
    let feedback = PredictionFeedback {
        agent_name: agent.to_string(),
        task_type: task.to_string(),
        input_text: unsafe { required_str(input_text, "input_text") }?.to_string(),
        predicted_output,
        actual_output: actual.map(|(target, _)| target),
        confidence_score,
        source_url: unsafe { optional_str(source_url, "source_url") }?
            .unwrap_or_default()
            .to_string(),
    };
    let outcome = c.add_prediction_feedback(feedback)?;
    c.fix_label_form(agent, task, form);
    let outcome = match outcome {
        FeedbackOutcome::Learned { .. } => OtfFeedback::Learned,
        FeedbackOutcome::AwaitingLabel { .. } => OtfFeedback::AwaitingLabel,
        FeedbackOutcome::NotNeeded { .. } => OtfFeedback::NotNeeded,
        FeedbackOutcome::NotKept { .. } => OtfFeedback::NotKept,
    };
    // SAFETY: the caller's guarantee on `out_outcome`.
    unsafe { write_optional(out_outcome, outcome) };
    Ok(())
}

/// See `otf_add_user_correction`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call; `out_id`
/// is NULL or valid for a write.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn add_user_correction(
    c: &Coordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    input_text: *const c_char,
    incorrect_output_json: *const c_char,
    correct_output_json: *const c_char,
    priority_level: i32,
    user_feedback: *const c_char,
    out_id: *mut u64,
) -> Result<(), FfiError> {
    // SAFETY (all reads below): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    let incorrect = unsafe { required_json(incorrect_output_json, "incorrect_output_json") }?;
    let correct = unsafe { required_json(correct_output_json, "correct_output_json") }?;
    let _one_at_a_time = c.first_labels_guard(agent, task);
    let (correct_output, form) = c.read_json_target(agent, task, "correct_output", correct)?;
    let (incorrect_output, _) = c.read_json_target(agent, task, "incorrect_output", incorrect)?;
    let correction = UserCorrection {
        agent_name: agent.to_string(),
        task_type: task.to_string(),
        input_text: unsafe { required_str(input_text, "input_text") }?.to_string(),
        incorrect_output,
        correct_output,
        priority: priority(priority_level)?,
        user_feedback: unsafe { optional_str(user_feedback, "user_feedback") }?.map(str::to_string),
    };
    let receipt = c.add_user_correction(correction)?;
    c.fix_label_form(agent, task, form);
    // SAFETY: the caller's guarantee on `out_id`.
    unsafe { write_optional(out_id, receipt.id.0) };
    Ok(())
}

/// See `otf_predict`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_json` is NULL or valid for a write.
pub(super) unsafe fn predict(
    c: &Coordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    input_text: *const c_char,
    out_json: *mut *mut c_char,
) -> Result<(), FfiError> {
    required_out(out_json, "out_json")?;
    // SAFETY (all reads below): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    let input = unsafe { required_str(input_text, "input_text") }?;
    let prediction = c.predict(agent, task, input)?;
    let json = serde_json::json!({
        "output": c.target_json(agent, task, &prediction.output),
        "confidence": prediction.confidence,
        "model_version": prediction.model_version,
        "review_id": prediction.review_id.map(|id| id.0),
    });
    // SAFETY: checked not NULL above; the caller guarantees it is valid for a write.
    unsafe { out_json.write(into_c_string(json.to_string())) };
    Ok(())
}

/// See `otf_force_update_agent`.
///
/// # Safety
/// `agent_name` is NULL or NUL-terminated and valid during the call.
pub(super) unsafe fn force_update_agent(c: &Coordinator, agent_name: *const c_char) -> Result<(), FfiError> {
    // SAFETY: the caller's guarantee on `agent_name`.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    c.force_update_agent(agent)?;
    Ok(())
}

/// See `otf_list_checkpoints`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_json` is NULL or valid for a write.
pub(super) unsafe fn list_checkpoints(
    c: &Coordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    out_json: *mut *mut c_char,
) -> Result<(), FfiError> {
    required_out(out_json, "out_json")?;
    // SAFETY (both reads): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    let kept = c.list_checkpoints(agent, task)?;
    let json = serde_json::to_string(&kept)
        .map_err(|e| FfiError::new(OtfResult::Internal, format!("checkpoint list: {e}")))?;
    // SAFETY: checked not NULL above; the caller guarantees it is valid for a write.
    unsafe { out_json.write(into_c_string(json)) };
    Ok(())
}

/// See `otf_register_task`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call.
pub(super) unsafe fn register_task(
    c: &Coordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    kind: *const c_char,
) -> Result<(), FfiError> {
    // SAFETY (all reads): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    let kind_name = unsafe { required_str(kind, "kind") }?;
    let kind = kind_of_learner(kind_name).ok_or_else(|| {
        FfiError::new(
            OtfResult::InvalidArgument,
            format!("kind must be classifier, regressor, tagger or kept; got {kind_name:?}"),
        )
    })?;
    c.register_task(agent, task, kind)?;
    Ok(())
}

/// See `otf_get_training_status`.
///
/// # Safety
/// `out_json` is NULL or valid for a write.
pub(super) unsafe fn get_training_status(c: &Coordinator, out_json: *mut *mut c_char) -> Result<(), FfiError> {
    required_out(out_json, "out_json")?;
    let json = serde_json::to_string(&c.get_training_status())
        .map_err(|e| FfiError::new(OtfResult::Internal, format!("status not serialisable: {e}")))?;
    // SAFETY: checked not NULL above; the caller guarantees it is valid for a write.
    unsafe { out_json.write(into_c_string(json)) };
    Ok(())
}

/// See `otf_metrics_text`.
///
/// # Safety
/// `out_text` is NULL or valid for a write.
pub(super) unsafe fn metrics_text(c: &Coordinator, out_text: *mut *mut c_char) -> Result<(), FfiError> {
    required_out(out_text, "out_text")?;
    // SAFETY: checked not NULL above; the caller guarantees it is valid for a write.
    unsafe { out_text.write(into_c_string(c.metrics_text())) };
    Ok(())
}

/// See `otf_rollback_model`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call.
pub(super) unsafe fn rollback_model(
    c: &Coordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    version: u64,
) -> Result<(), FfiError> {
    // SAFETY (both reads): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    c.rollback_model(agent, task, version)?;
    Ok(())
}

/// See `otf_flush`.
pub(super) fn flush(c: &Coordinator, timeout_ms: u32) -> Result<(), FfiError> {
    c.flush(Duration::from_millis(u64::from(timeout_ms)))?;
    Ok(())
}

/// See `otf_wait_for_idle`.
pub(super) fn wait_for_idle(c: &Coordinator, timeout_ms: u32) -> Result<(), FfiError> {
    if c.wait_for_idle(Duration::from_millis(u64::from(timeout_ms))) {
        Ok(())
    } else {
        Err(FfiError::new(
            OtfResult::Timeout,
            format!("updates still running after {timeout_ms} ms"),
        ))
    }
}

/// See `otf_export_dataset`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_count` is NULL or valid for a write.
pub(super) unsafe fn export_dataset(
    c: &Coordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    path: *const c_char,
    out_count: *mut u64,
) -> Result<(), FfiError> {
    // SAFETY (all reads): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    let path = unsafe { required_str(path, "path") }?;
    let written = c.export_dataset(agent, task, std::path::Path::new(path))?;
    // SAFETY: the caller's guarantee on `out_count`.
    unsafe { write_optional(out_count, written as u64) };
    Ok(())
}

/// See `otf_next_for_review`.
///
/// # Safety
/// Every string is NULL or NUL-terminated and valid during the call;
/// `out_json` is NULL or valid for a write.
pub(super) unsafe fn next_for_review(
    c: &Coordinator,
    agent_name: *const c_char,
    task_type: *const c_char,
    n: u32,
    out_json: *mut *mut c_char,
) -> Result<(), FfiError> {
    required_out(out_json, "out_json")?;
    // SAFETY (both reads): the caller's guarantee on each string.
    let agent = unsafe { required_str(agent_name, "agent_name") }?;
    let task = unsafe { required_str(task_type, "task_type") }?;
    let items = c.next_for_review(agent, task, n as usize)?;
    let not_serialisable = |e: serde_json::Error| FfiError::new(OtfResult::Internal, format!("review item: {e}"));
    let items = items
        .iter()
        .map(|item| {
            let mut json = serde_json::to_value(item).map_err(not_serialisable)?;
            // The prediction as the JSON of its value, as `otf_predict` gives it.
            json["predicted_output"] = c.target_json(agent, task, &item.predicted_output);
            Ok(json)
        })
        .collect::<Result<Vec<_>, FfiError>>()?;
    let json = serde_json::to_string(&items).map_err(not_serialisable)?;
    // SAFETY: checked not NULL above; the caller guarantees it is valid for a write.
    unsafe { out_json.write(into_c_string(json)) };
    Ok(())
}

/// See `otf_label`.
///
/// # Safety
/// `output_json` is NULL or NUL-terminated and valid during the call;
/// `out_id` is NULL or valid for a write.
pub(super) unsafe fn label(
    c: &Coordinator,
    review_id: u64,
    output_json: *const c_char,
    priority_level: i32,
    out_id: *mut u64,
) -> Result<(), FfiError> {
    // SAFETY: the caller's guarantee on `output_json`.
    let output = unsafe { required_json(output_json, "output_json") }?;
    let priority = match priority_level {
        -1 => None,
        p => Some(priority(p)?),
    };
    let receipt = c.label_json(ExampleId(review_id), output, priority)?;
    // SAFETY: the caller's guarantee on `out_id`.
    unsafe { write_optional(out_id, receipt.id.0) };
    Ok(())
}

/// See `otf_skip`.
pub(super) fn skip(c: &Coordinator, review_id: u64) -> Result<(), FfiError> {
    c.skip(ExampleId(review_id))?;
    Ok(())
}
