//! The hashed layer's training arithmetic in closed form: a pass of
//! adaptive steps (with the EWC proximal term when one is given) and the
//! squared gradients the Fisher information averages. The gradient of a
//! row is the input's value for it times the gradient of the scores, so
//! both read the rows their inputs use once, work on the CPU input after
//! input, and (for a pass) write them back once: a handful of tensor calls
//! per update instead of an autograd graph and a dozen kernels on tiny
//! tensors per input, whose per-call overhead was most of the cost.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use super::rescore::RowChange;
use super::{round_to_kept_precision, tensor_on, HashedLinear, SparseBatch, WEIGHT};
use crate::base::ModelError;
use crate::models::TextModelConfig;
use crate::optim::{self, Penalties};

/// How a pass steps: the base rate of its adaptive steps and the EWC terms
/// that pull the weights towards their anchors.
pub(crate) struct Steps<'a> {
    /// The base rate.
    pub rate: f64,
    /// Each `(state, λ)`, as [`optim::adaptive_step`] takes them.
    pub penalties: &'a Penalties<'a>,
}

impl HashedLinear {
    /// One pass of adaptive steps over `texts`, one input at a time in
    /// order, each gradient in closed form: the same steps as
    /// back-propagating each input's loss and [`optim::adaptive_step`]
    /// (row-wise AdaGrad, and the proximal EWC step of `steps.penalties`).
    /// `gradient(i, scores)` maps input `i`'s scores (one per output) to its
    /// loss and the loss's gradient with respect to them. Returns the summed
    /// loss and the rows the pass wrote.
    pub fn closed_form_pass(
        &self,
        texts: &[&str],
        config: &TextModelConfig,
        steps: Steps<'_>,
        mut gradient: impl FnMut(usize, &[f32]) -> Result<(f64, Vec<f32>), ModelError>,
    ) -> Result<(f64, optim::Touched), ModelError> {
        let device = self.vs.device();
        let outputs = self.outputs();
        let SparseBatch { union, inputs } = self.sparse_batch(texts, config);
        let n = union.rows.len();
        let rate = steps.rate as f32;
        crate::grad::no_grad(|| {
            let ids = tensor_on(&union.rows, device)?;
            // Kept: what the rows held before (a delta checkpoint stores
            // only the bits that changed); new tensors, not views.
            let old_rows = self.weight.f_index_select(0, &ids)?;
            let old_sums = self.sums.f_index_select(0, &ids)?;
            let before = copied(&old_rows, n * outputs)?;
            let mut rows = before.clone();
            let mut sums = copied(&old_sums, n)?;
            let pulls = pulls(steps.penalties, &union.rows, &ids, &rows)?;
            let mut total = 0.0;
            for (i, features) in inputs.iter().enumerate() {
                let scores = scores(features, &rows, outputs);
                let (loss, grad) = gradient(i, &scores)?;
                if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
                    return Err(ModelError::NonFinite(format!("training loss is {loss}")));
                }
                // A row's gradient is value·grad, its squared norm value²·|grad|².
                let grad_norm2: f32 = grad.iter().map(|g| g * g).sum();
                for &(at, value) in features {
                    let at = at as usize;
                    sums[at] += value * value * grad_norm2;
                    let row = &mut rows[at * outputs..(at + 1) * outputs];
                    match &pulls {
                        None => {
                            let step = rate * value / (sums[at].sqrt() + optim::EPSILON as f32);
                            for (w, g) in row.iter_mut().zip(&grad) {
                                *w -= step * g;
                            }
                        }
                        Some(pulls) => {
                            // θ ← (θ − η·value·g + η·Σλ·F̂·θ*) / (1 + η·Σλ·F̂), as `optim`'s step.
                            let eta = rate / (sums[at].sqrt() + optim::EPSILON as f32);
                            let pulls = pulls.row(at, outputs);
                            for ((w, g), (strength, anchored)) in row.iter_mut().zip(&grad).zip(pulls) {
                                *w = (*w - eta * value * g + eta * anchored) / (1.0 + eta * strength);
                            }
                        }
                    }
                }
                total += loss;
            }
            round_to_kept_precision(&mut rows);
            round_to_kept_precision(&mut sums);
            let change = RowChange::new(union, &before, &rows, outputs);
            let rows = tensor_on(&rows, device)?.f_reshape([n as i64, outputs as i64])?;
            let sums = tensor_on(&sums, device)?.f_reshape([n as i64, 1])?;
            let _ = self.sums.shallow_clone().f_index_copy_(0, &ids, &sums)?;
            let _ = self.weight.shallow_clone().f_index_copy_(0, &ids, &rows)?;
            let mut touched = optim::Touched::new();
            let by_model = optim::ByModel(std::sync::Arc::new(change));
            touched.add_written(WEIGHT, &ids, [rows, sums], [old_rows, old_sums], Some(by_model));
            Ok((total, touched))
        })
    }

    /// The mean over `texts` of each weight's squared gradient at the
    /// current weights, `gradient` as for [`HashedLinear::closed_form_pass`]:
    /// with the log-likelihood's gradient, the diagonal Fisher information
    /// of the table, as [`crate::ewc::diagonal_fisher_with`] gets it by
    /// back-propagating each input alone. A sparse (COO) tensor of the
    /// table's shape holding the rows the inputs use: the rest is zero, and
    /// a dense table per update cost more than computing it.
    pub fn squared_gradients(
        &self,
        texts: &[&str],
        config: &TextModelConfig,
        mut gradient: impl FnMut(usize, &[f32]) -> Result<(f64, Vec<f32>), ModelError>,
    ) -> Result<BTreeMap<String, Tensor>, ModelError> {
        let device = self.vs.device();
        let outputs = self.outputs();
        let SparseBatch { union, inputs } = self.sparse_batch(texts, config);
        let n = union.rows.len();
        crate::grad::no_grad(|| {
            let ids = tensor_on(&union.rows, device)?;
            let rows = copied(&self.weight.f_index_select(0, &ids)?, n * outputs)?;
            let mut squared = vec![0f32; n * outputs];
            for (i, features) in inputs.iter().enumerate() {
                let (_, grad) = gradient(i, &scores(features, &rows, outputs))?;
                for &(at, value) in features {
                    let at = at as usize;
                    for (s, g) in squared[at * outputs..(at + 1) * outputs].iter_mut().zip(&grad) {
                        *s += value * value * g * g;
                    }
                }
            }
            let mean = tensor_on(&squared, device)?
                .f_reshape([n as i64, outputs as i64])?
                .f_div_scalar(texts.len().max(1) as f64)?;
            // The rows are distinct and ascending: a coalesced index.
            let fisher = Tensor::f_sparse_coo_tensor_indices_size(
                &ids.f_reshape([1, -1])?,
                &mean,
                self.weight.size(),
                (Kind::Float, device),
                true,
            )?;
            Ok(BTreeMap::from([(WEIGHT.to_string(), fisher)]))
        })
    }

    /// The number of outputs (columns of the table).
    pub(super) fn outputs(&self) -> usize {
        self.weight.size().get(1).copied().unwrap_or(0) as usize
    }
}

