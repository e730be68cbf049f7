//! The built-in token tagger (analyst `entity_extraction`): one BIO tag per
//! whitespace-separated token. Each token is the mean embedding of hashed
//! features (the lower-cased word, its shape, prefix and suffix, character
//! trigrams); a convolution over each token's neighbours (one each side)
//! adds context; a linear layer over both gives the tag scores. Tags are
//! learned as they appear (the output layer grows, as the classifier's), and
//! predictions are decoded into valid BIO (an `I-` that continues nothing
//! becomes a `B-`).

use std::collections::{BTreeMap, HashMap};

use tch::{nn::VarStore, Device, Kind, Reduction, Tensor};

use super::bag::{initial_embedding, saved_param};
use super::{tensor_on, AgentModel, ModelKind, ModelOutput};
use crate::config::TextModelConfig;
use crate::error::ModelError;
use crate::example::{Target, TargetKind, TrainingExample};
use crate::features::{stable_hash, SplitMix64};

const EMBEDDING: &str = "embedding";
const CONV_WEIGHT: &str = "conv_weight";
const CONV_BIAS: &str = "conv_bias";
const OUT_WEIGHT: &str = "out_weight";
const OUT_BIAS: &str = "out_bias";

/// Neighbours seen each side of a token by the convolution.
const CONTEXT: i64 = 1;

/// A BIO tagger over hashed token features and a convolution.
#[derive(Debug)]
pub struct TokenTagger {
    vs: VarStore,
    params: BTreeMap<&'static str, Tensor>,
    tags: Vec<String>,
    index: HashMap<String, i64>,
    config: TextModelConfig,
}

/// The hashed feature ids of one token.
fn token_features(token: &str, buckets: usize) -> Vec<i64> {
    let lower = token.to_lowercase();
    let shape: String = token
        .chars()
        .map(|c| match c {
            c if c.is_uppercase() => 'X',
            c if c.is_lowercase() => 'x',
            c if c.is_numeric() => 'd',
            c => c,
        })
        .fold(String::new(), |mut s, c| {
            if !s.ends_with(c) {
                s.push(c);
            }
            s
        });
    let chars: Vec<char> = format!("<{lower}>").chars().collect();
    let prefix: String = lower.chars().take(3).collect();
    let suffix: String = lower.chars().rev().take(3).collect();
    let mut features = vec![
        format!("w:{lower}"),
        format!("s:{shape}"),
        format!("p:{prefix}"),
        format!("x:{suffix}"),
    ];
    features.extend(chars.windows(3).map(|w| format!("c:{}", w.iter().collect::<String>())));
    features
        .iter()
        .map(|f| (stable_hash(f.as_bytes()) % buckets as u64) as i64)
        .collect()
}

/// A valid BIO sequence: an `I-X` that does not continue an `X` becomes `B-X`.
pub(crate) fn repair_bio(tags: &mut [String]) {
    let mut previous = String::from("O");
    for tag in tags.iter_mut() {
        if let Some(kind) = tag.strip_prefix("I-") {
            let continues = previous
                .split_once('-')
                .is_some_and(|(p, k)| (p == "B" || p == "I") && k == kind);
            if !continues {
                *tag = format!("B-{kind}");
            }
        }
        previous = tag.clone();
    }
}

fn uniform(shape: &[i64], bound: f32, seed: u64) -> Result<Tensor, ModelError> {
    let mut rng = SplitMix64::new(seed);
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * bound).collect();
    Ok(Tensor::f_from_slice(&values)?.f_reshape(shape)?)
}

impl TokenTagger {
    /// A tagger that knows no tag yet, its weights seeded by `seed`.
    pub fn new(config: TextModelConfig, device: Device, seed: u64) -> Result<TokenTagger, ModelError> {
        let dim = config.embedding_dim as i64;
        let hidden = 2 * dim;
        let width = 2 * CONTEXT + 1;
        let bound = 1.0 / ((dim * width) as f32).sqrt();
        let mut params = BTreeMap::new();
        params.insert(EMBEDDING, initial_embedding(&config, seed)?);
        params.insert(CONV_WEIGHT, uniform(&[hidden, dim, width], bound, seed ^ 1)?);
        params.insert(CONV_BIAS, Tensor::f_zeros([hidden], (Kind::Float, Device::Cpu))?);
        params.insert(
            OUT_WEIGHT,
            Tensor::f_zeros([0, hidden + dim], (Kind::Float, Device::Cpu))?,
        );
        params.insert(OUT_BIAS, Tensor::f_zeros([0], (Kind::Float, Device::Cpu))?);
        Self::from_parts(config, device, &params, Vec::new())
    }

