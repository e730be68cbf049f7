//! The models the library trains: the [`AgentModel`] trait every model
//! implements, and the built-in libtorch models.
//!
//! A model is a set of named variables in a `tch` [`VarStore`] plus a
//! differentiable loss. That is all the update pipeline needs: it trains a copy
//! of the live model through [`AgentModel::loss`], measures it through
//! [`AgentModel::predict`], and swaps it in. Elastic Weight Consolidation works
//! on the same `VarStore`, so it fits every model without knowing its layers.

mod bag;
mod feature_cache;
mod hashed;
mod head;
mod minilm;
mod minilm_head;
mod tagger;
mod text_classifier;
mod text_config;
mod text_regressor;
mod torchscript;

pub use minilm::MiniLm;
pub use minilm_head::MiniLmHead;
pub use tagger::TokenTagger;
pub use text_classifier::TextClassifier;
pub use text_config::TextModelConfig;
pub use text_regressor::TextRegressor;
pub use torchscript::{TorchScriptModel, TorchScriptSpec};

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::base::ModelError;
use crate::base::{Target, TargetKind, TrainingExample};
use crate::ewc::Fisher;
use crate::optim::{Penalties, Touched};

/// The kind of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A linear softmax over hashed word uni- and bi-grams (see [`TextClassifier`]).
    TextClassifier,
    /// The same features, one sigmoid unit: a score in 0..=1.
    TextRegressor,
    /// A linear-chain CRF over hashed token features: one BIO tag per token.
    TokenTagger,
    /// A user's TorchScript module (see [`TorchScriptSpec`]), configured per (agent, task).
    #[serde(rename = "torchscript")]
    TorchScript,
    /// A trainable head (classifier or regressor) on the frozen pretrained MiniLM encoder.
    #[serde(rename = "minilm_head")]
    MiniLmHead,
    /// A model the caller built and registered with [`crate::Coordinator::register_model`].
    Custom,
}

impl ModelKind {
    /// The name used in status reports and performance records.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::TextClassifier => "text_classifier",
            ModelKind::TextRegressor => "text_regressor",
            ModelKind::TokenTagger => "token_tagger",
            ModelKind::TorchScript => "torchscript",
            ModelKind::MiniLmHead => "minilm_head",
            ModelKind::Custom => "custom",
        }
    }

    /// The built-in model that learns this kind of target, if any.
    pub fn for_target(kind: TargetKind) -> Option<ModelKind> {
        match kind {
            TargetKind::Label => Some(ModelKind::TextClassifier),
            TargetKind::Score => Some(ModelKind::TextRegressor),
            TargetKind::Tags => Some(ModelKind::TokenTagger),
            TargetKind::Json => None,
        }
    }
}

/// How the update pipeline trains a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Training {
    /// One epoch of a fresh Adam per update (models of dense layers).
    Adam,
    /// Adaptive per-weight steps whose state is kept in the model's
    /// `VarStore` between updates; sparse where the loss's gradients are
    /// (see [`crate::optim`]).
    Adaptive,
}

/// How an update trains a model: the optimiser, its rate and how many
/// examples each step takes ([`AgentModel::settings`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingSettings {
    /// Which optimiser steps.
    pub training: Training,
    /// The rate of a step.
    pub learning_rate: f64,
    /// Examples per step.
    pub minibatch_size: usize,
}

impl TrainingSettings {
    /// A fresh Adam per update at `learning_rate`, `minibatch_size` examples a step.
    pub fn adam(learning_rate: f64, minibatch_size: usize) -> TrainingSettings {
        TrainingSettings {
            training: Training::Adam,
            learning_rate,
            minibatch_size,
        }
    }

    /// Adaptive steps at base rate `learning_rate`, `minibatch_size` examples a step.
    pub fn adaptive(learning_rate: f64, minibatch_size: usize) -> TrainingSettings {
        TrainingSettings {
            training: Training::Adaptive,
            learning_rate,
            minibatch_size,
        }
    }
}

/// Which gradients a loss is asked for ([`AgentModel::loss`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gradients {
    /// Dense gradients, as Adam and any other optimiser take them.
    Dense,
    /// Sparse gradients where the model can give them, so that an adaptive
    /// step touches only the rows the examples use; a model without sparse
    /// layers gives dense ones.
    Sparse,
}