/// An input's scores over the rows of its pass (`features`: place, value).
fn scores(features: &[(u32, f32)], rows: &[f32], outputs: usize) -> Vec<f32> {
    let mut scores = vec![0f32; outputs];
    for &(at, value) in features {
        let at = at as usize;
        for (score, &w) in scores.iter_mut().zip(&rows[at * outputs..(at + 1) * outputs]) {
            *score += value * w;
        }
    }
    scores
}

/// The first `len` values of `tensor` as 32-bit floats, on the CPU.
pub(super) fn copied(tensor: &Tensor, len: usize) -> Result<Vec<f32>, ModelError> {
    let mut values = vec![0f32; len];
    // copy_data brings the values to the CPU itself.
    tensor.f_to_kind(Kind::Float)?.f_copy_data(&mut values, len)?;
    Ok(values)
}

/// The EWC terms of a pass's rows, per weight: `Σ λ·F̂` (how strongly it
/// is held) and `Σ λ·F̂·θ*` (where to), over every penalty.
struct Pulls {
    strength: Vec<f32>,
    anchored: Vec<f32>,
}

impl Pulls {
    /// The (strength, anchored) pairs of the pass's row `at`.
    fn row(&self, at: usize, outputs: usize) -> impl Iterator<Item = (f32, f32)> + '_ {
        let range = at * outputs..(at + 1) * outputs;
        self.strength[range.clone()]
            .iter()
            .copied()
            .zip(self.anchored[range].iter().copied())
    }
}

