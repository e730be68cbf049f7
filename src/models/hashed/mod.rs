//! The hashed linear layer shared by the built-in text classifier and
//! regressor: one weight per hashed word uni- or bi-gram and output, the
//! model Vowpal Wabbit learns with `--ngram 2`.
//!
//! An input's features are its n-gram ids, each with a value that follows
//! the input's length `n` (a repeated n-gram adds up). With per-weight
//! adaptive steps the first step of every weight is the base rate whatever
//! its gradient, so an input's own score moves by the rate times the sum of
//! its values:
//!
//! - `1/n` ([`FeatureScale::Mean`], the regressor's): the rate, whatever the
//!   length. A rate large enough for a news article of 1,000 n-grams (16)
//!   made a tweet's 20 n-grams memorise its label, a wrong one too: on the
//!   VADER snippets with a fifth of the labels wrong, prequential accuracy
//!   fell 8 points where Vowpal Wabbit's fell 4.
//! - `1/n` from `m` n-grams up, `1/√(n·m)` below
//!   ([`FeatureScale::RootBelow`], the classifier's, `m` its
//!   `full_step_ngrams`): the rate for a text of `m` n-grams or more, and
//!   `rate·√(n/m)` for a shorter one, which carries less evidence; as Vowpal
//!   Wabbit's normalised updates, whose step grows with `√n`, but bounded,
//!   since with that growth unbounded an article of 1,000 n-grams moved its
//!   scores 31 times as far as a tweet and one update flipped half of the
//!   held-out predictions. A long text's step is the mean's: a batch of
//!   wrong corrections to news articles does the harm the judge sees (with
//!   `1/√n` at rate 0.5, 120 rotated corrections cost 11 points and 70 of
//!   them were kept; with the mean, none cost anything and 100 were
//!   quarantined).
//!
//! The layer is a sum-mode `embedding_bag` over a `buckets × outputs` table:
//! with `sparse`, its gradient is a sparse tensor of the rows the inputs use,
//! which the adaptive optimiser ([`crate::optim`]) steps alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::base::ModelError;
use crate::base::{ngram_ids, stable_hash};
use crate::models::TextModelConfig;
use crate::optim;

use super::feature_cache::{FeatureCache, Features, MAX_CACHED_IDS};
use super::tensor_on;

mod closed_form;
mod rescore;

pub(crate) use closed_form::{sigmoid_gradient, softmax_gradient, Steps};

/// Name of the `buckets × outputs` weight table.
pub(crate) const WEIGHT: &str = "weight";

/// How an input's n-gram values follow its length `n` (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FeatureScale {
    /// `1/n`, the mean: an input's first step moves its scores by the
    /// rate, whatever its length. The regressor's, and a classifier's
    /// saved before the bounded root scale.
    #[default]
    Mean,
    /// The mean for inputs of `full_step_ngrams` n-grams or more (the
    /// configuration's), `1/√(n·full_step_ngrams)` below: a shorter input
    /// moves its scores by `rate·√(n/full_step_ngrams)`. The classifier's.
    RootBelow,
}

impl FeatureScale {
    /// The value of one occurrence of an n-gram in an input of `n`.
    fn value(self, n: usize, full_step_ngrams: usize) -> f32 {
        match self {
            FeatureScale::RootBelow if n < full_step_ngrams => 1.0 / ((n * full_step_ngrams) as f32).sqrt(),
            _ => 1.0 / n as f32,
        }
    }
}

/// The weight table and its optimiser state, in one `VarStore`.
#[derive(Debug)]
pub(crate) struct HashedLinear {
    pub vs: VarStore,
    pub weight: Tensor,
    /// One squared-gradient sum per row (`rows × 1`).
    sums: Tensor,
    /// The feature ids of texts seen, shared with the layer's copies.
    cache: Arc<FeatureCache>,
    /// How the features' values follow an input's length.
    scale: FeatureScale,
}

/// The inputs of a pass over the rows they use.
struct SparseBatch {
    /// The buckets the inputs use, ascending (`union.rows`): the table is
    /// read and written in address order.
    union: RowUnion,
    /// Per input, its (place in `union`, value) pairs, a repeated n-gram's
    /// values added up.
    inputs: Vec<Vec<(u32, f32)>>,
}

