//! What the dense heads (the MiniLM head, a user's TorchScript module)
//! share: the loss of their outputs against label or score targets, and the
//! answers read from their outputs.

use tch::{Device, Kind, Reduction, Tensor};

use super::{outputs_from_probabilities, tensor_on, ModelOutput};
use crate::base::{ModelError, Target, TargetKind, TrainingExample};

/// The mean loss of `outputs` (a row per example: logits for a label task,
/// a score in 0..=1 for a score task) against the examples' targets: the
/// negative log-likelihood of the softmax, or the squared error. `column`
/// maps a label to its output's column (or the error for one the head has
/// no column for).
pub(super) fn dense_loss(
    outputs: &Tensor,
    examples: &[&TrainingExample],
    target_kind: TargetKind,
    column: impl Fn(&str) -> Result<i64, ModelError>,
) -> Result<Tensor, ModelError> {
    let device = outputs.device();
    if target_kind == TargetKind::Label {
        let targets = examples
            .iter()
            .map(|e| column(e.expected_output.as_label()?))
            .collect::<Result<Vec<i64>, _>>()?;
        let targets = tensor_on(&targets, device)?;
        let log_probs = outputs.f_log_softmax(-1, Kind::Float)?;
        return Ok(log_probs.f_nll_loss(&targets, None::<Tensor>, Reduction::Mean, -100)?);
    }
    let targets = examples
        .iter()
        .map(|e| Ok(e.expected_output.as_score()? as f32))
        .collect::<Result<Vec<f32>, ModelError>>()?;
    let targets = tensor_on(&targets, device)?.f_reshape([-1, 1])?;
    Ok(outputs.f_mse_loss(&targets, Reduction::Mean)?)
}

/// The answers `outputs` give (as for [`dense_loss`]): for a label task the
/// most probable of `labels` with the whole distribution, for a score task
/// the score.
pub(super) fn dense_answers(
    outputs: &Tensor,
    target_kind: TargetKind,
    labels: &[String],
) -> Result<Vec<ModelOutput>, ModelError> {
    let outputs = outputs.f_to_device(Device::Cpu)?;
    if target_kind == TargetKind::Label {
        return outputs_from_probabilities(&outputs.f_softmax(-1, Kind::Float)?, labels);
    }
    let scores = Vec::<f32>::try_from(outputs.f_reshape([-1])?)?;
    Ok(score_answers(scores))
}

/// A score model's answers: each score (clamped to 0..=1) with confidence
/// 0.5, since such a model does not estimate its own uncertainty and 0.5
/// says "unknown" to the feedback rules.
pub(super) fn score_answers(scores: impl IntoIterator<Item = f32>) -> Vec<ModelOutput> {
    scores
        .into_iter()
        .map(|s| ModelOutput {
            output: Target::Score(f64::from(s).clamp(0.0, 1.0)),
            confidence: 0.5,
            distribution: Vec::new(),
        })
        .collect()
}