/// One prediction of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    /// The predicted output.
    pub output: Target,
    /// How sure the model is, in `0..=1` (the top class probability for a classifier).
    pub confidence: f64,
    /// A classifier's probability of every class, in the order of
    /// [`AgentModel::labels`]; empty for other models. The review queue's
    /// margin and entropy strategies use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribution: Vec<f64>,
}

/// A trainable model of one agent's task.
///
/// Implementations keep every trainable weight in the [`VarStore`] returned by
/// [`AgentModel::var_store`]; the update pipeline builds its optimiser (and the
/// EWC penalty) over that store.
pub trait AgentModel: Send {
    /// What kind of model this is.
    fn kind(&self) -> ModelKind;

    /// The kind of target it learns.
    fn target_kind(&self) -> TargetKind;

    /// The variables of the model.
    fn var_store(&self) -> &VarStore;

    /// Adapts the model to the targets of `examples` before training on them,
    /// for example by growing a classifier's output layer for new labels.
    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError>;

    /// The mean negative log-likelihood of `examples`, differentiable with
    /// respect to the trainable variables, with the `gradients` asked for
    /// (adaptive steps ask for [`Gradients::Sparse`]).
    fn loss(&self, examples: &[&TrainingExample], gradients: Gradients) -> Result<Tensor, ModelError>;

    /// The negative log-likelihood of one example, for the Fisher information.
    /// The default is [`AgentModel::loss`] with sparse gradients where a
    /// model gives them: the Fisher squares each example's gradient, so only
    /// the rows an example touches cost anything.
    fn fisher_loss(&self, example: &TrainingExample) -> Result<Tensor, ModelError> {
        self.loss(&[example], Gradients::Sparse)
    }

    /// Predictions for `inputs`, in order.
    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError>;

    /// A deep copy with its own variables: training the copy leaves `self` untouched.
    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError>;

    /// How an update trains it. [`Training::Adaptive`] needs optimiser
    /// state beside every trainable variable (see [`crate::optim::state_name`]).
    fn settings(&self) -> TrainingSettings;

    /// One pass of adaptive steps, one example at a time in the order
    /// given, with the EWC `penalties` as [`crate::optim::adaptive_step`]
    /// applies them, for a model that computes them faster than
    /// back-propagating [`AgentModel::loss`] per example (the
    /// hashed linear models take their sparse gradients in closed form);
    /// returns the summed loss and what it changed, or `None` to let the
    /// caller back-propagate (a model that cannot apply the penalties
    /// returns `None` when one is given).
    fn closed_form_pass(
        &mut self,
        examples: &[&TrainingExample],
        penalties: &Penalties<'_>,
    ) -> Result<Option<(f64, Touched)>, ModelError> {
        let _ = (examples, penalties);
        Ok(None)
    }

    /// The diagonal Fisher information over `examples` (the mean of each
    /// weight's squared log-likelihood gradient, one example at a time), for
    /// a model that computes it faster than back-propagating
    /// [`AgentModel::fisher_loss`] per example; `None` to let the caller
    /// back-propagate. Keyed by variable name, every trainable variable; a
    /// tensor may be sparse (COO) where most of the variable is zero.
    fn closed_form_fisher(&self, examples: &[&TrainingExample]) -> Result<Option<Fisher>, ModelError> {
        let _ = examples;
        Ok(None)
    }

    /// Its answers on `inputs` with the raw scores each comes from, for the
    /// judge's memory of its window ([`crate::eval::measure_after_pass`]);
    /// `None` for a model that gives no raw scores (the judge then
    /// predicts). Where `known` holds an input's raw scores under this model
    /// as it was before one training pass and what that pass changed, the
    /// model may add what the pass changed to them instead of scoring the
    /// input afresh, and says so ([`Scored::derived`]).
    fn scored_answers(&self, inputs: &[&str], known: KnownScores<'_>) -> Option<Result<Vec<Scored>, ModelError>> {
        let _ = (inputs, known);
        None
    }

