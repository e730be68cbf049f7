//! The built-in text classifier: a hashed linear model over word uni- and
//! bi-grams (one weight per n-gram and class, as Vowpal Wabbit's `--oaa`
//! with `--ngram 2`), a softmax over the classes, and adaptive per-weight
//! steps whose state lives in the model (see [`crate::optim`]). It learns
//! new labels as they appear: the table grows by one column per new label,
//! and the columns it had keep their values.
//!
//! It replaced a fastText-style 2^18 × 32 embedding bag trained by a fresh
//! Adam per update: on the news stream in date order, waiting for each
//! update of 50, that scored 0.371 prequential accuracy; this one learns
//! rare, decisive n-grams from a single article (figures in docs/measurements.md).

use std::collections::{BTreeMap, HashMap};

use tch::{nn::VarStore, Device, Kind, Reduction, Tensor};

use super::hashed::{softmax_gradient, FeatureScale, HashedLinear, Steps};
use super::{
    outputs_from_probabilities, read_metadata, tensor_on, AgentModel, Gradients, KnownScores, ModelKind, ModelOutput,
    Scored, TrainingSettings,
};
use crate::base::ModelError;
use crate::base::SplitMix64;
use crate::base::{Target, TargetKind, TrainingExample};
use crate::ewc::Fisher;
use crate::models::TextModelConfig;
use crate::optim::{Penalties, Touched};

/// Hashed linear classifier over word uni- and bi-grams.
#[derive(Debug)]
pub struct TextClassifier {
    layer: HashedLinear,
    labels: Vec<String>,
    index: HashMap<String, i64>,
    config: TextModelConfig,
}

impl TextClassifier {
    /// A classifier that knows no label yet. Its weights start at zero (a
    /// convex model needs no random start); `seed` is kept for the model
    /// kinds that do.
    pub fn new(config: TextModelConfig, device: Device, seed: u64) -> Result<TextClassifier, ModelError> {
        let _ = seed;
        let layer = HashedLinear::zeros(device, config.hash_buckets, 0, FeatureScale::RootBelow)?;
        Ok(Self::from_layer(config, layer, Vec::new()))
    }

    fn from_layer(config: TextModelConfig, layer: HashedLinear, labels: Vec<String>) -> TextClassifier {
        let index = super::column_index(&labels);
        TextClassifier {
            layer,
            labels,
            index,
            config,
        }
    }

    /// A classifier with a checkpoint's weights, optimiser state and label
    /// map (see [`AgentModel::metadata`]).
    pub fn from_checkpoint(
        device: Device,
        params: &BTreeMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> Result<TextClassifier, ModelError> {
        let saved: SavedMeta = read_metadata(meta, "a text classifier")?;
        let _guard = tch::no_grad_guard();
        let layer = HashedLinear::from_checkpoint(device, params, saved.feature_scale)?;
        if layer.weight.size().get(1).copied() != Some(saved.labels.len() as i64) {
            return Err(ModelError::IncompatibleCheckpoint(format!(
                "the checkpoint's weight table has {:?} columns for {} labels",
                layer.weight.size(),
                saved.labels.len()
            )));
        }
        Ok(Self::from_layer(saved.config, layer, saved.labels))
    }

    /// A deep copy with its own variables.
    pub fn try_copy(&self) -> Result<TextClassifier, ModelError> {
        Ok(Self::from_layer(
            self.config.clone(),
            self.layer.try_copy()?,
            self.labels.clone(),
        ))
    }

    fn logits(&self, inputs: &[&str], sparse: bool) -> Result<Tensor, ModelError> {
        self.layer.forward(inputs, &self.config, sparse)
    }

    fn nll(&self, examples: &[&TrainingExample], sparse: bool) -> Result<Tensor, ModelError> {
        let targets = examples
            .iter()
            .map(|e| self.label_index(&e.expected_output))
            .collect::<Result<Vec<_>, _>>()?;
        let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let targets = tensor_on(&targets, self.layer.vs.device())?;
        let log_probs = self.logits(&inputs, sparse)?.f_log_softmax(-1, Kind::Float)?;
        Ok(log_probs.f_nll_loss(&targets, None::<Tensor>, Reduction::Mean, -100)?)
    }

    fn probabilities(&self, inputs: &[&str]) -> Result<Tensor, ModelError> {
        crate::grad::no_grad(|| -> Result<Tensor, ModelError> {
            Ok(self.logits(inputs, false)?.f_softmax(-1, Kind::Float)?)
        })
    }

    /// The examples' texts and their labels' columns.
    fn texts_and_targets<'e>(
        &self,
        examples: &[&'e TrainingExample],
    ) -> Result<(Vec<&'e str>, Vec<usize>), ModelError> {
        let targets = examples
            .iter()
            .map(|e| Ok(self.label_index(&e.expected_output)? as usize))
            .collect::<Result<Vec<usize>, ModelError>>()?;
        Ok((examples.iter().map(|e| e.input_text.as_str()).collect(), targets))
    }

    fn label_index(&self, target: &Target) -> Result<i64, ModelError> {
        let label = target.as_label()?;
        self.index
            .get(label)
            .copied()
            .ok_or_else(|| ModelError::NotTrained(format!("label {label:?} was not prepared")))
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
        &self.layer.vs
    }

    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        let labels = examples
            .iter()
            .map(|example| example.expected_output.as_label().map(str::to_string))
            .collect::<Result<Vec<String>, _>>()?;
        if let Some((labels, added)) = super::grown_names(&self.labels, &self.index, labels) {
            let layer = self.layer.grown(added)?;
            *self = Self::from_layer(self.config.clone(), layer, labels);
        }
        Ok(())
    }

