//! A user's TorchScript model, trained by the library like a built-in one:
//! for agents whose networks the library cannot ship (screenshot analysis,
//! summarisation, topics) or that prefer their own.
//!
//! # The contract
//!
//! The file is a module saved with `torch.jit.save(torch.jit.script(m), path)`
//! whose `forward(ids, offsets)` takes
//! - `ids`: int64, 1-D: the hashed word uni- and bi-gram ids of every input,
//!   concatenated, each in `0..hash_buckets` (the built-in features,
//!   [`crate::base::ngram_ids`]);
//! - `offsets`: int64, 1-D: where each input's ids start (the layout of
//!   `torch.nn.EmbeddingBag`), one per input;
//!
//! and returns a float tensor with one row per input: for a label task the
//! logits over [`TorchScriptSpec::labels`] (in that order), for a score task
//! one column of scores in 0..=1. Every parameter of the module becomes a
//! variable of the model's `VarStore`, so updates, EWC, evaluation,
//! checkpoints and rollback work unchanged. The module file itself is never
//! written; checkpoints hold the trained weights.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Tensor, TrainableCModule};

use super::{head, read_metadata, AgentModel, Gradients, ModelKind, ModelOutput, TrainingSettings};
use crate::base::ngram_ids;
use crate::base::ModelError;
use crate::base::{Target, TargetKind, TrainingExample};

/// Where a TorchScript model is and what it predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchScriptSpec {
    /// The saved module.
    pub path: PathBuf,
    /// `label` or `score`.
    pub target_kind: TargetKind,
    /// For a label task: the classes, in the order of the module's outputs.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The range of the feature ids the module's embedding takes.
    pub hash_buckets: usize,
    /// At most this many tokens of an input are used.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Adam learning rate of an update.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Examples per optimiser step.
    #[serde(default = "default_minibatch")]
    pub minibatch_size: usize,
}

fn default_max_tokens() -> usize {
    1000
}

fn default_learning_rate() -> f64 {
    0.01
}

fn default_minibatch() -> usize {
    16
}

/// A trainable TorchScript module behind the [`AgentModel`] contract.
#[derive(Debug)]
pub struct TorchScriptModel {
    vs: VarStore,
    module: TrainableCModule,
    index: HashMap<String, i64>,
    spec: TorchScriptSpec,
}

impl TorchScriptModel {
    /// Loads the module of `spec` onto `device`, its parameters into a new
    /// `VarStore`. Checks the spec (a label task needs labels; a score task
    /// none) and that the module answers the contract.
    pub fn load(spec: TorchScriptSpec, device: Device) -> Result<TorchScriptModel, ModelError> {
        let file = spec.path.display().to_string();
        let bad = |why: String| ModelError::ModelFiles(format!("TorchScript model {file}: {why}"));
        match spec.target_kind {
            TargetKind::Label if spec.labels.is_empty() => return Err(bad("a label task needs its labels".into())),
            TargetKind::Label | TargetKind::Score => {}
            other => return Err(bad(format!("targets of kind {other} are not supported"))),
        }
        if spec.hash_buckets == 0 {
            return Err(bad("hash_buckets must be at least 1".into()));
        }
        let vs = VarStore::new(device);
        let brief = |e: tch::TchError| bad(crate::base::brief_torch_error(&e));
        let mut module = TrainableCModule::load(&spec.path, vs.root()).map_err(brief)?;
        module.f_set_train().map_err(brief)?;
        let index = super::column_index(&spec.labels);
        let model = TorchScriptModel {
            vs,
            module,
            index,
            spec,
        };
        // One probe forward: a module that breaks the contract fails here, at
        // registration, not in the middle of an update.
        let probe = crate::grad::no_grad(|| model.outputs(&["contract probe"]))?;
        let want = model.output_width();
        if probe.size() != [1, want] {
            return Err(bad(format!(
                "forward returned shape {:?}, the contract wants [inputs, {want}]",
                probe.size()
            )));
        }
        Ok(model)
    }

    fn output_width(&self) -> i64 {
        match self.spec.target_kind {
            TargetKind::Label => self.spec.labels.len() as i64,
            _ => 1,
        }
    }

    fn outputs(&self, inputs: &[&str]) -> Result<Tensor, ModelError> {
        let mut ids = Vec::new();
        let mut offsets = Vec::with_capacity(inputs.len());
        for text in inputs {
            offsets.push(ids.len() as i64);
            ids.extend(ngram_ids(text, self.spec.hash_buckets, self.spec.max_tokens));
        }
        let device = self.vs.device();
        let ids = Tensor::f_from_slice(&ids)?.f_to_device(device)?;
        let offsets = Tensor::f_from_slice(&offsets)?.f_to_device(device)?;
        Ok(self.module.forward_ts(&[ids, offsets])?)
    }
}

impl AgentModel for TorchScriptModel {
    fn kind(&self) -> ModelKind {
        ModelKind::TorchScript
    }

    fn target_kind(&self) -> TargetKind {
        self.spec.target_kind
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// Checks the targets: a module's labels are fixed by its output layer.
    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        for e in examples {
            match (&e.expected_output, self.spec.target_kind) {
                (Target::Label(l), TargetKind::Label) if !self.index.contains_key(l) => {
                    return Err(ModelError::UnknownLabel {
                        label: l.clone(),
                        known: self.spec.labels.clone(),
                    })
                }
                (Target::Label(_), TargetKind::Label) | (Target::Score(_), TargetKind::Score) => {}
                (other, expected) => return Err(other.kind_mismatch(expected)),
            }
        }
        Ok(())
    }

    fn loss(&self, examples: &[&TrainingExample], _: Gradients) -> Result<Tensor, ModelError> {
        let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let column = |label: &str| {
            self.index.get(label).copied().ok_or_else(|| ModelError::UnknownLabel {
                label: label.to_string(),
                known: self.spec.labels.clone(),
            })
        };
        head::dense_loss(&self.outputs(&inputs)?, examples, self.spec.target_kind, column)
    }

    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let outputs = crate::grad::no_grad(|| self.outputs(inputs))?;
        head::dense_answers(&outputs, self.spec.target_kind, &self.spec.labels)
    }

    /// Loads the module again and copies the current weights into it.
    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        let mut copy = TorchScriptModel::load(self.spec.clone(), self.vs.device())?;
        copy.vs.copy(&self.vs)?;
        Ok(Box::new(copy))
    }

    fn settings(&self) -> TrainingSettings {
        TrainingSettings::adam(self.spec.learning_rate, self.spec.minibatch_size)
    }

    fn labels(&self) -> Vec<String> {
        self.spec.labels.clone()
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::to_value(&self.spec).unwrap_or_default()
    }
}

/// Rebuilds a TorchScript model from its checkpoint: the module named in the
/// metadata, with the checkpoint's weights.
pub(crate) fn from_checkpoint(
    device: Device,
    params: &BTreeMap<String, Tensor>,
    meta: &serde_json::Value,
) -> Result<TorchScriptModel, ModelError> {
    let spec: TorchScriptSpec = read_metadata(meta, "a TorchScript model")?;
    let mut model = TorchScriptModel::load(spec, device)?;
    AgentModel::restore(&mut model, params, meta)?;
    Ok(model)
}