    /// Targets drawn from the model's own predictive distribution for the
    /// inputs of `examples` (for the "true" Fisher), seeded by `seed`.
    fn sample_targets(&self, examples: &[&TrainingExample], seed: u64) -> Result<Vec<Target>, ModelError> {
        let _ = (examples, seed);
        Err(ModelError::NotSupported(format!(
            "{} models cannot sample targets",
            self.kind().name()
        )))
    }

    /// What a checkpoint must remember besides the weights (a classifier's
    /// label map, hyper-parameters).
    fn metadata(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Replaces the weights (and metadata) with those of a checkpoint. The
    /// default copies each variable by name and needs equal shapes.
    fn restore(&mut self, params: &BTreeMap<String, Tensor>, meta: &serde_json::Value) -> Result<(), ModelError> {
        let _ = meta;
        let _guard = tch::no_grad_guard();
        for (name, mut var) in self.var_store().variables() {
            let saved = params
                .get(&name)
                .ok_or_else(|| ModelError::IncompatibleCheckpoint(format!("the checkpoint has no variable {name}")))?;
            var.f_copy_(saved)?;
        }
        Ok(())
    }

    /// Names of the classes it can predict (empty for non-classifiers).
    fn labels(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What a model may derive raw scores from
/// ([`AgentModel::scored_answers`]); the default knows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct KnownScores<'a> {
    /// Per input, by position, its raw scores under the model as it was
    /// before `since` (missing or `None`: unknown).
    pub scores: &'a [Option<&'a [f32]>],
    /// What the one training pass since then changed; `None`: unknown.
    pub since: Option<&'a Touched>,
}

/// An answer with the raw scores it was read from
/// ([`AgentModel::scored_answers`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The answer, as [`AgentModel::predict`] gives it.
    pub answer: Target,
    /// The scores before any link function, one per output.
    pub scores: Vec<f32>,
    /// Whether the scores were derived from the input's scores before the
    /// last pass rather than computed afresh.
    pub derived: bool,
}

/// `known` followed by the names in `found` that `index` (the index of
/// `known`) lacks, each once, in the order first seen, with how many were
/// added; `None` when none was. These are the labels (or tags) a model grows
/// by before it trains on a batch.
pub(crate) fn grown_names<V>(
    known: &[String],
    index: &HashMap<String, V>,
    found: impl IntoIterator<Item = String>,
) -> Option<(Vec<String>, usize)> {
    let mut names = known.to_vec();
    for name in found {
        if !index.contains_key(&name) && !names[known.len()..].contains(&name) {
            names.push(name);
        }
    }
    let added = names.len() - known.len();
    (added > 0).then_some((names, added))
}

/// Each of `names` with its position: the output column of each label of a
/// classifier.
pub(crate) fn column_index(names: &[String]) -> HashMap<String, i64> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), i as i64))
        .collect()
}

/// A checkpoint's metadata read as `T`; `what` names the model in the error
/// ("a text classifier").
pub(crate) fn read_metadata<T: serde::de::DeserializeOwned>(
    meta: &serde_json::Value,
    what: &str,
) -> Result<T, ModelError> {
    T::deserialize(meta).map_err(|e| ModelError::IncompatibleCheckpoint(format!("checkpoint metadata of {what}: {e}")))
}

/// A classifier's outputs from its class probabilities (`inputs × labels`):
/// the most probable label, its probability as the confidence, and the whole
/// distribution.
pub(crate) fn outputs_from_probabilities(probs: &Tensor, labels: &[String]) -> Result<Vec<ModelOutput>, ModelError> {
    let n = labels.len();
    // One call (a copy to the CPU, contiguous) rather than a move, a
    // reshape and a conversion: a prediction of one text is a handful of
    // tensor calls, and each costs a few microseconds of dispatch.
    let probs = match probs.kind() {
        Kind::Float => probs.shallow_clone(),
        _ => probs.f_to_kind(Kind::Float)?,
    };
    let numel = probs.numel();
    let mut flat = vec![0f32; numel];
    probs.f_copy_data(&mut flat, numel)?;
    Ok(flat
        .chunks(n.max(1))
        .map(|row| {
            let (best, p) = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or((0, 0.0), |(i, p)| (i, *p));
            ModelOutput {
                output: Target::Label(labels[best].clone()),
                confidence: f64::from(p),
                distribution: row.iter().map(|&p| f64::from(p)).collect(),
            }
        })
        .collect())
}

