//! The built-in text classifier: hashed word uni- and bi-grams, averaged in an
//! embedding bag, then one linear layer (fastText style). Small, fast on a CPU,
//! and able to learn new labels as they appear: the output layer grows by one
//! row per new label, and the rows it had keep their values.

use std::collections::{BTreeMap, HashMap};

use tch::{nn::VarStore, Device, Kind, Reduction, Tensor};

use super::bag::{initial_embedding, mean_embedding, saved_param};
use super::{outputs_from_probabilities, AgentModel, ModelKind, ModelOutput};
use crate::config::TextModelConfig;
use crate::error::ModelError;
use crate::example::{Target, TargetKind, TrainingExample};
use crate::features::SplitMix64;

const EMBEDDING: &str = "embedding";
const OUT_WEIGHT: &str = "out_weight";
const OUT_BIAS: &str = "out_bias";

/// fastText-style classifier over hashed n-grams.
#[derive(Debug)]
pub struct TextClassifier {
    vs: VarStore,
    embedding: Tensor,
    out_weight: Tensor,
    out_bias: Tensor,
    labels: Vec<String>,
    index: HashMap<String, i64>,
    config: TextModelConfig,
}

impl TextClassifier {
    /// A classifier that knows no label yet, its embedding drawn uniformly from
    /// ±1/dim with a generator seeded by `seed` (fastText's initialisation).
    pub fn new(config: TextModelConfig, device: Device, seed: u64) -> Result<TextClassifier, ModelError> {
        let dim = config.embedding_dim as i64;
        let init = initial_embedding(&config, seed)?;
        let out_weight = Tensor::f_zeros([0, dim], (Kind::Float, Device::Cpu))?;
        let out_bias = Tensor::f_zeros([0], (Kind::Float, Device::Cpu))?;
        Self::from_parts(config, device, &init, &out_weight, &out_bias, Vec::new())
    }

    fn from_parts(
        config: TextModelConfig,
        device: Device,
        embedding: &Tensor,
        out_weight: &Tensor,
        out_bias: &Tensor,
        labels: Vec<String>,
    ) -> Result<TextClassifier, ModelError> {
        let vs = VarStore::new(device);
        let root = vs.root();
        let embedding = root.f_var_copy(EMBEDDING, embedding)?;
        let out_weight = root.f_var_copy(OUT_WEIGHT, out_weight)?;
        let out_bias = root.f_var_copy(OUT_BIAS, out_bias)?;
        let index = labels.iter().enumerate().map(|(i, l)| (l.clone(), i as i64)).collect();
        Ok(TextClassifier {
            vs,
            embedding,
            out_weight,
            out_bias,
            labels,
            index,
            config,
        })
    }

    /// A classifier with a checkpoint's weights and label map (see
    /// [`AgentModel::metadata`]).
    pub fn from_checkpoint(
        device: Device,
        params: &BTreeMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> Result<TextClassifier, ModelError> {
        let saved: SavedMeta = serde_json::from_value(meta.clone())
            .map_err(|e| ModelError::NotSupported(format!("checkpoint metadata of a text classifier: {e}")))?;
        let _guard = tch::no_grad_guard();
        Self::from_parts(
            saved.config,
            device,
            &saved_param(params, EMBEDDING, device)?,
            &saved_param(params, OUT_WEIGHT, device)?,
            &saved_param(params, OUT_BIAS, device)?,
            saved.labels,
        )
    }

    /// A deep copy with its own variables.
    pub fn try_copy(&self) -> Result<TextClassifier, ModelError> {
        crate::grad::no_grad(|| {
            Self::from_parts(
                self.config.clone(),
                self.vs.device(),
                &self.embedding,
                &self.out_weight,
                &self.out_bias,
                self.labels.clone(),
            )
        })
    }

    fn logits(&self, inputs: &[&str]) -> Result<Tensor, ModelError> {
        self.logits_with(inputs, false)
    }

    /// `sparse`: see [`mean_embedding`].
    fn logits_with(&self, inputs: &[&str], sparse: bool) -> Result<Tensor, ModelError> {
        let bag = mean_embedding(&self.embedding, inputs, &self.config, self.vs.device(), sparse)?;
        Ok(bag.f_matmul(&self.out_weight.f_tr()?)?.f_add(&self.out_bias)?)
    }

    fn nll(&self, examples: &[&TrainingExample], sparse: bool) -> Result<Tensor, ModelError> {
        let targets = examples
            .iter()
            .map(|e| self.label_index(&e.expected_output))
            .collect::<Result<Vec<_>, _>>()?;
        let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let targets = Tensor::f_from_slice(&targets)?.f_to_device(self.vs.device())?;
        let log_probs = self.logits_with(&inputs, sparse)?.f_log_softmax(-1, Kind::Float)?;
        Ok(log_probs.f_nll_loss(&targets, None::<Tensor>, Reduction::Mean, -100)?)
    }

    fn label_index(&self, target: &Target) -> Result<i64, ModelError> {
        match target {
            Target::Label(label) => self
                .index
                .get(label)
                .copied()
                .ok_or_else(|| ModelError::NotTrained(format!("label {label:?} was not prepared"))),
            other => Err(ModelError::WrongTarget {
                expected: TargetKind::Label,
                got: other.kind(),
            }),
        }
    }
}

impl AgentModel for TextClassifier {
    fn kind(&self) -> ModelKind {
        ModelKind::TextClassifier
    }

