//! The built-in token tagger (analyst `entity_extraction`): one BIO tag per
//! whitespace-separated token, by a linear-chain conditional random field
//! (Lafferty, McCallum & Pereira 2001) over hashed token features.
//!
//! - Emissions: each token's score for a tag is the sum of its features'
//!   weights in a `buckets × tags` table ([`features`]: the word, its
//!   shape, affixes, capitalisation, position and the words around it).
//! - Transitions: a `(tags + 1) × tags` table (row 0: the first tag), under
//!   the constraints of BIO: `I-X` only continues an `X`
//!   ([`crf::bio_transitions`]), in training and in decoding alike.
//! - Prediction is the best allowed sequence (Viterbi); the confidence is the
//!   mean posterior probability of the chosen tags.
//! - Training minimises the gold sequence's negative log-likelihood, one
//!   sentence per step, with the library's row-wise adaptive steps
//!   ([`crate::optim`]): the gradients come in closed form from
//!   forward–backward (the expected minus the gold feature counts), for only
//!   the rows the sentence uses. Updates of 50 sentences and their replayed
//!   examples take milliseconds, where back-propagating a dense network took
//!   most of a second, and the tagger learns from each sentence what a
//!   batch-trained CRF learns from its corpus.
//!
//! Tags are learned as they appear: the tables grow by zero columns (and
//! transitions), so what was learned keeps its scores. A gold sequence that
//! is not valid BIO is read as [`crate::eval::entity_spans`] reads it (an
//! `I-X` that continues nothing starts an `X`).

mod crf;
mod features;
mod train;

use std::collections::{BTreeMap, HashMap};

use tch::{nn::VarStore, Device, Kind, Tensor};

use super::bag::saved_param;
use super::{read_metadata, tensor_on, AgentModel, Gradients, ModelKind, ModelOutput, TrainingSettings};
use crate::base::{ModelError, ValidationError};
use crate::base::{Target, TargetKind, TrainingExample};
use crate::models::TextModelConfig;
use crate::optim::{self, Penalties, Touched};
use crf::{bio_transitions, repair_bio, Chain};
use features::sentence_features;

/// The `buckets × tags` emission weights.
const WEIGHT: &str = "weight";
/// The `(tags + 1) × tags` transition weights.
const TRANSITIONS: &str = "transitions";
/// What a checkpoint's metadata calls this model, so that a checkpoint of
/// the convolutional tagger of earlier versions is refused by name.
const FORMAT: &str = "linear_chain_crf";
/// The score of a forbidden transition in the differentiable loss: its
/// probability underflows to zero, its gradient is zero.
const FORBIDDEN: f32 = -1e4;

/// A BIO tagger: a linear-chain CRF over hashed token features.
#[derive(Debug)]
pub struct TokenTagger {
    vs: VarStore,
    weight: Tensor,
    /// One squared-gradient sum per row of `weight` (`buckets × 1`).
    weight_sums: Tensor,
    transitions: Tensor,
    /// One squared-gradient sum per transition.
    transition_sums: Tensor,
    tags: Vec<String>,
    index: HashMap<String, usize>,
    /// Which transitions BIO allows, in the layout of `transitions`.
    allowed: Vec<bool>,
    config: TextModelConfig,
}

/// The four tables of a tagger, by role.
struct Tables {
    weight: Tensor,
    weight_sums: Tensor,
    transitions: Tensor,
    transition_sums: Tensor,
}

impl TokenTagger {
    /// A tagger that knows no tag yet. A CRF starts at zero, so `seed` is
    /// not used; it is taken for the signature every built-in model shares.
    pub fn new(config: TextModelConfig, device: Device, seed: u64) -> Result<TokenTagger, ModelError> {
        let _ = seed;
        let zeros = |shape: &[i64]| Tensor::f_zeros(shape, (Kind::Float, Device::Cpu));
        let buckets = config.hash_buckets as i64;
        let tables = Tables {
            weight: zeros(&[buckets, 0])?,
            weight_sums: zeros(&[buckets, 1])?,
            transitions: zeros(&[1, 0])?,
            transition_sums: zeros(&[1, 0])?,
        };
        Self::from_tables(config, device, &tables, Vec::new())
    }

