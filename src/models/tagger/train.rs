//! Training the tagger: the gold sequences' negative log-likelihood, as a
//! differentiable loss (for EWC, the Fisher information and Adam) and as a
//! pass of adaptive steps with its gradients in closed form (the default).

use tch::{Kind, Tensor};

use super::crf::Chain;
use super::{TokenTagger, FORBIDDEN, TRANSITIONS, WEIGHT};
use crate::base::ModelError;
use crate::base::TrainingExample;
use crate::models::hashed::{round_to_kept_precision, RowUnion};
use crate::models::tensor_on;
use crate::optim::{self, Touched};

impl TokenTagger {
    /// The summed negative log-likelihood of the gold sequences, differentiable
    /// (forward algorithm in log space): for Adam, EWC's penalised steps and
    /// the Fisher information. The closed-form pass computes the same
    /// gradients without a graph.
    pub(super) fn nll(&self, examples: &[&TrainingExample], sparse: bool) -> Result<Tensor, ModelError> {
        let device = self.vs.device();
        let k = self.tags.len() as i64;
        // Zero, but on the graph: back-propagating a batch without tokens
        // leaves zero gradients instead of failing.
        let mut total = self.transitions.f_sum(Kind::Float)?.f_mul_scalar(0.0)?;
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

    pub(super) fn mean_nll(&self, examples: &[&TrainingExample], sparse: bool) -> Result<Tensor, ModelError> {
        Ok(self.nll(examples, sparse)?.f_div_scalar(examples.len().max(1) as f64)?)
    }

    /// One sentence at a time: forward–backward gives each token's tag
    /// marginals and the expected transitions; a row's gradient is the sum,
    /// over the tokens using it, of the marginals minus the gold tag, and a
    /// transition's is its expected minus its gold count. Each row then
    /// takes a row-wise adaptive step and each transition its own, as
    /// [`optim::adaptive_step`] would from the back-propagated loss.
    pub(super) fn closed_form(
        &mut self,
        examples: &[&TrainingExample],
        touched: &mut Touched,
    ) -> Result<f64, ModelError> {
        let k = self.tags.len();
        if k == 0 || examples.is_empty() {
            return Ok(0.0);
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
            let mut rows = copied(&old_rows, n * k)?;
            let mut sums = copied(&old_sums, n)?;
            let mut transitions = copied(&old_transitions, width)?;
            let mut transition_sums = copied(&old_transition_sums, width)?;
            let mut sentence_rows = SentenceRows::new(n);
            let mut total = 0.0;
            for (s, (sentence, gold)) in sentences.iter().zip(&golds).enumerate() {
                if sentence.is_empty() {
                    continue;
                }
                let places: Vec<Vec<usize>> = sentence
                    .iter()
                    .map(|token| token.iter().map(|&id| union.place(id) as usize).collect())
                    .collect();
                let emissions = emissions(&places, &rows, k);
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
                sentence_rows.gather(s, &places, &posteriors.marginals, gold, k);
                for (&p, g) in sentence_rows.used.iter().zip(sentence_rows.gradients.chunks(k)) {
                    sums[p] += g.iter().map(|g| g * g).sum::<f32>();
                    let step = rate / (sums[p].sqrt() + optim::EPSILON as f32);
                    rows[p * k..(p + 1) * k]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(w, g)| *w -= step * g);
                }
                let moved = transition_gradient(&posteriors.transition_counts, gold, k);
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
            touched.add_written(WEIGHT, &ids, [rows, sums], [old_rows, old_sums], None);
            let every = Tensor::f_arange((k + 1) as i64, (Kind::Int64, device))?;
            touched.add_written(
                TRANSITIONS,
                &every,
                [transitions, transition_sums],
                [old_transitions, old_transition_sums],
                None,
            );
            Ok(total)
        })
    }
}

/// The rows a sentence uses, each once, with its summed gradient; kept
/// across sentences so that nothing is allocated per sentence.
struct SentenceRows {
    /// The sentence that last used each row.
    stamp: Vec<usize>,
    /// Each row's place in `used`, for the sentence of its stamp.
    slot: Vec<usize>,
    used: Vec<usize>,
    /// `k` values per row of `used`.
    gradients: Vec<f32>,
}

impl SentenceRows {
    fn new(rows: usize) -> Self {
        Self {
            stamp: vec![usize::MAX; rows],
            slot: vec![0; rows],
            used: Vec::new(),
            gradients: Vec::new(),
        }
    }

    /// Sentence `s`'s rows and, for each, the sum over the tokens using it
    /// of the tag marginals minus the gold tag.
    fn gather(&mut self, s: usize, places: &[Vec<usize>], marginals: &[f64], gold: &[usize], k: usize) {
        self.used.clear();
        self.gradients.clear();
        for (t, token) in places.iter().enumerate() {
            for &p in token {
                if self.stamp[p] != s {
                    self.stamp[p] = s;
                    self.slot[p] = self.used.len();
                    self.used.push(p);
                    self.gradients.extend(std::iter::repeat_n(0f32, k));
                }
                let g = &mut self.gradients[self.slot[p] * k..(self.slot[p] + 1) * k];
                for (j, g) in g.iter_mut().enumerate() {
                    *g += marginals[t * k + j] as f32 - f32::from(u8::from(gold[t] == j));
                }
            }
        }
    }
}

/// The first `len` values of `tensor`, copied out of it.
fn copied(tensor: &Tensor, len: usize) -> Result<Vec<f32>, tch::TchError> {
    let mut values = vec![0f32; len];
    tensor.f_copy_data(&mut values, len)?;
    Ok(values)
}

/// A sentence's emission scores (`tokens × k`): each token's score of a tag
/// is the sum of its feature rows' weights for it (`places`: each token's
/// rows in `rows`, a `rows × k` table).
fn emissions(places: &[Vec<usize>], rows: &[f32], k: usize) -> Vec<f32> {
    let mut emissions = vec![0f32; places.len() * k];
    for (t, token) in places.iter().enumerate() {
        let scores = &mut emissions[t * k..(t + 1) * k];
        for &p in token {
            scores
                .iter_mut()
                .zip(&rows[p * k..(p + 1) * k])
                .for_each(|(e, w)| *e += w);
        }
    }
    emissions
}

/// The transitions' gradient: each one's expected count under the model
/// (`counts`, `(k + 1) × k`, row 0 the start) minus its count in the gold
/// sequence.
fn transition_gradient(counts: &[f64], gold: &[usize], k: usize) -> Vec<f32> {
    let mut moved: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
    let mut previous = 0;
    for &tag in gold {
        moved[previous * k + tag] -= 1.0;
        previous = 1 + tag;
    }
    moved
}
