//! A trainable head on the frozen MiniLM encoder: a linear layer over the
//! unit sentence vector, softmax for labels (learned as they appear, as the
//! hashed classifier's) or a sigmoid unit for scores. Only the head is in
//! the `VarStore`, so updates, EWC and checkpoints concern the head; copies
//! share the encoder's weights.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

use super::bag::saved_param;
use super::minilm::MiniLm;
use super::read_metadata;
use super::{head, AgentModel, Gradients, ModelKind, ModelOutput, TrainingSettings};
use crate::base::ModelError;
use crate::base::{Target, TargetKind, TrainingExample};

const OUT_WEIGHT: &str = "out_weight";
const OUT_BIAS: &str = "out_bias";

/// What a checkpoint of a head remembers besides its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeadMeta {
    encoder_dir: PathBuf,
    target_kind: TargetKind,
    labels: Vec<String>,
    learning_rate: f64,
    minibatch_size: usize,
}

/// A classifier or regressor head on MiniLM sentence vectors.
#[derive(Debug)]
pub struct MiniLmHead {
    vs: VarStore,
    encoder: MiniLm,
    out_weight: Tensor,
    out_bias: Tensor,
    index: HashMap<String, i64>,
    meta: HeadMeta,
}

impl MiniLmHead {
    /// A new head for `target_kind` (label or score) on `encoder` (read from
    /// `encoder_dir`, which checkpoints remember).
    pub fn new(
        encoder: MiniLm,
        encoder_dir: PathBuf,
        target_kind: TargetKind,
        learning_rate: f64,
        minibatch_size: usize,
    ) -> Result<MiniLmHead, ModelError> {
        let rows = match target_kind {
            TargetKind::Label => 0,
            TargetKind::Score => 1,
            other => return Err(ModelError::Unsupported(other)),
        };
        let dim = encoder.dim();
        let meta = HeadMeta {
            encoder_dir,
            target_kind,
            labels: Vec::new(),
            learning_rate,
            minibatch_size,
        };
        let w = Tensor::f_zeros([rows, dim], (Kind::Float, Device::Cpu))?;
        let b = Tensor::f_zeros([rows], (Kind::Float, Device::Cpu))?;
        Self::from_parts(encoder, meta, &w, &b)
    }

    fn from_parts(encoder: MiniLm, meta: HeadMeta, w: &Tensor, b: &Tensor) -> Result<MiniLmHead, ModelError> {
        let vs = VarStore::new(encoder.device());
        let root = vs.root();
        let out_weight = root.f_var_copy(OUT_WEIGHT, w)?;
        let out_bias = root.f_var_copy(OUT_BIAS, b)?;
        Ok(MiniLmHead {
            vs,
            encoder,
            out_weight,
            out_bias,
            index: super::column_index(&meta.labels),
            meta,
        })
    }

    /// A head with a checkpoint's weights; the encoder is read again from the
    /// folder the checkpoint names.
    pub fn from_checkpoint(
        device: Device,
        params: &BTreeMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> Result<MiniLmHead, ModelError> {
        let meta: HeadMeta = read_metadata(meta, "a MiniLM head")?;
        let encoder = MiniLm::load(&meta.encoder_dir, device)?;
        let _guard = tch::no_grad_guard();
        let w = saved_param(params, OUT_WEIGHT, device)?;
        let b = saved_param(params, OUT_BIAS, device)?;
        Self::from_parts(encoder, meta, &w, &b)
    }

    fn outputs(&self, inputs: &[&str]) -> Result<Tensor, ModelError> {
        let vectors = self.encoder.embed(inputs)?;
        let linear = vectors.f_matmul(&self.out_weight.f_tr()?)?.f_add(&self.out_bias)?;
        Ok(match self.meta.target_kind {
            TargetKind::Score => linear.f_sigmoid()?,
            _ => linear,
        })
    }

    fn wrong(&self, got: &Target) -> ModelError {
        got.kind_mismatch(self.meta.target_kind)
    }
}

impl AgentModel for MiniLmHead {
    fn kind(&self) -> ModelKind {
        ModelKind::MiniLmHead
    }

    fn target_kind(&self) -> TargetKind {
        self.meta.target_kind
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        let mut new_labels = Vec::new();
        for e in examples {
            match (&e.expected_output, self.meta.target_kind) {
                (Target::Label(l), TargetKind::Label) => {
                    if !self.index.contains_key(l) && !new_labels.contains(l) {
                        new_labels.push(l.clone());
                    }
                }
                (Target::Score(_), TargetKind::Score) => {}
                (other, _) => return Err(self.wrong(other)),
            }
        }
        if new_labels.is_empty() {
            return Ok(());
        }
        let (w, b) = crate::grad::no_grad(|| -> Result<(Tensor, Tensor), ModelError> {
            let extra = new_labels.len() as i64;
            let device = self.vs.device();
            let w = Tensor::f_cat(
                &[
                    &self.out_weight,
                    &Tensor::f_zeros([extra, self.encoder.dim()], (Kind::Float, device))?,
                ],
                0,
            )?;
            let b = Tensor::f_cat(&[&self.out_bias, &Tensor::f_zeros([extra], (Kind::Float, device))?], 0)?;
            Ok((w, b))
        })?;
        let mut meta = self.meta.clone();
        meta.labels.extend(new_labels);
        *self = Self::from_parts(self.encoder.shallow_copy(), meta, &w, &b)?;
        Ok(())
    }

    fn loss(&self, examples: &[&TrainingExample], _: Gradients) -> Result<Tensor, ModelError> {
        let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let column = |label: &str| {
            let column = self.index.get(label).copied();
            column.ok_or_else(|| ModelError::NotTrained(format!("label {label:?} was not prepared")))
        };
        head::dense_loss(&self.outputs(&inputs)?, examples, self.meta.target_kind, column)
    }

    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        if self.meta.target_kind == TargetKind::Label && self.meta.labels.is_empty() {
            return Err(ModelError::NotTrained("the head knows no label yet".into()));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let outputs = crate::grad::no_grad(|| self.outputs(inputs))?;
        head::dense_answers(&outputs, self.meta.target_kind, &self.meta.labels)
    }

    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        let copy = crate::grad::no_grad(|| {
            Self::from_parts(
                self.encoder.shallow_copy(),
                self.meta.clone(),
                &self.out_weight,
                &self.out_bias,
            )
        })?;
        Ok(Box::new(copy))
    }

    fn settings(&self) -> TrainingSettings {
        TrainingSettings::adam(self.meta.learning_rate, self.meta.minibatch_size)
    }

    fn labels(&self) -> Vec<String> {
        self.meta.labels.clone()
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::to_value(&self.meta).unwrap_or_default()
    }

    fn restore(&mut self, params: &BTreeMap<String, Tensor>, meta: &serde_json::Value) -> Result<(), ModelError> {
        let saved: HeadMeta = read_metadata(meta, "a MiniLM head")?;
        let device = self.vs.device();
        let _guard = tch::no_grad_guard();
        let w = saved_param(params, OUT_WEIGHT, device)?;
        let b = saved_param(params, OUT_BIAS, device)?;
        *self = Self::from_parts(self.encoder.shallow_copy(), saved, &w, &b)?;
        Ok(())
    }
}