    fn from_tables(
        config: TextModelConfig,
        device: Device,
        tables: &Tables,
        tags: Vec<String>,
    ) -> Result<TokenTagger, ModelError> {
        let vs = VarStore::new(device);
        let root = vs.root();
        let weight = root.f_var_copy(WEIGHT, &tables.weight)?;
        let transitions = root.f_var_copy(TRANSITIONS, &tables.transitions)?;
        let weight_sums = optim::add_state_with(&vs, WEIGHT, &tables.weight_sums.f_to_device(device)?)?;
        let transition_sums = optim::add_state_with(&vs, TRANSITIONS, &tables.transition_sums.f_to_device(device)?)?;
        let index = tags.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect();
        let allowed = bio_transitions(&tags);
        Ok(TokenTagger {
            vs,
            weight,
            weight_sums,
            transitions,
            transition_sums,
            tags,
            index,
            allowed,
            config,
        })
    }

    /// A tagger with a checkpoint's weights, optimiser state and tag set.
    pub fn from_checkpoint(
        device: Device,
        saved: &BTreeMap<String, Tensor>,
        meta: &serde_json::Value,
    ) -> Result<TokenTagger, ModelError> {
        if meta["format"] != FORMAT {
            return Err(ModelError::IncompatibleCheckpoint(
                "this checkpoint is of the convolutional token tagger of earlier versions, which the \
                 linear-chain CRF tagger cannot read: export the task's examples and train it anew"
                    .into(),
            ));
        }
        let config: TextModelConfig = read_metadata(&meta["config"], "a token tagger")?;
        let tags: Vec<String> = read_metadata(&meta["tags"], "a token tagger")?;
        let _guard = tch::no_grad_guard();
        let tables = Tables {
            weight: saved_param(saved, WEIGHT, device)?,
            weight_sums: saved_param(saved, &optim::state_name(WEIGHT), device)?,
            transitions: saved_param(saved, TRANSITIONS, device)?,
            transition_sums: saved_param(saved, &optim::state_name(TRANSITIONS), device)?,
        };
        // What predictions index by: a checkpoint that disagrees with its
        // own metadata is refused, not read past its end.
        let (buckets, k) = (config.hash_buckets as i64, tags.len() as i64);
        for (name, table, shape) in [
            (WEIGHT, &tables.weight, [buckets, k]),
            ("weight sums", &tables.weight_sums, [buckets, 1]),
            (TRANSITIONS, &tables.transitions, [k + 1, k]),
            ("transition sums", &tables.transition_sums, [k + 1, k]),
        ] {
            if buckets == 0 || table.size() != shape {
                return Err(ModelError::IncompatibleCheckpoint(format!(
                    "a token tagger checkpoint's {name} is {:?}, its metadata ({} buckets, {k} tags) says {shape:?}",
                    table.size(),
                    config.hash_buckets
                )));
            }
        }
        Self::from_tables(config, device, &tables, tags)
    }

    fn tables(&self) -> Tables {
        Tables {
            weight: self.weight.shallow_clone(),
            weight_sums: self.weight_sums.shallow_clone(),
            transitions: self.transitions.shallow_clone(),
            transition_sums: self.transition_sums.shallow_clone(),
        }
    }

    /// The tables with `extra` more tags, zero.
    fn grown(&self, extra: usize) -> Result<Tables, ModelError> {
        let (k, extra) = (self.tags.len() as i64, extra as i64);
        let device = self.vs.device();
        crate::grad::no_grad(|| {
            let weight = Tensor::f_zeros([self.config.hash_buckets as i64, k + extra], (Kind::Float, device))?;
            if k > 0 {
                weight.f_narrow(1, 0, k)?.f_copy_(&self.weight)?;
            }
            let square = |old: &Tensor| -> Result<Tensor, ModelError> {
                let grown = Tensor::f_zeros([k + extra + 1, k + extra], (Kind::Float, device))?;
                if k > 0 {
                    grown.f_narrow(0, 0, k + 1)?.f_narrow(1, 0, k)?.f_copy_(old)?;
                }
                Ok(grown)
            };
            Ok(Tables {
                weight,
                weight_sums: self.weight_sums.shallow_clone(),
                transitions: square(&self.transitions)?,
                transition_sums: square(&self.transition_sums)?,
            })
        })
    }

