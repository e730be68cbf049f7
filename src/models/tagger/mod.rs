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

use std::collections::{BTreeMap, HashMap};

use tch::{nn::VarStore, Device, Kind, Tensor};

use super::bag::saved_param;
use super::hashed::{round_to_kept_precision, RowUnion};
use super::{tensor_on, AgentModel, ModelKind, ModelOutput, Training};
use crate::config::TextModelConfig;
use crate::error::ModelError;
use crate::example::{Target, TargetKind, TrainingExample};
use crate::optim::{self, Touched};
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
            return Err(ModelError::NotSupported(
                "this checkpoint is of the convolutional token tagger of earlier versions, which the \
                 linear-chain CRF tagger cannot read: export the task's examples and train it anew"
                    .into(),
            ));
        }
        let bad =
            |e: serde_json::Error| ModelError::NotSupported(format!("checkpoint metadata of a token tagger: {e}"));
        let config: TextModelConfig = serde_json::from_value(meta["config"].clone()).map_err(bad)?;
        let tags: Vec<String> = serde_json::from_value(meta["tags"].clone()).map_err(bad)?;
        let _guard = tch::no_grad_guard();
        let tables = Tables {
            weight: saved_param(saved, WEIGHT, device)?,
            weight_sums: saved_param(saved, &optim::state_name(WEIGHT), device)?,
            transitions: saved_param(saved, TRANSITIONS, device)?,
            transition_sums: saved_param(saved, &optim::state_name(TRANSITIONS), device)?,
        };
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

    /// The tag indices of an example's gold tags, read as valid BIO.
    fn gold(&self, example: &TrainingExample) -> Result<Vec<usize>, ModelError> {
        gold_tags(example)?
            .iter()
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

    /// The summed negative log-likelihood of the gold sequences, differentiable
    /// (forward algorithm in log space): for Adam, EWC's penalised steps and
    /// the Fisher information. The closed-form pass computes the same
    /// gradients without a graph.
    fn nll(&self, examples: &[&TrainingExample], sparse: bool) -> Result<Tensor, ModelError> {
        let device = self.vs.device();
        let k = self.tags.len() as i64;
        let mut total = Tensor::f_zeros([], (Kind::Float, device))?;
        if k == 0 {
            return Ok(total);
        }
        let sentences: Vec<Vec<Vec<u32>>> = examples.iter().map(|e| self.features(&e.input_text)).collect();
        let golds = examples.iter().map(|e| self.gold(e)).collect::<Result<Vec<_>, _>>()?;
        let Some(emissions) = self.emissions(&sentences, sparse)? else {
            return Ok(total);
        };
        let mask: Vec<f32> = self
            .allowed
            .iter()
            .map(|&ok| if ok { 0.0 } else { FORBIDDEN })
            .collect();
        let transitions = self
            .transitions
            .f_add(&tensor_on(&mask, device)?.f_reshape([k + 1, k])?)?;
        let start = transitions.f_get(0)?;
        let step = transitions.f_narrow(0, 1, k)?;
        let flat = transitions.f_reshape([-1])?;
        let mut first = 0i64;
        for gold in &golds {
            let n = gold.len() as i64;
            if n == 0 {
                continue;
            }
            let scores = emissions.f_narrow(0, first, n)?;
            first += n;
            let mut alpha = start.f_add(&scores.f_get(0)?)?;
            for t in 1..n {
                alpha = alpha
                    .f_unsqueeze(1)?
                    .f_add(&step)?
                    .f_logsumexp([0], false)?
                    .f_add(&scores.f_get(t)?)?;
            }
            let log_partition = alpha.f_logsumexp([0], false)?;
            let tags: Vec<i64> = gold.iter().map(|&g| g as i64).collect();
            let emitted = scores
                .f_gather(1, &tensor_on(&tags, device)?.f_unsqueeze(1)?, false)?
                .f_sum(Kind::Float)?;
            let mut previous = 0i64;
            let taken: Vec<i64> = tags
                .iter()
                .map(|&tag| {
                    let at = previous * k + tag;
                    previous = 1 + tag;
                    at
                })
                .collect();
            let moved = flat
                .f_index_select(0, &tensor_on(&taken, device)?)?
                .f_sum(Kind::Float)?;
            total = total.f_add(&log_partition.f_sub(&emitted)?.f_sub(&moved)?)?;
        }
        Ok(total)
    }

    fn mean_nll(&self, examples: &[&TrainingExample], sparse: bool) -> Result<Tensor, ModelError> {
        Ok(self.nll(examples, sparse)?.f_div_scalar(examples.len().max(1) as f64)?)
    }
}