impl HashedLinear {
    /// A layer with these weights followed by `extra` zero columns, and the
    /// optimiser state of `state` (name → values; zero when missing), on
    /// `device`. The table is allocated once, zero, and the weights copied
    /// into it: a new label used to cost three copies of the table.
    fn from_tensors(
        device: Device,
        weight: &Tensor,
        extra: usize,
        state: &BTreeMap<String, Tensor>,
        cache: Arc<FeatureCache>,
        scale: FeatureScale,
    ) -> Result<HashedLinear, ModelError> {
        let vs = VarStore::new(device);
        let (rows, columns) = match weight.size().as_slice() {
            &[rows, columns] => (rows, columns),
            other => {
                return Err(ModelError::IncompatibleCheckpoint(format!(
                    "a hashed weight table has two dimensions, not {other:?}"
                )))
            }
        };
        let weight = match extra {
            0 => vs.root().f_var_copy(WEIGHT, weight)?,
            _ => {
                let table = vs.root().f_zeros(WEIGHT, &[rows, columns + extra as i64])?;
                if columns > 0 {
                    crate::grad::no_grad(|| table.f_narrow(1, 0, columns)?.f_copy_(weight))?;
                }
                table
            }
        };
        // One squared-gradient sum per n-gram (row-wise AdaGrad, see
        // `crate::optim`), whatever the number of outputs.
        let sums = match state.get(&optim::state_name(WEIGHT)) {
            Some(saved) if saved.size() == [rows, 1] => {
                optim::add_state_with(&vs, WEIGHT, &saved.f_to_device(device)?)?
            }
            _ => optim::add_state_with(&vs, WEIGHT, &Tensor::f_zeros([rows, 1], (Kind::Float, device))?)?,
        };
        Ok(HashedLinear {
            vs,
            weight,
            sums,
            cache,
            scale,
        })
    }

    /// A zero layer of `buckets × outputs`.
    pub fn zeros(
        device: Device,
        buckets: usize,
        outputs: usize,
        scale: FeatureScale,
    ) -> Result<HashedLinear, ModelError> {
        // Cached ids are 32-bit (see `ids`).
        if buckets > 1 << 32 {
            return Err(ModelError::Misconfigured(format!(
                "a hashed layer has at most 2^32 buckets, not {buckets}"
            )));
        }
        // No columns yet: an empty tensor, widened to `outputs` zero columns.
        let none = Tensor::f_zeros([buckets as i64, 0], (Kind::Float, Device::Cpu))?;
        Self::from_tensors(device, &none, outputs, &BTreeMap::new(), new_cache(), scale)
    }

    /// The weights and optimiser state of a checkpoint, by name.
    pub fn from_checkpoint(
        device: Device,
        params: &BTreeMap<String, Tensor>,
        scale: FeatureScale,
    ) -> Result<HashedLinear, ModelError> {
        let weight = super::bag::saved_param(params, WEIGHT, Device::Cpu)?;
        Self::from_tensors(device, &weight, 0, params, new_cache(), scale)
    }

    /// A deep copy with its own variables (and optimiser state).
    pub fn try_copy(&self) -> Result<HashedLinear, ModelError> {
        crate::grad::no_grad(|| {
            let state: BTreeMap<String, Tensor> = self
                .vs
                .variables()
                .into_iter()
                .filter(|(name, _)| optim::is_state(name))
                .collect();
            Self::from_tensors(
                self.vs.device(),
                &self.weight,
                0,
                &state,
                Arc::clone(&self.cache),
                self.scale,
            )
        })
    }

    /// The same layer with `extra` more outputs, zero:
    /// a classifier's new labels start at the logit 0.
    pub fn grown(&self, extra: usize) -> Result<HashedLinear, ModelError> {
        crate::grad::no_grad(|| {
            // The sums are per row: they carry over as they are.
            let key = optim::state_name(WEIGHT);
            let state: BTreeMap<String, Tensor> = self
                .vs
                .variables()
                .get(&key)
                .map(|t| (key, t.shallow_clone()))
                .into_iter()
                .collect();
            Self::from_tensors(
                self.vs.device(),
                &self.weight,
                extra,
                &state,
                Arc::clone(&self.cache),
                self.scale,
            )
        })
    }

