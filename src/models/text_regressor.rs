//! The built-in score regressor (scout `quality_assessment`, fact checker
//! `credibility_assessment`): the classifier's hashed linear layer over word
//! uni- and bi-grams with one output and a sigmoid, so every prediction lies
//! in 0..=1, trained by the same adaptive sparse steps (see
//! [`crate::optim`]). Its loss is the cross-entropy of the score taken as a
//! soft label, `−y·log p − (1−y)·log(1−p)`: convex in the weights, with the
//! gradient `(p − y)·x` that does not vanish where the sigmoid saturates (the
//! squared error's does). That log-likelihood is what its Fisher information
//! is taken of; it is measured by the mean absolute error.

use std::collections::BTreeMap;

use tch::{nn::VarStore, Device, Reduction, Tensor};

use super::hashed::{sigmoid_gradient, FeatureScale, HashedLinear, Steps};
use super::{
    read_metadata, tensor_on, AgentModel, Gradients, KnownScores, ModelKind, ModelOutput, Scored, TrainingSettings,
};
use crate::base::ModelError;
use crate::base::{Target, TargetKind, TrainingExample};
use crate::ewc::Fisher;
use crate::models::TextModelConfig;
use crate::optim::{Penalties, Touched};

/// A regressor of scores in 0..=1 over hashed n-grams.
#[derive(Debug)]
pub struct TextRegressor {
    layer: HashedLinear,
    config: TextModelConfig,
}

impl TextRegressor {
    /// A regressor predicting 0.5 for everything (zero weights; `seed` is
    /// kept for the model kinds that start at random).
    pub fn new(config: TextModelConfig, device: Device, seed: u64) -> Result<TextRegressor, ModelError> {
        let _ = seed;
        let layer = HashedLinear::zeros(device, config.hash_buckets, 1, FeatureScale::Mean)?;
        Ok(TextRegressor { layer, config })
    }

    /// A regressor with a checkpoint's weights and optimiser state (see
    /// [`AgentModel::metadata`]).
    pub fn from_checkpoint(
        device: Device,
        params: &BTreeMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> Result<TextRegressor, ModelError> {
        let config: TextModelConfig = read_metadata(&meta["config"], "a text regressor")?;
        let _guard = tch::no_grad_guard();
        let layer = HashedLinear::from_checkpoint(device, params, FeatureScale::Mean)?;
        Ok(TextRegressor { layer, config })
    }

    /// Scores before the sigmoid, `inputs × 1`.
    fn logits(&self, inputs: &[&str], sparse: bool) -> Result<Tensor, ModelError> {
        self.layer.forward(inputs, &self.config, sparse)
    }

    fn cross_entropy(&self, examples: &[&TrainingExample], sparse: bool) -> Result<Tensor, ModelError> {
        let (inputs, targets) = texts_and_scores(examples)?;
        let targets: Vec<f32> = targets.into_iter().map(|y| y as f32).collect();
        let targets = tensor_on(&targets, self.layer.vs.device())?.f_reshape([-1, 1])?;
        Ok(self.logits(&inputs, sparse)?.f_binary_cross_entropy_with_logits(
            &targets,
            None::<Tensor>,
            None::<Tensor>,
            Reduction::Mean,
        )?)
    }
}

impl AgentModel for TextRegressor {
    fn kind(&self) -> ModelKind {
        ModelKind::TextRegressor
    }

    fn target_kind(&self) -> TargetKind {
        TargetKind::Score
    }

    fn var_store(&self) -> &VarStore {
        &self.layer.vs
    }

    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        examples.iter().try_for_each(|e| e.expected_output.as_score().map(drop))
    }

    /// Sparse gradients are sparse in the weight table, as the classifier's.
    fn loss(&self, examples: &[&TrainingExample], gradients: Gradients) -> Result<Tensor, ModelError> {
        self.cross_entropy(examples, gradients == Gradients::Sparse)
    }

    /// The score, with confidence 0.5: the regressor does not estimate its
    /// own uncertainty, and 0.5 says "unknown" to the feedback rules.
    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let scores = crate::grad::no_grad(|| self.logits(inputs, false)?.f_sigmoid().map_err(ModelError::from))?;
        let scores = Vec::<f32>::try_from(scores.f_reshape([-1])?.f_to_device(Device::Cpu)?)?;
        Ok(super::head::score_answers(scores))
    }

    fn scored_answers(&self, inputs: &[&str], known: KnownScores<'_>) -> Option<Result<Vec<Scored>, ModelError>> {
        let scored = self.layer.raw_scores(inputs, known, &self.config);
        Some(scored.map(|all| {
            all.into_iter()
                .map(|(scores, derived)| {
                    let logit = scores.first().copied().unwrap_or(0.0);
                    Scored {
                        answer: Target::Score(f64::from(1.0 / (1.0 + (-logit).exp()))),
                        scores,
                        derived,
                    }
                })
                .collect()
        }))
    }

    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        Ok(Box::new(TextRegressor {
            layer: self.layer.try_copy()?,
            config: self.config.clone(),
        }))
    }

    /// The regressor's own rate and the linear models' step size, not the Adam ones.
    fn settings(&self) -> TrainingSettings {
        TrainingSettings::adaptive(self.config.regressor_learning_rate, self.config.linear_minibatch_size)
    }

    /// The cross-entropy against the score, whose gradient with respect to
    /// the logit is `p − y`.
    fn closed_form_pass(
        &mut self,
        examples: &[&TrainingExample],
        penalties: &Penalties<'_>,
    ) -> Result<Option<(f64, Touched)>, ModelError> {
        let (texts, targets) = texts_and_scores(examples)?;
        let gradient = |i: usize, logit: &[f32]| Ok(sigmoid_gradient(logit, targets[i]));
        let rate = self.config.regressor_learning_rate;
        let pass = self
            .layer
            .closed_form_pass(&texts, &self.config, Steps { rate, penalties }, gradient);
        pass.map(Some)
    }

    fn closed_form_fisher(&self, examples: &[&TrainingExample]) -> Result<Option<Fisher>, ModelError> {
        let (texts, targets) = texts_and_scores(examples)?;
        let fisher = self
            .layer
            .squared_gradients(&texts, &self.config, |i, logit| Ok(sigmoid_gradient(logit, targets[i])))?;
        Ok(Some(fisher))
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({ "config": self.config })
    }

    fn restore(&mut self, params: &BTreeMap<String, Tensor>, meta: &serde_json::Value) -> Result<(), ModelError> {
        *self = Self::from_checkpoint(self.layer.vs.device(), params, meta)?;
        Ok(())
    }
}

/// The examples' scores, or the error for the first that has none.
fn scores(examples: &[&TrainingExample]) -> Result<Vec<f64>, ModelError> {
    examples.iter().map(|e| e.expected_output.as_score()).collect()
}

/// The examples' texts and scores.
fn texts_and_scores<'e>(examples: &[&'e TrainingExample]) -> Result<(Vec<&'e str>, Vec<f64>), ModelError> {
    Ok((
        examples.iter().map(|e| e.input_text.as_str()).collect(),
        scores(examples)?,
    ))
}