/// An example's gold tags, read as valid BIO ([`repair_bio`]).
fn gold_tags(example: &TrainingExample) -> Result<Vec<String>, ModelError> {
    match &example.expected_output {
        Target::Tags(tags) => {
            let mut tags = tags.clone();
            repair_bio(&mut tags);
            Ok(tags)
        }
        other => Err(ModelError::WrongTarget {
            expected: TargetKind::Tags,
            got: other.kind(),
        }),
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
            for tag in gold_tags(example)? {
                if !self.index.contains_key(&tag) && !new_tags.contains(&tag) {
                    new_tags.push(tag);
                }
            }
        }
        if new_tags.is_empty() {
            return Ok(());
        }
        let tables = self.grown(new_tags.len())?;
        let mut tags = self.tags.clone();
        tags.extend(new_tags);
        *self = Self::from_tables(self.config.clone(), self.vs.device(), &tables, tags)?;
        Ok(())
    }

    /// The mean negative log-likelihood per sentence.
    fn loss(&self, examples: &[&TrainingExample]) -> Result<Tensor, ModelError> {
        self.mean_nll(examples, false)
    }

    fn adaptive_loss(&self, examples: &[&TrainingExample]) -> Result<Tensor, ModelError> {
        self.mean_nll(examples, true)
    }

    fn fisher_loss(&self, example: &TrainingExample) -> Result<Tensor, ModelError> {
        self.mean_nll(&[example], true)
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
                ModelOutput {
                    output: Target::Tags(path.iter().map(|&j| self.tags[j].clone()).collect()),
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

    // The configuration's `learning_rate` is the Adam rate of dense models.
    #[allow(clippy::misnamed_getters)]
    fn learning_rate(&self) -> f64 {
        self.config.tagger_learning_rate
    }

    fn training(&self) -> Training {
        Training::Adaptive
    }

    /// Sentences per adaptive step: those of the hashed linear models (1,
    /// each sentence in turn, the closed-form pass), not the Adam
    /// minibatch of dense models.
    #[allow(clippy::misnamed_getters)]
    fn minibatch_size(&self) -> usize {
        self.config.linear_minibatch_size
    }

    /// One sentence at a time: forward–backward gives each token's tag
    /// marginals and the expected transitions; a row's gradient is the sum,
    /// over the tokens using it, of the marginals minus the gold tag, and a
    /// transition's is its expected minus its gold count. Each row then
    /// takes a row-wise adaptive step and each transition its own, as
    /// [`optim::adaptive_step`] would from the back-propagated loss.
    fn closed_form_pass(
        &mut self,
        examples: &[&TrainingExample],
        touched: &mut Touched,
    ) -> Result<Option<f64>, ModelError> {
        let k = self.tags.len();
        if k == 0 || examples.is_empty() {
            return Ok(Some(0.0));
        }
        let rate = self.config.tagger_learning_rate as f32;
        let sentences: Vec<Vec<Vec<u32>>> = examples.iter().map(|e| self.features(&e.input_text)).collect();
        let golds = examples.iter().map(|e| self.gold(e)).collect::<Result<Vec<_>, _>>()?;
        let union = RowUnion::new(sentences.iter().flatten().flatten().copied(), self.config.hash_buckets);
        let device = self.vs.device();
        crate::grad::no_grad(|| {
            let ids = tensor_on(&union.rows, device)?;
            let (n, width) = (union.rows.len(), (k + 1) * k);
            let old_rows = self.weight.f_index_select(0, &ids)?;
            let old_sums = self.weight_sums.f_index_select(0, &ids)?;
            let old_transitions = self.transitions.f_detach_copy()?;
            let old_transition_sums = self.transition_sums.f_detach_copy()?;
            let mut rows = vec![0f32; n * k];
            old_rows.f_copy_data(&mut rows, n * k)?;
            let mut sums = vec![0f32; n];
            old_sums.f_copy_data(&mut sums, n)?;
            let mut transitions = vec![0f32; width];
            old_transitions.f_copy_data(&mut transitions, width)?;
            let mut transition_sums = vec![0f32; width];
            old_transition_sums.f_copy_data(&mut transition_sums, width)?;
            // The rows a sentence uses, each once, with its summed gradient.
            let mut stamp = vec![usize::MAX; n];
            let mut slot = vec![0usize; n];
            let (mut used, mut gradients) = (Vec::new(), Vec::new());
            let mut total = 0.0;
            for (s, (sentence, gold)) in sentences.iter().zip(&golds).enumerate() {
                if sentence.is_empty() {
                    continue;
                }
                let places: Vec<Vec<usize>> = sentence
                    .iter()
                    .map(|token| token.iter().map(|&id| union.place(id) as usize).collect())
                    .collect();
                let mut emissions = vec![0f32; sentence.len() * k];
                for (t, token) in places.iter().enumerate() {
                    let scores = &mut emissions[t * k..(t + 1) * k];
                    for &p in token {
                        scores
                            .iter_mut()
                            .zip(&rows[p * k..(p + 1) * k])
                            .for_each(|(e, w)| *e += w);
                    }
                }
                let chain = Chain {
                    emissions: &emissions,
                    transitions: &transitions,
                    allowed: &self.allowed,
                    tags: k,
                };
                let posteriors = chain
                    .posteriors()
                    .ok_or_else(|| ModelError::NonFinite("a tagger's sequence scores are not finite".into()))?;
                total += posteriors.log_partition - chain.score(gold);
                used.clear();
                gradients.clear();
                for (t, token) in places.iter().enumerate() {
                    for &p in token {
                        if stamp[p] != s {
                            stamp[p] = s;
                            slot[p] = used.len();
                            used.push(p);
                            gradients.extend(std::iter::repeat_n(0f32, k));
                        }
                        let g = &mut gradients[slot[p] * k..(slot[p] + 1) * k];
                        for (j, g) in g.iter_mut().enumerate() {
                            *g += posteriors.marginals[t * k + j] as f32 - f32::from(u8::from(gold[t] == j));
                        }
                    }
                }
                for (&p, g) in used.iter().zip(gradients.chunks(k)) {
                    sums[p] += g.iter().map(|g| g * g).sum::<f32>();
                    let step = rate / (sums[p].sqrt() + optim::EPSILON as f32);
                    rows[p * k..(p + 1) * k]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(w, g)| *w -= step * g);
                }
                let mut moved: Vec<f32> = posteriors.transition_counts.iter().map(|&c| c as f32).collect();
                let mut previous = 0;
                for &tag in gold {
                    moved[previous * k + tag] -= 1.0;
                    previous = 1 + tag;
                }
                for ((w, sum), g) in transitions.iter_mut().zip(&mut transition_sums).zip(&moved) {
                    if *g != 0.0 {
                        *sum += g * g;
                        *w -= rate * g / (sum.sqrt() + optim::EPSILON as f32);
                    }
                }
            }
            if !total.is_finite() || rows.iter().chain(&transitions).any(|w| !w.is_finite()) {
                return Err(ModelError::NonFinite(format!("training loss is {total}")));
            }
            for values in [&mut rows, &mut sums, &mut transitions, &mut transition_sums] {
                round_to_kept_precision(values);
            }
            let rows = tensor_on(&rows, device)?.f_reshape([n as i64, k as i64])?;
            let sums = tensor_on(&sums, device)?.f_reshape([n as i64, 1])?;
            let shape = [(k + 1) as i64, k as i64];
            let transitions = tensor_on(&transitions, device)?.f_reshape(shape)?;
            let transition_sums = tensor_on(&transition_sums, device)?.f_reshape(shape)?;
            let _ = self.weight_sums.shallow_clone().f_index_copy_(0, &ids, &sums)?;
            let _ = self.weight.shallow_clone().f_index_copy_(0, &ids, &rows)?;
            self.transitions.shallow_clone().f_copy_(&transitions)?;
            self.transition_sums.shallow_clone().f_copy_(&transition_sums)?;
            touched.add_written(WEIGHT, &ids, [rows, sums], [old_rows, old_sums]);
            let every = Tensor::f_arange((k + 1) as i64, (Kind::Int64, device))?;
            touched.add_written(
                TRANSITIONS,
                &every,
                [transitions, transition_sums],
                [old_transitions, old_transition_sums],
            );
            Ok(Some(total))
        })
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
        // A first pass so that the weights are not all zero.
        closed.closed_form_pass(&refs, &mut Touched::new()).unwrap();
        let autograd =
            TokenTagger::from_tables(small(), Device::Cpu, &closed.grown(0).unwrap(), closed.tags.clone()).unwrap();
        let before = closed.nll(&refs[..1], false).unwrap().double_value(&[]);
        let mut touched = Touched::new();
        let loss = closed.closed_form_pass(&refs[..1], &mut touched).unwrap().unwrap();
        assert!((loss - before).abs() < 1e-3, "{loss} against {before}");
        crate::grad::with_grad(|| {
            autograd.adaptive_loss(&refs[..1]).unwrap().backward();
            optim::adaptive_step(autograd.var_store(), autograd.learning_rate(), &[], &mut Touched::new()).unwrap();
        });
        for name in [WEIGHT, TRANSITIONS] {
            let a = &closed.vs.variables()[name];
            let b = &autograd.vs.variables()[name];
            let diff = a.f_sub(b).unwrap().abs().max().double_value(&[]);
            let scale = b.abs().max().double_value(&[]);
            assert!(diff <= 1e-4 * scale.max(1.0), "{name}: {diff} of {scale}");
        }
        assert!(!touched.is_empty());
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
            tagger.closed_form_pass(&refs, &mut Touched::new()).unwrap();
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