    /// How the layer's feature values follow an input's length.
    pub fn scale(&self) -> FeatureScale {
        self.scale
    }

    /// `inputs × outputs` scores before any link function.
    pub fn forward(&self, inputs: &[&str], config: &TextModelConfig, sparse: bool) -> Result<Tensor, ModelError> {
        let device = self.vs.device();
        let (ids, offsets, values) = self.features_of(inputs, config);
        let ids = tensor_on(&ids, device)?;
        let offsets = tensor_on(&offsets, device)?;
        let values = tensor_on(&values, device)?;
        // Mode 0 is the sum, the only mode that takes a value per feature.
        let (sum, _, _, _) =
            Tensor::f_embedding_bag(&self.weight, &ids, &offsets, false, 0, sparse, Some(&values), false)?;
        Ok(sum)
    }
}

/// Mantissa bits (of a 32-bit float's 23) that a row's weights and
/// AdaGrad sum keep after a pass: a relative precision of 2⁻¹⁷ (7.6e-6).
///
/// The low mantissa bits of a changed weight are noise to the model but
/// incompressible in a delta checkpoint: with all 23 kept, an update of 50
/// news articles (and 50 replayed) packed to 0.94 MB on average and up to
/// 1.17 MB; with 16 kept, 0.70 MB and at most 0.86 MB, and the news
/// stream's prequential accuracy stayed within 0.002 (docs/measurements.md, "Measured").
/// Rounding here, where the model is written, keeps checkpoints exact
/// copies of what serves.
const KEPT_MANTISSA_BITS: u32 = 16;

/// Rounds every value to [`KEPT_MANTISSA_BITS`], to nearest, ties to even
/// (a value that would round past the largest float keeps its bits).
pub(super) fn round_to_kept_precision(values: &mut [f32]) {
    const DROPPED: u32 = 23 - KEPT_MANTISSA_BITS;
    const HALF_MINUS_ONE: u32 = (1 << (DROPPED - 1)) - 1;
    const KEPT: u32 = !((1 << DROPPED) - 1);
    for value in values {
        let bits = value.to_bits();
        // Sign and magnitude: rounding the magnitude's bits rounds the
        // value, a carry out of the mantissa moves it to the next binade.
        let odd = (bits >> DROPPED) & 1;
        let rounded = f32::from_bits(bits.wrapping_add(HALF_MINUS_ONE + odd) & KEPT);
        if rounded.is_finite() {
            *value = rounded;
        }
    }
}

/// The bucket of the constant feature.
fn constant_feature(config: &TextModelConfig) -> i64 {
    (stable_hash(b"<onthefly constant feature>") % config.hash_buckets as u64) as i64
}

/// An empty feature cache for a new layer.
fn new_cache() -> Arc<FeatureCache> {
    Arc::new(FeatureCache::new(MAX_CACHED_IDS))
}

impl HashedLinear {
    /// The features of `text` and the constant feature, from the cache.
    ///
    /// The bias is a constant feature of the table rather than a separate
    /// variable, so it gets the same share of an input's step as any n-gram:
    /// a separate bias with the value 1 took half of every step, and after a
    /// run of articles of one outlet it alone predicted that outlet for
    /// everything.
    fn features(&self, text: &str, config: &TextModelConfig) -> Arc<Features> {
        self.cache.features(text, |text| {
            // Buckets fit 32 bits: the configuration caps the table at 2³⁰ weights.
            let mut ids: Vec<u32> = ngram_ids(text, config.hash_buckets, config.max_tokens)
                .into_iter()
                .map(|id| id as u32)
                .collect();
            ids.push(constant_feature(config) as u32);
            distinct_features(&ids, self.scale, config.full_step_ngrams)
        })
    }