    fn target_kind(&self) -> TargetKind {
        TargetKind::Label
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        let mut new_labels = Vec::new();
        for example in examples {
            match &example.expected_output {
                Target::Label(label) => {
                    if !self.index.contains_key(label) && !new_labels.contains(label) {
                        new_labels.push(label.clone());
                    }
                }
                other => {
                    return Err(ModelError::WrongTarget {
                        expected: TargetKind::Label,
                        got: other.kind(),
                    })
                }
            }
        }
        if new_labels.is_empty() {
            return Ok(());
        }
        // New rows start at zero: the new class begins with the bias-only logit
        // 0 and the existing rows keep their values.
        let grown = crate::grad::no_grad(|| -> Result<(Tensor, Tensor), ModelError> {
            let dim = self.config.embedding_dim as i64;
            let extra = new_labels.len() as i64;
            let device = self.vs.device();
            let w = Tensor::f_cat(
                &[&self.out_weight, &Tensor::f_zeros([extra, dim], (Kind::Float, device))?],
                0,
            )?;
            let b = Tensor::f_cat(&[&self.out_bias, &Tensor::f_zeros([extra], (Kind::Float, device))?], 0)?;
            Ok((w, b))
        })?;
        let mut labels = self.labels.clone();
        labels.extend(new_labels);
        let embedding = crate::grad::no_grad(|| self.embedding.f_detach())?;
        *self = Self::from_parts(
            self.config.clone(),
            self.vs.device(),
            &embedding,
            &grown.0,
            &grown.1,
            labels,
        )?;
        Ok(())
    }

    fn loss(&self, examples: &[&TrainingExample]) -> Result<Tensor, ModelError> {
        self.nll(examples, false)
    }

    fn fisher_loss(&self, example: &TrainingExample) -> Result<Tensor, ModelError> {
        self.nll(&[example], true)
    }

    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        if self.labels.is_empty() {
            return Err(ModelError::NotTrained("the classifier knows no label yet".into()));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let probs = crate::grad::no_grad(|| -> Result<Tensor, ModelError> {
            Ok(self.logits(inputs)?.f_softmax(-1, Kind::Float)?)
        })?;
        outputs_from_probabilities(&probs, &self.labels)
    }

    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        Ok(Box::new(self.try_copy()?))
    }

    fn sample_targets(&self, examples: &[&TrainingExample], seed: u64) -> Result<Vec<Target>, ModelError> {
        if self.labels.is_empty() {
            return Err(ModelError::NotTrained("the classifier knows no label yet".into()));
        }
        let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let probs = crate::grad::no_grad(|| -> Result<Tensor, ModelError> {
            Ok(self
                .logits(&inputs)?
                .f_softmax(-1, Kind::Float)?
                .f_to_device(Device::Cpu)?)
        })?;
        let labels = self.labels.len();
        let probs = Vec::<f32>::try_from(probs.f_reshape([-1])?)?;
        let mut rng = SplitMix64::new(seed);
        Ok(probs
            .chunks(labels)
            .map(|row| {
                let u = rng.next_f32();
                let mut cumulative = 0.0;
                let index = row
                    .iter()
                    .position(|&p| {
                        cumulative += p;
                        u < cumulative
                    })
                    .unwrap_or(labels - 1);
                Target::Label(self.labels[index].clone())
            })
            .collect())
    }

    fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    fn minibatch_size(&self) -> usize {
        self.config.minibatch_size
    }

    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({ "labels": self.labels, "config": self.config })
    }

    fn restore(&mut self, params: &BTreeMap<String, Tensor>, meta: &serde_json::Value) -> Result<(), ModelError> {
        *self = Self::from_checkpoint(self.vs.device(), params, meta)?;
        Ok(())
    }
}

/// The metadata a text classifier's checkpoint carries.
#[derive(serde::Deserialize)]
struct SavedMeta {
    labels: Vec<String>,
    config: TextModelConfig,
}