    fn from_parts(
        config: TextModelConfig,
        device: Device,
        values: &BTreeMap<&'static str, Tensor>,
        tags: Vec<String>,
    ) -> Result<TokenTagger, ModelError> {
        let vs = VarStore::new(device);
        let root = vs.root();
        let mut params = BTreeMap::new();
        for (name, value) in values {
            params.insert(*name, root.f_var_copy(name, value)?);
        }
        let index = tags.iter().enumerate().map(|(i, t)| (t.clone(), i as i64)).collect();
        Ok(TokenTagger {
            vs,
            params,
            tags,
            index,
            config,
        })
    }

    /// A tagger with a checkpoint's weights and tag set.
    pub fn from_checkpoint(
        device: Device,
        saved: &BTreeMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> Result<TokenTagger, ModelError> {
        let bad =
            |e: serde_json::Error| ModelError::NotSupported(format!("checkpoint metadata of a token tagger: {e}"));
        let config: TextModelConfig = serde_json::from_value(meta["config"].clone()).map_err(bad)?;
        let tags: Vec<String> = serde_json::from_value(meta["tags"].clone()).map_err(bad)?;
        let _guard = tch::no_grad_guard();
        let mut values = BTreeMap::new();
        for name in [EMBEDDING, CONV_WEIGHT, CONV_BIAS, OUT_WEIGHT, OUT_BIAS] {
            values.insert(name, saved_param(saved, name, device)?);
        }
        Self::from_parts(config, device, &values, tags)
    }

    fn param(&self, name: &str) -> &Tensor {
        &self.params[name]
    }

    /// Tag scores of every token of every input, `tokens × tags`, in order.
    fn scores(&self, inputs: &[&str]) -> Result<Tensor, ModelError> {
        let device = self.vs.device();
        let dim = self.config.embedding_dim as i64;
        let sentences: Vec<Vec<&str>> = inputs.iter().map(|t| t.split_whitespace().collect()).collect();
        let longest = sentences.iter().map(Vec::len).max().unwrap_or(0).max(1) as i64;
        let (mut ids, mut offsets, mut positions) = (Vec::new(), Vec::new(), Vec::new());
        for (s, tokens) in sentences.iter().enumerate() {
            for (i, token) in tokens.iter().enumerate() {
                offsets.push(ids.len() as i64);
                ids.extend(token_features(token, self.config.hash_buckets));
                positions.push(s as i64 * longest + i as i64);
            }
        }
        if positions.is_empty() {
            return Ok(Tensor::f_zeros([0, self.tags.len() as i64], (Kind::Float, device))?);
        }
        let ids = tensor_on(&ids, device)?;
        let offsets = tensor_on(&offsets, device)?;
        let positions = tensor_on(&positions, device)?;
        let (tokens, _, _, _) = Tensor::f_embedding_bag(
            self.param(EMBEDDING),
            &ids,
            &offsets,
            false,
            1,
            false,
            None::<Tensor>,
            false,
        )?;
        // Tokens into a zero-padded batch × dim × length for the convolution.
        let batch = sentences.len() as i64;
        let padded = Tensor::f_zeros([batch * longest, dim], (Kind::Float, device))?
            .f_index_copy(0, &positions, &tokens)?
            .f_reshape([batch, longest, dim])?
            .f_transpose(1, 2)?;
        let context = padded
            .f_conv1d(
                self.param(CONV_WEIGHT),
                Some(self.param(CONV_BIAS)),
                [1],
                [CONTEXT],
                [1],
                1,
            )?
            .f_relu()?
            .f_transpose(1, 2)?
            .f_reshape([batch * longest, -1])?
            .f_index_select(0, &positions)?;
        let features = Tensor::f_cat(&[&context, &tokens], 1)?;
        Ok(features
            .f_matmul(&self.param(OUT_WEIGHT).f_tr()?)?
            .f_add(self.param(OUT_BIAS))?)
    }

    fn tag_targets(&self, examples: &[&TrainingExample]) -> Result<Vec<i64>, ModelError> {
        let mut targets = Vec::new();
        for e in examples {
            match &e.expected_output {
                Target::Tags(tags) => {
                    for tag in tags {
                        let i = self
                            .index
                            .get(tag)
                            .ok_or_else(|| ModelError::NotTrained(format!("tag {tag:?} was not prepared")))?;
                        targets.push(*i);
                    }
                }
                other => {
                    return Err(ModelError::WrongTarget {
                        expected: TargetKind::Tags,
                        got: other.kind(),
                    })
                }
            }
        }
        Ok(targets)
    }
}

impl AgentModel for TokenTagger {
    fn kind(&self) -> ModelKind {
        ModelKind::TokenTagger
    }