    /// The rows `texts` use ([`RowUnion`]) and each text's features over
    /// them. A text's repeated n-grams were merged once, when it was first
    /// seen ([`distinct_features`]).
    fn sparse_batch(&self, texts: &[&str], config: &TextModelConfig) -> SparseBatch {
        let all: Vec<Arc<Features>> = texts.iter().map(|text| self.features(text, config)).collect();
        let rows = RowUnion::new(all.iter().flat_map(|f| f.ids.iter().copied()), config.hash_buckets);
        let inputs = all
            .iter()
            .map(|features| {
                features
                    .ids
                    .iter()
                    .zip(&features.values)
                    .map(|(&id, &value)| (rows.place(id), value))
                    .collect()
            })
            .collect();
        SparseBatch { union: rows, inputs }
    }

    /// The features of `inputs` in one flat list, each input's offset in
    /// it, and each feature's value.
    fn features_of(&self, inputs: &[&str], config: &TextModelConfig) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
        let mut ids = Vec::new();
        let mut offsets = Vec::with_capacity(inputs.len());
        let mut values = Vec::new();
        for text in inputs {
            offsets.push(ids.len() as i64);
            let features = self.features(text, config);
            ids.extend(features.ids.iter().map(|&id| i64::from(id)));
            values.extend_from_slice(&features.values);
        }
        (ids, offsets, values)
    }
}

/// The distinct rows a batch uses, ascending (the table is read and
/// written in address order), and each row's place among them.
///
/// The rows are the set bits of a bitmap over the buckets, and a row's
/// place among them is its rank (the bits set before it: a count per
/// 64-bit word plus a popcount). The bitmap and the counts of 2¹⁸
/// buckets take 48 KiB and stay in the core's cache, where a table of a
/// place per bucket (1 MiB) missed it on every look-up and took as long
/// as the training itself.
pub(super) struct RowUnion {
    /// The rows, ascending.
    pub rows: Vec<i64>,
    bits: Vec<u64>,
    before: Vec<u32>,
}

impl RowUnion {
    /// The union of `ids`, each below `buckets`.
    pub fn new(ids: impl Iterator<Item = u32>, buckets: usize) -> RowUnion {
        let mut bits = vec![0u64; buckets.div_ceil(64)];
        for id in ids {
            bits[id as usize / 64] |= 1 << (id % 64);
        }
        let mut before = Vec::with_capacity(bits.len());
        let mut rows = Vec::new();
        for (w, &word) in bits.iter().enumerate() {
            before.push(rows.len() as u32);
            let mut rest = word;
            while rest != 0 {
                rows.push((w * 64) as i64 + i64::from(rest.trailing_zeros()));
                rest &= rest - 1;
            }
        }
        RowUnion { rows, bits, before }
    }

    /// Whether row `id` (below the buckets) is one of the rows, as 0 or 1.
    pub fn has(&self, id: u32) -> u64 {
        (self.bits[id as usize / 64] >> (id % 64)) & 1
    }

    /// The place of row `id` (one of the union's) among the rows.
    pub fn place(&self, id: u32) -> u32 {
        let below = self.bits[id as usize / 64] & ((1u64 << (id % 64)) - 1);
        self.before[id as usize / 64] + below.count_ones()
    }
}