/// A tensor of `values` on `device`: made on the CPU, and moved only when
/// the model lives elsewhere (a move is a call of its own, and a prediction
/// of one text is a handful of calls, each a few microseconds of dispatch).
pub(crate) fn tensor_on<T: tch::kind::Element>(values: &[T], device: Device) -> Result<Tensor, tch::TchError> {
    let tensor = Tensor::f_from_slice(values)?;
    match device {
        Device::Cpu => Ok(tensor),
        _ => tensor.f_to_device(device),
    }
}

/// Calls [`AgentModel::predict`], turning a panic into an error and checking
/// that there is one output per input, so a faulty model cannot crash a caller.
pub(crate) fn predict_checked(model: &dyn AgentModel, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
    let outputs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::grad::no_grad(|| model.predict(inputs))
    }))
    .map_err(|panic| ModelError::Panicked(crate::grad::panic_message(&*panic)))??;
    if outputs.len() != inputs.len() {
        return Err(ModelError::OutputCount {
            inputs: inputs.len(),
            outputs: outputs.len(),
        });
    }
    Ok(outputs)
}

/// [`AgentModel::scored_answers`] behind the same guards as
/// [`predict_checked`]: a panic and a wrong count of answers are errors.
pub(crate) fn scored_checked(
    model: &dyn AgentModel,
    inputs: &[&str],
    known: KnownScores<'_>,
) -> Option<Result<Vec<Scored>, ModelError>> {
    let scored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::grad::no_grad(|| model.scored_answers(inputs, known))
    }));
    match scored {
        Err(panic) => Some(Err(ModelError::Panicked(crate::grad::panic_message(&*panic)))),
        Ok(None) => None,
        Ok(Some(Ok(scored))) if scored.len() != inputs.len() => Some(Err(ModelError::OutputCount {
            inputs: inputs.len(),
            outputs: scored.len(),
        })),
        Ok(Some(result)) => Some(result),
    }
}

/// Rebuilds a built-in model from a checkpoint's weights and metadata.
pub(crate) fn restore_model(
    kind: ModelKind,
    device: Device,
    params: &BTreeMap<String, Tensor>,
    meta: &serde_json::Value,
) -> Result<Box<dyn AgentModel>, ModelError> {
    match kind {
        ModelKind::TextClassifier => Ok(Box::new(TextClassifier::from_checkpoint(device, params, meta)?)),
        ModelKind::TextRegressor => Ok(Box::new(TextRegressor::from_checkpoint(device, params, meta)?)),
        ModelKind::TokenTagger => Ok(Box::new(TokenTagger::from_checkpoint(device, params, meta)?)),
        ModelKind::TorchScript => Ok(Box::new(torchscript::from_checkpoint(device, params, meta)?)),
        ModelKind::MiniLmHead => Ok(Box::new(MiniLmHead::from_checkpoint(device, params, meta)?)),
        ModelKind::Custom => Err(ModelError::NotSupported(
            "a custom model is restored by registering it again".into(),
        )),
    }
}

/// Creates the built-in model for a task whose target kind is `target`, with
/// weights seeded from `seed`.
pub(crate) fn create_model(
    target: TargetKind,
    config: &TextModelConfig,
    device: Device,
    seed: u64,
) -> Result<Box<dyn AgentModel>, ModelError> {
    match ModelKind::for_target(target) {
        Some(ModelKind::TextClassifier) => Ok(Box::new(TextClassifier::new(config.clone(), device, seed)?)),
        Some(ModelKind::TextRegressor) => Ok(Box::new(TextRegressor::new(config.clone(), device, seed)?)),
        Some(ModelKind::TokenTagger) => Ok(Box::new(TokenTagger::new(config.clone(), device, seed)?)),
        Some(ModelKind::Custom | ModelKind::TorchScript | ModelKind::MiniLmHead) | None => {
            Err(ModelError::Unsupported(target))
        }
    }
}