    /// The tag indices of an example's gold tags, read as valid BIO: one
    /// per whitespace-separated token of its input, or an error.
    fn gold(&self, example: &TrainingExample) -> Result<Vec<usize>, ModelError> {
        let tags = gold_tags(example)?;
        let tokens = example.input_text.split_whitespace().count();
        if tags.len() != tokens {
            return Err(ValidationError::TagCountMismatch {
                tokens,
                tags: tags.len(),
            }
            .into());
        }
        tags.iter()
            .map(|tag| {
                self.index
                    .get(tag)
                    .copied()
                    .ok_or_else(|| ModelError::NotTrained(format!("tag {tag:?} was not prepared")))
            })
            .collect()
    }

    fn features(&self, text: &str) -> Vec<Vec<u32>> {
        let tokens: Vec<&str> = text.split_whitespace().collect();
        sentence_features(&tokens, self.config.hash_buckets)
    }

    /// The transitions' scores, as a flat `(tags + 1) × tags` list.
    fn transition_scores(&self) -> Result<Vec<f32>, ModelError> {
        let numel = self.transitions.numel();
        let mut scores = vec![0f32; numel];
        self.transitions.f_copy_data(&mut scores, numel)?;
        Ok(scores)
    }

    /// The emissions of every token of `sentences`, `tokens × tags`, from
    /// one lookup; `None` when there is no token.
    fn emissions(&self, sentences: &[Vec<Vec<u32>>], sparse: bool) -> Result<Option<Tensor>, ModelError> {
        let (mut ids, mut offsets) = (Vec::new(), Vec::new());
        for token in sentences.iter().flatten() {
            offsets.push(ids.len() as i64);
            ids.extend(token.iter().map(|&id| i64::from(id)));
        }
        if offsets.is_empty() {
            return Ok(None);
        }
        let device = self.vs.device();
        let (sum, _, _, _) = Tensor::f_embedding_bag(
            &self.weight,
            &tensor_on(&ids, device)?,
            &tensor_on(&offsets, device)?,
            false,
            0,
            sparse,
            None::<Tensor>,
            false,
        )?;
        Ok(Some(sum))
    }
}