/// The features of a text of n-gram (and constant) ids `ids`: each
/// distinct id once, in the order it first occurs, with the value of one
/// occurrence (by `scale`, see [`FeatureScale`]) added once for each time
/// it occurs (the same sums, in the same order,
/// as when the repeats were merged at every update). A news article's
/// 1,047 ids are 711 distinct ones on average: merged once, when the text
/// is first seen, every later prediction, judgement and update reads and
/// maps a third fewer rows. An open-addressing set of twice the ids' count
/// finds the repeats.
fn distinct_features(ids: &[u32], scale: FeatureScale, full_step_ngrams: usize) -> Features {
    let value = scale.value(ids.len(), full_step_ngrams);
    let bits = (ids.len() * 2).next_power_of_two().max(16).trailing_zeros();
    let mask = (1usize << bits) - 1;
    let mut slots = vec![u32::MAX; 1 << bits];
    let mut features = Features {
        ids: Vec::with_capacity(ids.len()),
        values: Vec::with_capacity(ids.len()),
    };
    for &id in ids {
        // Fibonacci hashing: the product's high bits pick the slot.
        let mut slot = (u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize;
        loop {
            match slots[slot] {
                u32::MAX => {
                    slots[slot] = features.ids.len() as u32;
                    features.ids.push(id);
                    features.values.push(value);
                    break;
                }
                at if features.ids[at as usize] == id => {
                    features.values[at as usize] += value;
                    break;
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_ids_are_merged_in_order_of_first_occurrence() {
        // 7 occurs three times, 3 twice; ids that collide in a small set too.
        let ids = [7, 3, 7, 1 << 20, 9, 3, 7, (1 << 20) + 16];
        let features = distinct_features(&ids, FeatureScale::Mean, 1);
        assert_eq!(features.ids, [7, 3, 1 << 20, 9, (1 << 20) + 16]);
        let v = 1.0 / ids.len() as f32;
        // Added one occurrence after the other, as the steps were trained.
        assert_eq!(features.values, [v + v + v, v + v, v, v, v]);
        // Many ids: every distinct one once, the values summing to one.
        let many: Vec<u32> = (0..5_000u32).map(|i| (i * 7_919) % 1_031).collect();
        let merged = distinct_features(&many, FeatureScale::Mean, 1);
        assert_eq!(merged.ids.len(), 1_031);
        let mut seen = std::collections::HashSet::new();
        let first: Vec<u32> = many.iter().copied().filter(|id| seen.insert(*id)).collect();
        assert_eq!(merged.ids, first);
        let total: f64 = merged.values.iter().map(|&v| f64::from(v)).sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        // The bounded root scale: the mean from `full_step_ngrams` up, and
        // below it each value √(full_step_ngrams/n) times the mean's.
        let long = distinct_features(&many, FeatureScale::RootBelow, many.len());
        assert_eq!((&long.ids, &long.values), (&merged.ids, &merged.values));
        let short = distinct_features(&many, FeatureScale::RootBelow, 4 * many.len());
        assert_eq!(short.ids, merged.ids);
        for (r, m) in short.values.iter().zip(&merged.values) {
            assert!((r / m - 0.5).abs() < 1e-3, "{r} / {m}");
        }
    }

    #[test]
    fn values_are_rounded_to_nearest_kept_bits_ties_to_even() {
        let ulp = 2f32.powi(-16); // the kept precision at 1.0
        let mut values = [
            1.0 + ulp * 0.49,    // below half an ulp: down
            1.0 + ulp * 0.51,    // above: up
            1.0 + ulp * 0.5,     // a tie, 1.0 even: down
            1.0 + ulp * 1.5,     // a tie, 1 + ulp odd: up to 1 + 2 ulp
            -(1.0 + ulp * 0.51), // the sign kept, the magnitude rounded
            2.0 - ulp * 0.25,    // carries into the next binade
            0.0,
            f32::MAX, // would round past the largest float: kept
        ];
        round_to_kept_precision(&mut values);
        assert_eq!(
            values,
            [1.0, 1.0 + ulp, 1.0, 1.0 + 2.0 * ulp, -(1.0 + ulp), 2.0, 0.0, f32::MAX]
        );
        let mut again = values;
        round_to_kept_precision(&mut again);
        assert_eq!(again, values, "rounding twice changes nothing");
    }

    #[test]
    fn rounding_error_is_at_most_half_a_kept_unit() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f32::from_bits((state as u32) & 0x7f7f_ffff) * if state >> 63 == 1 { -1.0 } else { 1.0 };
            if !value.is_normal() {
                continue;
            }
            let mut rounded = [value];
            round_to_kept_precision(&mut rounded);
            let error = ((rounded[0] as f64 - value as f64) / value as f64).abs();
            assert!(error <= 2f64.powi(-17), "{value:e} → {:e}", rounded[0]);
            assert_eq!(rounded[0].to_bits() & 0x7f, 0, "{value:e}: low bits left");
        }
    }
}
