//! The built-in score regressor (scout `quality_assessment`, fact checker
//! `credibility_assessment`): the classifier's hashed n-gram embedding bag, one
//! linear unit and a sigmoid, so every prediction lies in 0..=1. Trained on the
//! squared error, the negative log-likelihood of a Gaussian with fixed
//! variance, which is what its Fisher information is taken of; measured by the
//! mean absolute error.

use std::collections::BTreeMap;

use tch::{nn::VarStore, Device, Kind, Reduction, Tensor};

use super::bag::{initial_embedding, mean_embedding, saved_param};
use super::{AgentModel, ModelKind, ModelOutput};
use crate::config::TextModelConfig;
use crate::error::ModelError;
use crate::example::{Target, TargetKind, TrainingExample};

const EMBEDDING: &str = "embedding";
const OUT_WEIGHT: &str = "out_weight";
const OUT_BIAS: &str = "out_bias";

/// A regressor of scores in 0..=1 over hashed n-grams.
#[derive(Debug)]
pub struct TextRegressor {
    vs: VarStore,
    embedding: Tensor,
    out_weight: Tensor,
    out_bias: Tensor,
    config: TextModelConfig,
}

impl TextRegressor {
    /// A regressor predicting 0.5 for everything, its embedding seeded by `seed`.
    pub fn new(config: TextModelConfig, device: Device, seed: u64) -> Result<TextRegressor, ModelError> {
        let dim = config.embedding_dim as i64;
        let embedding = initial_embedding(&config, seed)?;
        let out_weight = Tensor::f_zeros([1, dim], (Kind::Float, Device::Cpu))?;
        let out_bias = Tensor::f_zeros([1], (Kind::Float, Device::Cpu))?;
        Self::from_parts(config, device, &embedding, &out_weight, &out_bias)
    }

    fn from_parts(
        config: TextModelConfig,
        device: Device,
        embedding: &Tensor,
        out_weight: &Tensor,
        out_bias: &Tensor,
    ) -> Result<TextRegressor, ModelError> {
        let vs = VarStore::new(device);
        let root = vs.root();
        Ok(TextRegressor {
            embedding: root.f_var_copy(EMBEDDING, embedding)?,
            out_weight: root.f_var_copy(OUT_WEIGHT, out_weight)?,
            out_bias: root.f_var_copy(OUT_BIAS, out_bias)?,
            vs,
            config,
        })
    }

    /// A regressor with a checkpoint's weights (see [`AgentModel::metadata`]).
    pub fn from_checkpoint(
        device: Device,
        params: &BTreeMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> Result<TextRegressor, ModelError> {
        let config: TextModelConfig = serde_json::from_value(meta["config"].clone())
            .map_err(|e| ModelError::NotSupported(format!("checkpoint metadata of a text regressor: {e}")))?;
        let _guard = tch::no_grad_guard();
        Self::from_parts(
            config,
            device,
            &saved_param(params, EMBEDDING, device)?,
            &saved_param(params, OUT_WEIGHT, device)?,
            &saved_param(params, OUT_BIAS, device)?,
        )
    }

    /// Predicted scores, `inputs × 1`.
    fn scores(&self, inputs: &[&str], sparse: bool) -> Result<Tensor, ModelError> {
        let bag = mean_embedding(&self.embedding, inputs, &self.config, self.vs.device(), sparse)?;
        Ok(bag
            .f_matmul(&self.out_weight.f_tr()?)?
            .f_add(&self.out_bias)?
            .f_sigmoid()?)
    }

    fn squared_error(&self, examples: &[&TrainingExample], sparse: bool) -> Result<Tensor, ModelError> {
        let targets = examples
            .iter()
            .map(|e| match e.expected_output {
                Target::Score(x) => Ok(x as f32),
                ref other => Err(ModelError::WrongTarget {
                    expected: TargetKind::Score,
                    got: other.kind(),
                }),
            })
            .collect::<Result<Vec<f32>, _>>()?;
        let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let targets = Tensor::f_from_slice(&targets)?
            .f_to_device(self.vs.device())?
            .f_reshape([-1, 1])?;
        Ok(self.scores(&inputs, sparse)?.f_mse_loss(&targets, Reduction::Mean)?)
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
        &self.vs
    }

    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        match examples.iter().find(|e| e.expected_output.kind() != TargetKind::Score) {
            Some(e) => Err(ModelError::WrongTarget {
                expected: TargetKind::Score,
                got: e.expected_output.kind(),
            }),
            None => Ok(()),
        }
    }

    fn loss(&self, examples: &[&TrainingExample]) -> Result<Tensor, ModelError> {
        self.squared_error(examples, false)
    }

    fn fisher_loss(&self, example: &TrainingExample) -> Result<Tensor, ModelError> {
        self.squared_error(&[example], true)
    }

    /// The score, with confidence 0.5: the regressor does not estimate its
    /// own uncertainty, and 0.5 says "unknown" to the feedback rules.
    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let scores = crate::grad::no_grad(|| self.scores(inputs, false))?;
        let scores = Vec::<f32>::try_from(scores.f_reshape([-1])?.f_to_device(Device::Cpu)?)?;
        Ok(scores
            .into_iter()
            .map(|s| ModelOutput {
                output: Target::Score(f64::from(s)),
                confidence: 0.5,
                distribution: Vec::new(),
            })
            .collect())
    }

    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        let copy = crate::grad::no_grad(|| {
            Self::from_parts(
                self.config.clone(),
                self.vs.device(),
                &self.embedding,
                &self.out_weight,
                &self.out_bias,
            )
        })?;
        Ok(Box::new(copy))
    }

    fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    fn minibatch_size(&self) -> usize {
        self.config.minibatch_size
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({ "config": self.config })
    }
}