    /// Sparse gradients are sparse in the weight table: an adaptive step
    /// touches only the rows of the n-grams in `examples`.
    fn loss(&self, examples: &[&TrainingExample], gradients: Gradients) -> Result<Tensor, ModelError> {
        self.nll(examples, gradients == Gradients::Sparse)
    }

    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        if self.labels.is_empty() {
            return Err(ModelError::NotTrained("the classifier knows no label yet".into()));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        outputs_from_probabilities(&self.probabilities(inputs)?, &self.labels)
    }

    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        Ok(Box::new(self.try_copy()?))
    }

    fn scored_answers(&self, inputs: &[&str], known: KnownScores<'_>) -> Option<Result<Vec<Scored>, ModelError>> {
        if self.labels.is_empty() {
            return Some(Err(ModelError::NotTrained("the classifier knows no label yet".into())));
        }
        let scored = self.layer.raw_scores(inputs, known, &self.config);
        Some(scored.map(|all| {
            all.into_iter()
                .map(|(scores, derived)| {
                    // The most probable label is the one of the largest
                    // score (the last of equals, as `predict` picks it).
                    let best = scores
                        .iter()
                        .take(self.labels.len())
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(0, |(i, _)| i);
                    Scored {
                        answer: Target::Label(self.labels[best].clone()),
                        scores,
                        derived,
                    }
                })
                .collect()
        }))
    }

    fn sample_targets(&self, examples: &[&TrainingExample], seed: u64) -> Result<Vec<Target>, ModelError> {
        if self.labels.is_empty() {
            return Err(ModelError::NotTrained("the classifier knows no label yet".into()));
        }
        let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let probs = self.probabilities(&inputs)?.f_to_device(Device::Cpu)?;
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

    /// The linear models' own rate and step size, not the Adam ones.
    fn settings(&self) -> TrainingSettings {
        TrainingSettings::adaptive(self.config.linear_learning_rate, self.config.linear_minibatch_size)
    }

    /// Softmax cross-entropy, whose gradient with respect to the scores is
    /// `p − onehot(y)`.
    fn closed_form_pass(
        &mut self,
        examples: &[&TrainingExample],
        penalties: &Penalties<'_>,
    ) -> Result<Option<(f64, Touched)>, ModelError> {
        let (texts, targets) = self.texts_and_targets(examples)?;
        let gradient = |i: usize, scores: &[f32]| Ok(softmax_gradient(scores, targets[i]));
        let rate = self.config.linear_learning_rate;
        let pass = self
            .layer
            .closed_form_pass(&texts, &self.config, Steps { rate, penalties }, gradient);
        pass.map(Some)
    }

    fn closed_form_fisher(&self, examples: &[&TrainingExample]) -> Result<Option<Fisher>, ModelError> {
        let (texts, targets) = self.texts_and_targets(examples)?;
        let fisher = self.layer.squared_gradients(&texts, &self.config, |i, scores| {
            Ok(softmax_gradient(scores, targets[i]))
        })?;
        Ok(Some(fisher))
    }

    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({ "labels": self.labels, "config": self.config, "feature_scale": self.layer.scale() })
    }

    fn restore(&mut self, params: &BTreeMap<String, Tensor>, meta: &serde_json::Value) -> Result<(), ModelError> {
        *self = Self::from_checkpoint(self.layer.vs.device(), params, meta)?;
        Ok(())
    }
}

/// The metadata a text classifier's checkpoint carries.
#[derive(serde::Deserialize)]
struct SavedMeta {
    labels: Vec<String>,
    config: TextModelConfig,
    /// Missing in a checkpoint saved before the bounded root scale: that
    /// one's weights were learned with the mean, which it keeps.
    #[serde(default)]
    feature_scale: FeatureScale,
}