/// An example's gold tags, read as valid BIO ([`repair_bio`]).
fn gold_tags(example: &TrainingExample) -> Result<Vec<String>, ModelError> {
    let mut tags = example.expected_output.as_tags()?.to_vec();
    repair_bio(&mut tags);
    Ok(tags)
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
        let gold = examples.iter().map(gold_tags).collect::<Result<Vec<_>, _>>()?;
        if let Some((tags, added)) = super::grown_names(&self.tags, &self.index, gold.into_iter().flatten()) {
            let tables = self.grown(added)?;
            *self = Self::from_tables(self.config.clone(), self.vs.device(), &tables, tags)?;
        }
        Ok(())
    }

    /// The mean negative log-likelihood per sentence.
    fn loss(&self, examples: &[&TrainingExample], gradients: Gradients) -> Result<Tensor, ModelError> {
        self.mean_nll(examples, gradients == Gradients::Sparse)
    }

    /// The best allowed tag sequence of each input; the confidence is the
    /// mean posterior probability of its tags.
    fn predict(&self, inputs: &[&str]) -> Result<Vec<ModelOutput>, ModelError> {
        let k = self.tags.len();
        if k == 0 {
            return Err(ModelError::NotTrained("the tagger knows no tag yet".into()));
        }
        let sentences: Vec<Vec<Vec<u32>>> = inputs.iter().map(|text| self.features(text)).collect();
        let mut emissions = Vec::new();
        if let Some(scores) = crate::grad::no_grad(|| self.emissions(&sentences, false))? {
            let numel = scores.numel();
            emissions = vec![0f32; numel];
            scores.f_copy_data(&mut emissions, numel)?;
        }
        let transitions = self.transition_scores()?;
        let mut first = 0;
        Ok(sentences
            .iter()
            .map(|sentence| {
                let n = sentence.len();
                let chain = Chain {
                    emissions: &emissions[first * k..(first + n) * k],
                    transitions: &transitions,
                    allowed: &self.allowed,
                    tags: k,
                };
                first += n;
                let path = chain.viterbi();
                let confidence = match (n, chain.posteriors()) {
                    (0, _) => 1.0,
                    (_, Some(p)) => {
                        path.iter()
                            .enumerate()
                            .map(|(t, &j)| p.marginals[t * k + j])
                            .sum::<f64>()
                            / n as f64
                    }
                    (_, None) => 0.0,
                };
                let mut tags: Vec<String> = path.iter().map(|&j| self.tags[j].clone()).collect();
                // Valid already, unless a score was not finite.
                repair_bio(&mut tags);
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
            Self::from_tables(self.config.clone(), self.vs.device(), &self.tables(), self.tags.clone())
        })?;
        Ok(Box::new(copy))
    }

    /// The tagger's own rate; sentences per step those of the hashed linear
    /// models (1, each sentence in turn, the closed-form pass). The
    /// configuration's `learning_rate` and `minibatch_size` are Adam's, for
    /// dense models.
    fn settings(&self) -> TrainingSettings {
        TrainingSettings::adaptive(self.config.tagger_learning_rate, self.config.linear_minibatch_size)
    }

    /// One sentence at a time, with gradients in closed form
    /// (`TokenTagger::closed_form`); with an EWC penalty, back-propagated.
    fn closed_form_pass(
        &mut self,
        examples: &[&TrainingExample],
        penalties: &Penalties<'_>,
    ) -> Result<Option<(f64, Touched)>, ModelError> {
        if penalties.iter().any(|(ewc, lambda)| *lambda != 0.0 && !ewc.is_empty()) {
            return Ok(None);
        }
        let mut touched = Touched::new();
        let loss = self.closed_form(examples, &mut touched)?;
        Ok(Some((loss, touched)))
    }

    fn labels(&self) -> Vec<String> {
        self.tags.clone()
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({ "format": FORMAT, "tags": self.tags, "config": self.config })
    }

    fn restore(&mut self, params: &BTreeMap<String, Tensor>, meta: &serde_json::Value) -> Result<(), ModelError> {
        *self = Self::from_checkpoint(self.vs.device(), params, meta)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(text: &str, tags: &str) -> TrainingExample {
        let tags = tags.split_whitespace().map(str::to_string).collect();
        TrainingExample::new(text.len() as u64, "analyst", "entities", text, Target::Tags(tags))
    }

    fn small() -> TextModelConfig {
        TextModelConfig {
            hash_buckets: 1 << 12,
            ..TextModelConfig::default()
        }
    }

    #[test]
    fn closed_form_steps_match_the_back_propagated_loss() {
        let batch = [
            example("Barack Obama visited Paris today", "B-per I-per O B-loc O"),
            example("I love Paris", "O O B-loc"),
            example("Obama said so", "I-per O O"),
        ];
        let refs: Vec<&TrainingExample> = batch.iter().collect();
        let mut closed = TokenTagger::new(small(), Device::Cpu, 0).unwrap();
        closed.prepare(&batch).unwrap();
        // A first pass so that the weights and sums are not all zero.
        closed.closed_form_pass(&refs, &[]).unwrap();
        let autograd =
            TokenTagger::from_tables(small(), Device::Cpu, &closed.grown(0).unwrap(), closed.tags.clone()).unwrap();
        let before: f64 = refs
            .iter()
            .map(|e| closed.nll(&[e], false).unwrap().double_value(&[]))
            .sum();
        let (loss, touched) = closed.closed_form_pass(&refs, &[]).unwrap().unwrap();
        // The pass reports each sentence's loss before its own step: the
        // first one's equals the loss before the pass.
        assert!(loss > 0.0 && loss < before * 1.5, "{loss} against {before}");
        // One sentence per step, in turn, as the pass takes them.
        for e in &refs {
            crate::grad::with_grad(|| {
                autograd.loss(&[e], Gradients::Sparse).unwrap().backward();
                let rate = autograd.settings().learning_rate;
                optim::adaptive_step(autograd.var_store(), rate, &[], &mut Touched::new()).unwrap();
            });
        }
        for name in [WEIGHT, TRANSITIONS] {
            for var in [name.to_string(), optim::state_name(name)] {
                let a = &closed.vs.variables()[&var];
                let b = &autograd.vs.variables()[&var];
                let diff = a.f_sub(b).unwrap().abs().max().double_value(&[]);
                let scale = b.abs().max().double_value(&[]);
                assert!(diff <= 1e-4 * scale.max(1.0), "{var}: {diff} of {scale}");
            }
        }
        assert!(!touched.is_empty());
    }

    #[test]
    fn bad_examples_and_checkpoints_are_errors_not_panics() {
        let mut tagger = TokenTagger::new(small(), Device::Cpu, 0).unwrap();
        let good = example("Paris is big", "B-loc O O");
        tagger.prepare(std::slice::from_ref(&good)).unwrap();
        let short = example("Paris is big", "B-loc O");
        let refused = tagger.closed_form_pass(&[&short], &[]).unwrap_err();
        assert!(matches!(refused, ModelError::Invalid(_)), "{refused}");
        assert!(tagger.nll(&[&short], false).is_err());
        // A batch without a token back-propagates to nothing.
        let empty = example("", "");
        crate::grad::with_grad(|| tagger.loss(&[&empty], Gradients::Sparse).unwrap().backward());
        // Metadata that does not fit the tensors: refused.
        let saved: BTreeMap<String, Tensor> = tagger.vs.variables().into_iter().collect();
        let mut meta = tagger.metadata();
        meta["tags"] = serde_json::json!(["O", "B-loc", "I-loc"]);
        let refused = TokenTagger::from_checkpoint(Device::Cpu, &saved, &meta).unwrap_err();
        assert!(refused.to_string().contains("metadata"), "{refused}");
    }

    #[test]
    fn it_learns_names_and_decodes_valid_bio() {
        let batch = [
            example("Barack Obama visited Paris today", "B-per I-per O B-loc O"),
            example("Angela Merkel met Barack Obama", "B-per I-per O B-per I-per"),
            example("We flew to Paris and Berlin", "O O O B-loc O B-loc"),
        ];
        let refs: Vec<&TrainingExample> = batch.iter().collect();
        let mut tagger = TokenTagger::new(small(), Device::Cpu, 0).unwrap();
        tagger.prepare(&batch).unwrap();
        for _ in 0..5 {
            tagger.closed_form_pass(&refs, &[]).unwrap();
        }
        let out = tagger.predict(&["Barack Obama visited Berlin", "", "Merkel"]).unwrap();
        let expected: Vec<String> = ["B-per", "I-per", "O", "B-loc"].map(String::from).to_vec();
        assert_eq!(out[0].output, Target::Tags(expected));
        assert_eq!(out[1].output, Target::Tags(Vec::new()));
        assert!(out[0].confidence > 0.5 && out[0].confidence <= 1.0);
        // A checkpoint's tensors and metadata give the same tagger.
        let saved: BTreeMap<String, Tensor> = tagger.vs.variables().into_iter().collect();
        let restored = TokenTagger::from_checkpoint(Device::Cpu, &saved, &tagger.metadata()).unwrap();
        assert_eq!(
            restored.predict(&["Barack Obama visited Berlin"]).unwrap()[0].output,
            out[0].output
        );
        let old = serde_json::json!({ "tags": ["O"], "config": small() });
        let refused = TokenTagger::from_checkpoint(Device::Cpu, &saved, &old).unwrap_err();
        assert!(refused.to_string().contains("convolutional"), "{refused}");
    }
}