/// The EWC terms of the rows `union` (ascending; `ids` as a tensor), which
/// hold `weights` before the pass (`n × outputs`); `None` when no penalty holds any of
/// them (none given, λ = 0, or nothing consolidated). Only the Fisher's
/// and the anchors' rows are read (the anchors not at all when they are
/// the weights, [`crate::ewc::EwcState::anchors_are_the_weights`]); the
/// normalisation and λ are applied here, on the CPU, where a chain of tensor
/// calls over the rows cost more than the pass itself.
fn pulls(penalties: &Penalties<'_>, union: &[i64], ids: &Tensor, weights: &[f32]) -> Result<Option<Pulls>, ModelError> {
    let n = union.len();
    let outputs = weights.len() / n.max(1);
    let mut pulls: Option<Pulls> = None;
    for (ewc, lambda) in penalties {
        let scale = ewc.scale();
        let (Some(fisher), Some(anchor)) = (ewc.fisher().get(WEIGHT), ewc.anchors().get(WEIGHT)) else {
            continue;
        };
        if *lambda == 0.0 || scale <= 0.0 || !scale.is_finite() {
            continue;
        }
        // The table's rows never grow; its columns do, with new labels,
        // which the anchors lack and the Fisher does not protect.
        let (rows, columns) = match fisher.size().as_slice() {
            &[rows, columns] if anchor.size() == [rows, columns] && columns as usize <= outputs => {
                (rows, columns as usize)
            }
            _ => continue,
        };
        if union.last().is_some_and(|&last| last >= rows) {
            continue;
        }
        let fisher = copied(&fisher.f_index_select(0, ids)?, n * columns)?;
        let anchor = match ewc.anchors_are_the_weights() {
            true => Anchors::Weights(weights),
            false => Anchors::Read(copied(&anchor.f_index_select(0, ids)?, n * columns)?),
        };
        let pulls = pulls.get_or_insert_with(|| Pulls {
            strength: vec![0.0; n * outputs],
            anchored: vec![0.0; n * outputs],
        });
        let weight = (*lambda / scale) as f32;
        for row in 0..n {
            for column in 0..columns {
                let (from, to) = (row * columns + column, row * outputs + column);
                let strength = weight * fisher[from];
                let anchor = match &anchor {
                    Anchors::Weights(weights) => weights[to],
                    Anchors::Read(anchor) => anchor[from],
                };
                pulls.strength[to] += strength;
                pulls.anchored[to] += strength * anchor;
            }
        }
    }
    Ok(pulls)
}

/// Where a penalty's anchors of a pass's rows come from.
enum Anchors<'a> {
    /// The rows' weights before the pass (`n × outputs`).
    Weights(&'a [f32]),
    /// Read from the anchors (`n × columns`).
    Read(Vec<f32>),
}

/// The softmax cross-entropy of `scores` against class `target`: its loss
/// and its gradient with respect to the scores, `p − onehot(target)`.
pub(crate) fn softmax_gradient(scores: &[f32], target: usize) -> (f64, Vec<f32>) {
    let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut grad: Vec<f32> = exp.iter().map(|e| e / sum).collect();
    let p = f64::from(grad[target]);
    grad[target] -= 1.0;
    (-p.max(f64::MIN_POSITIVE).ln(), grad)
}

/// The cross-entropy of the sigmoid of `logit` (one score) against the
/// score `y` taken as a soft label: its loss and its gradient with respect
/// to the logit, `p − y`.
pub(crate) fn sigmoid_gradient(logit: &[f32], y: f64) -> (f64, Vec<f32>) {
    let p = 1.0 / (1.0 + (-f64::from(logit[0])).exp());
    let q = p.clamp(1e-12, 1.0 - 1e-12);
    let loss = -(y * q.ln() + (1.0 - y) * (1.0 - q).ln());
    (loss, vec![(p - y) as f32])
}