    fn target_kind(&self) -> TargetKind {
        TargetKind::Tags
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn prepare(&mut self, examples: &[TrainingExample]) -> Result<(), ModelError> {
        let mut new_tags: Vec<String> = Vec::new();
        for example in examples {
            match &example.expected_output {
                Target::Tags(tags) => {
                    for tag in tags {
                        if !self.index.contains_key(tag) && !new_tags.contains(tag) {
                            new_tags.push(tag.clone());
                        }
                    }
                }
                other => {
                    return Err(ModelError::WrongTarget {
                        expected: TargetKind::Tags,
                        got: other.kind(),
                    })
                }
            }
        }
        if new_tags.is_empty() {
            return Ok(());
        }
        // New tags get zero rows: the rows the tagger had keep their values.
        let values = crate::grad::no_grad(|| -> Result<BTreeMap<&'static str, Tensor>, ModelError> {
            let device = self.vs.device();
            let extra = new_tags.len() as i64;
            let width = self.param(OUT_WEIGHT).size()[1];
            let mut values = BTreeMap::new();
            for (name, t) in &self.params {
                values.insert(*name, t.f_detach()?);
            }
            values.insert(
                OUT_WEIGHT,
                Tensor::f_cat(
                    &[
                        self.param(OUT_WEIGHT),
                        &Tensor::f_zeros([extra, width], (Kind::Float, device))?,
                    ],
                    0,
                )?,
            );
            values.insert(
                OUT_BIAS,
                Tensor::f_cat(
                    &[self.param(OUT_BIAS), &Tensor::f_zeros([extra], (Kind::Float, device))?],
                    0,
                )?,
            );
            Ok(values)
        })?;
        let mut tags = self.tags.clone();
        tags.extend(new_tags);
        *self = Self::from_parts(self.config.clone(), self.vs.device(), &values, tags)?;
        Ok(())
    }

    /// The mean negative log-likelihood per token.
    fn loss(&self, examples: &[&TrainingExample]) -> Result<Tensor, ModelError> {
        let targets = self.tag_targets(examples)?;
        let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
        let targets = tensor_on(&targets, self.vs.device())?;
        let log_probs = self.scores(&inputs)?.f_log_softmax(-1, Kind::Float)?;
        Ok(log_probs.f_nll_loss(&targets, None::<Tensor>, Reduction::Mean, -100)?)
    }

    /// Tags per token (valid BIO); confidence is the mean over tokens of the
    /// chosen tag's probability.
    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        if self.tags.is_empty() {
            return Err(ModelError::NotTrained("the tagger knows no tag yet".into()));
        }
        let probs = crate::grad::no_grad(|| -> Result<Tensor, ModelError> {
            Ok(self.scores(inputs)?.f_softmax(-1, Kind::Float)?)
        })?;
        let (top, arg) = probs.f_max_dim(-1, false)?;
        let top = Vec::<f32>::try_from(top.f_to_device(Device::Cpu)?)?;
        let arg = Vec::<i64>::try_from(arg.f_to_device(Device::Cpu)?)?;
        let mut next = 0;
        Ok(inputs
            .iter()
            .map(|text| {
                let n = text.split_whitespace().count();
                let mut tags: Vec<String> = arg[next..next + n]
                    .iter()
                    .map(|&i| self.tags[i as usize].clone())
                    .collect();
                repair_bio(&mut tags);
                let confidence = if n == 0 {
                    1.0
                } else {
                    top[next..next + n].iter().map(|&p| f64::from(p)).sum::<f64>() / n as f64
                };
                next += n;
                ModelOutput {
                    output: Target::Tags(tags),
                    confidence,
                    distribution: Vec::new(),
                }
            })
            .collect())
    }

    fn try_clone(&self) -> Result<Box<dyn AgentModel>, ModelError> {
        let copy = crate::grad::no_grad(|| {
            Self::from_parts(self.config.clone(), self.vs.device(), &self.params, self.tags.clone())
        })?;
        Ok(Box::new(copy))
    }

    fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    fn minibatch_size(&self) -> usize {
        self.config.minibatch_size
    }

    fn labels(&self) -> Vec<String> {
        self.tags.clone()
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({ "tags": self.tags, "config": self.config })
    }

    fn restore(&mut self, params: &BTreeMap<String, Tensor>, meta: &serde_json::Value) -> Result<(), ModelError> {
        *self = Self::from_checkpoint(self.vs.device(), params, meta)?;
        Ok(())
    }
}
