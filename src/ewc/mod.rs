//! Elastic Weight Consolidation (Kirkpatrick et al. 2017) with the online
//! variant of Schwarz et al. (2018), over any model's `VarStore`.
//!
//! The diagonal Fisher information of each trainable variable is estimated
//! from per-example gradients of the log-likelihood,
//! `Fᵢ = mean over examples of (∂ log p(y|x) / ∂θᵢ)²`, with the true labels (the
//! empirical Fisher) or with labels sampled from the model (the "true"
//! Fisher). An update then minimises `loss + λ/2 · Σᵢ Fᵢ (θᵢ − θ*ᵢ)²`, and after
//! an accepted update `F ← γ·F + F_new` and `θ* ← θ`.
//!
//! Variables are matched by name. A variable that grew since the anchor was
//! taken (a classifier's new label rows) is compared on the part that existed:
//! the new part has zero importance until it is consolidated. A variable whose
//! shape shrank or changed rank is not penalised (and is logged).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Kind, Tensor};

use crate::base::ModelError;

mod consolidation;

use consolidation::{anchors_of, count_positive, decayed_plus, mean_of_positive};

/// A diagonal Fisher: per variable name, a tensor of the variable's shape.
pub type Fisher = BTreeMap<String, Tensor>;

/// Which labels the Fisher's log-likelihood gradients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FisherKind {
    /// The examples' true labels (the empirical Fisher).
    #[default]
    Empirical,
    /// Labels sampled from the model's own predictive distribution.
    True,
}

/// EWC settings of the built-in models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EwcConfig {
    /// Whether updates are regularised at all (off: plain fine-tuning).
    pub enabled: bool,
    /// Strength λ of the penalty.
    pub lambda: f64,
    /// Decay γ of the old Fisher at each consolidation (1.0 keeps it whole).
    pub gamma: f64,
    /// Most examples of an update used to estimate its Fisher.
    pub fisher_samples: usize,
    /// Empirical or true Fisher.
    pub fisher: FisherKind,
}

impl Default for EwcConfig {
    fn default() -> Self {
        EwcConfig {
            // Off until λ is chosen on the continual-learning experiments: on the
            // news stream λ = 1 already cost 7 points of held-out accuracy.
            enabled: false,
            lambda: 100.0,
            gamma: 0.9,
            fisher_samples: 64,
            fisher: FisherKind::Empirical,
        }
    }
}

/// The consolidated importance `F` and anchor weights `θ*` of one model.
#[derive(Debug, Default)]
pub struct EwcState {
    fisher: BTreeMap<String, Tensor>,
    anchors: BTreeMap<String, Tensor>,
    consolidations: u64,
    /// The mean of the Fisher's positive entries (see [`EwcState::scale`]).
    scale: f64,
    /// How many entries of the Fisher are positive, when known: a
    /// consolidation that adds rows counts only theirs (see
    /// [`EwcState::consolidate_update`]).
    positive: Option<f64>,
    /// The version of the live model the anchors are a copy of, when a
    /// consolidation said so ([`EwcState::consolidate_update`]): an update
    /// from that version changed only its own rows, so only those are copied.
    anchored_version: Option<u64>,
    /// Whether the anchors equal the weights the model being trained starts
    /// from (set by an update for its pass, see
    /// [`EwcState::anchors_are_the_weights`]).
    anchors_are_weights: bool,
}

/// An accepted update as a consolidation sees it: the live version it
/// started from, the version it made, and what it changed of a variable
/// (`crate::optim::Touched::rows_of`).
pub struct UpdateRows<'a> {
    /// The version the update trained from.
    pub from: u64,
    /// The version it installs.
    pub to: u64,
    /// What it changed of the variable of that name.
    pub rows_of: &'a RowsOf<'a>,
}

/// What an update changed of the variable of a name.
pub type RowsOf<'a> = dyn Fn(&str) -> Result<Changed, ModelError> + 'a;

/// What an update changed of one variable.
#[derive(Debug)]
pub enum Changed {
    /// Nothing.
    Nothing,
    /// These rows (a 1-d int64 tensor, possibly with repeats).
    Rows(Tensor),
    /// These rows (unique), which now hold `values` (a row each): what one
    /// pass wrote, so the rows need not be read back.
    Written {
        /// The rows.
        rows: Tensor,
        /// Their values now.
        values: Tensor,
    },
    /// All of it.
    Whole,
}

impl EwcState {
    /// No importance yet: the penalty is zero.
    pub fn new() -> EwcState {
        EwcState::default()
    }

    /// Whether nothing was consolidated yet.
    pub fn is_empty(&self) -> bool {
        self.fisher.is_empty()
    }

    /// How many updates were consolidated.
    pub fn consolidations(&self) -> u64 {
        self.consolidations
    }

    /// The diagonal Fisher per variable name.
    pub fn fisher(&self) -> &BTreeMap<String, Tensor> {
        &self.fisher
    }

    /// The anchor weights per variable name.
    pub fn anchors(&self) -> &BTreeMap<String, Tensor> {
        &self.anchors
    }

    /// Rebuilds a state from saved tensors (see [`crate::checkpoint`]).
    pub fn from_parts(
        fisher: BTreeMap<String, Tensor>,
        anchors: BTreeMap<String, Tensor>,
        consolidations: u64,
    ) -> EwcState {
        let positive = count_positive(fisher.values());
        EwcState {
            scale: mean_of_positive(&fisher, positive),
            fisher,
            anchors,
            consolidations,
            positive: Some(positive),
            anchored_version: None,
            anchors_are_weights: false,
        }
    }

    /// The mean of the Fisher's positive entries over every variable: the
    /// adaptive optimiser divides the Fisher by it, so its λ does not depend
    /// on the scale of the loss, the number of weights or how often the
    /// model was consolidated (λ = 1: a typically important weight is held
    /// to its anchor as strongly as its own gradient steps move it).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The normalised Fisher `F / scale` and the anchors of variable `name`,
    /// on `rows` (all of it when `None`), zero-padded to `shape` where the
    /// variable grew since it was consolidated (new weights are free);
    /// `None` when nothing of it was consolidated.
    pub fn normalised_rows(
        &self,
        name: &str,
        rows: Option<&Tensor>,
        shape: &[i64],
    ) -> Result<Option<(Tensor, Tensor)>, ModelError> {
        let (Some(fisher), Some(anchor)) = (self.fisher.get(name), self.anchors.get(name)) else {
            return Ok(None);
        };
        if self.scale <= 0.0 || !self.scale.is_finite() {
            return Ok(None);
        }
        let (fisher, anchor) = match rows {
            None => (fisher.shallow_clone(), anchor.shallow_clone()),
            Some(rows) => {
                // Rows beyond the consolidated ones were never important.
                let known = fisher.size().first().copied().unwrap_or(0);
                let inside = rows.f_lt(known)?;
                let clamped = rows.f_clamp_max(known.max(1) - 1)?;
                let mask = inside.f_to_kind(fisher.kind())?;
                let mut shape_mask = vec![-1i64];
                shape_mask.extend(std::iter::repeat_n(1, fisher.dim().saturating_sub(1)));
                let mask = mask.f_reshape(shape_mask.as_slice())?;
                (
                    fisher.f_index_select(0, &clamped)?.f_mul(&mask)?,
                    anchor.f_index_select(0, &clamped)?,
                )
            }
        };
        let mut target = shape.to_vec();
        if let (Some(first), Some(_)) = (target.first_mut(), rows) {
            // Selected rows: as many as were asked for, whatever the table's length.
            *first = fisher.size().first().copied().unwrap_or(*first);
        }
        let (Some(fisher), Some(anchor)) = (pad_to(&fisher, &target)?, pad_to(&anchor, &target)?) else {
            return Ok(None);
        };
        Ok(Some((fisher.f_div_scalar(self.scale)?, anchor)))
    }

    /// The same state with every tensor on `device`.
    pub fn to_device(self, device: tch::Device) -> Result<EwcState, ModelError> {
        let mv = |m: BTreeMap<String, Tensor>| -> Result<BTreeMap<String, Tensor>, ModelError> {
            m.into_iter().map(|(k, t)| Ok((k, t.f_to_device(device)?))).collect()
        };
        Ok(EwcState {
            fisher: mv(self.fisher)?,
            anchors: mv(self.anchors)?,
            consolidations: self.consolidations,
            scale: self.scale,
            positive: self.positive,
            anchored_version: self.anchored_version,
            anchors_are_weights: false,
        })
    }

    /// A deep copy.
    pub fn try_clone(&self) -> Result<EwcState, ModelError> {
        let copy = |m: &BTreeMap<String, Tensor>| -> Result<BTreeMap<String, Tensor>, ModelError> {
            m.iter().map(|(k, t)| Ok((k.clone(), deep_copy(t)?))).collect()
        };
        Ok(EwcState {
            fisher: copy(&self.fisher)?,
            anchors: copy(&self.anchors)?,
            consolidations: self.consolidations,
            scale: self.scale,
            positive: self.positive,
            anchored_version: self.anchored_version,
            anchors_are_weights: false,
        })
    }

    /// Whether the anchors are known to equal, row for row, the weights the
    /// model now being trained starts from: an update from the version the
    /// anchors copy (every accepted update consolidates, so that is the
    /// usual case) says so for its pass, which then takes the anchors from
    /// the rows it reads anyway instead of reading them a second time.
    pub fn anchors_are_the_weights(&self) -> bool {
        self.anchors_are_weights
    }

    /// Says, for the pass of an update that trains a copy of `version`,
    /// whether the anchors are that version's weights; [`Self::passed`]
    /// clears it. (Public for the tests that compare it with reading the
    /// anchors.)
    #[doc(hidden)]
    pub fn passing_from(&mut self, version: u64) {
        self.anchors_are_weights = self.anchored_version == Some(version);
    }

    /// The pass is over: the anchors are no longer known to be the weights.
    #[doc(hidden)]
    pub fn passed(&mut self) {
        self.anchors_are_weights = false;
    }

    /// `λ/2 · Σᵢ Fᵢ (θᵢ − θ*ᵢ)²` over the trainable variables of `vs`,
    /// differentiable with respect to them; `None` when there is nothing to
    /// penalise.
    pub fn penalty(&self, vs: &VarStore, lambda: f64) -> Result<Option<Tensor>, ModelError> {
        if self.fisher.is_empty() || lambda == 0.0 {
            return Ok(None);
        }
        let variables = vs.variables();
        let mut total: Option<Tensor> = None;
        for (name, fisher) in &self.fisher {
            let (Some(theta), Some(anchor)) = (variables.get(name), self.anchors.get(name)) else {
                continue;
            };
            if !theta.requires_grad() {
                continue;
            }
            let Some(theta) = overlap(theta, &fisher.size())? else {
                tracing::warn!(variable = %name, "variable shrank or changed rank since consolidation; not penalised");
                continue;
            };
            let term = theta.f_sub(anchor)?.f_square()?.f_mul(fisher)?.f_sum(Kind::Float)?;
            total = Some(match total {
                None => term,
                Some(t) => t.f_add(&term)?,
            });
        }
        Ok(match total {
            Some(t) => Some(t.f_mul_scalar(lambda / 2.0)?),
            None => None,
        })
    }

    /// Adds the penalty's gradient `λ·F·(θ − θ*)` to the gradients of the
    /// variables of `vs` (after `backward` of the loss, before the optimiser
    /// step). The same as back-propagating [`EwcState::penalty`], in place and
    /// without an autograd graph over every weight, which makes an update with
    /// EWC far cheaper for a large embedding.
    pub fn add_penalty_gradient(&self, vs: &VarStore, lambda: f64) -> Result<(), ModelError> {
        if self.fisher.is_empty() || lambda == 0.0 {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        let variables = vs.variables();
        for (name, fisher) in &self.fisher {
            let (Some(theta), Some(anchor)) = (variables.get(name), self.anchors.get(name)) else {
                continue;
            };
            if !theta.requires_grad() {
                continue;
            }
            let size = fisher.size();
            let Some(part) = overlap(theta, &size)? else {
                continue;
            };
            // A variable the loss did not reach this step has no gradient
            // tensor to add to (tch cannot create one); it is skipped.
            let grad = theta.f_grad()?;
            if !grad.defined() {
                continue;
            }
            let mut step = part.f_sub(anchor)?;
            let _ = step.f_mul_(fisher)?;
            let _ = step.f_mul_scalar_(lambda)?;
            let mut target = overlap(&grad, &size)?.unwrap_or_else(|| grad.shallow_clone());
            let _ = target.f_add_(&step)?;
        }
        Ok(())
    }

    /// Online consolidation after an accepted update: `F ← γ·F + fresh`
    /// (the old Fisher zero-padded where variables grew) and `θ* ← θ`. A
    /// `fresh` tensor may be sparse (COO); the Fisher kept is dense. The
    /// tables change in place: after an error the state is empty.
    pub fn consolidate(
        &mut self,
        vs: &VarStore,
        fresh: BTreeMap<String, Tensor>,
        gamma: f64,
    ) -> Result<(), ModelError> {
        self.consolidate_update(vs, fresh, gamma, None)
    }

    /// [`EwcState::consolidate`] after an accepted `update` of the live
    /// model `vs`: when the anchors are a copy of the version the update
    /// started from, only the rows it changed are copied into them (a copy
    /// of a whole 2¹⁸ × 9 table per update was a fifth of EWC's cost);
    /// otherwise all of them.
    pub fn consolidate_update(
        &mut self,
        vs: &VarStore,
        fresh: BTreeMap<String, Tensor>,
        gamma: f64,
        update: Option<UpdateRows<'_>>,
    ) -> Result<(), ModelError> {
        let rows_since = update
            .as_ref()
            .filter(|u| self.anchored_version == Some(u.from))
            .map(|u| u.rows_of);
        let anchored_version = update.as_ref().map(|u| u.to);
        // Unknown until the anchors are written: a failure half-way leaves
        // them a copy of no version.
        self.anchored_version = None;
        self.anchors_are_weights = false;
        let consolidated = crate::grad::no_grad(|| -> Result<(), ModelError> {
            let variables = vs.variables();
            let old_anchors = std::mem::take(&mut self.anchors);
            let old_fisher = std::mem::take(&mut self.fisher);
            // The count of positive entries carries over where only rows are
            // added to a decayed Fisher: a positive f32 times γ ≥ ½ stays
            // positive (the smallest subnormal rounds back to itself), and a
            // Fisher never falls. Otherwise the whole Fisher is counted.
            let positive = self.positive.filter(|_| gamma >= 0.5);
            let (fisher, positive) = decayed_plus(old_fisher, fresh, gamma, positive)?;
            let anchors = anchors_of(&fisher, &variables, old_anchors, rows_since)?;
            let positive = positive.unwrap_or_else(|| count_positive(fisher.values()));
            self.scale = mean_of_positive(&fisher, positive);
            self.positive = Some(positive);
            self.fisher = fisher;
            self.anchors = anchors;
            self.consolidations += 1;
            self.anchored_version = anchored_version;
            Ok(())
        });
        if consolidated.is_err() {
            // Some tables may have been changed in place, others not: no
            // state to trust is left, and the next consolidation starts over.
            *self = EwcState::new();
        }
        consolidated
    }
}

/// `t` as a dense tensor (itself when it is).
pub(crate) fn dense(t: Tensor) -> Result<Tensor, ModelError> {
    Ok(match t.is_sparse() {
        true => t.f_to_dense(None, false)?,
        false => t,
    })
}

/// A new tensor with the values of `t`, outside the autograd graph.
pub(crate) fn deep_copy(t: &Tensor) -> Result<Tensor, ModelError> {
    let mut copy = t.f_zeros_like()?;
    crate::grad::no_grad(|| copy.f_copy_(t))?;
    Ok(copy)
}

/// The leading part of `theta` with shape `target` (equal rank, every
/// dimension at least as large); `None` when `theta` is smaller or of another rank.
fn overlap(theta: &Tensor, target: &[i64]) -> Result<Option<Tensor>, ModelError> {
    let size = theta.size();
    if size.len() != target.len() || size.iter().zip(target).any(|(s, t)| s < t) {
        return Ok(None);
    }
    let mut part = theta.shallow_clone();
    for (dim, (&s, &t)) in size.iter().zip(target).enumerate() {
        if s != t {
            part = part.f_narrow(dim as i64, 0, t)?;
        }
    }
    Ok(Some(part))
}

/// `old` zero-padded at the end of each dimension to `target`; `None` when
/// `old` is larger or of another rank.
fn pad_to(old: &Tensor, target: &[i64]) -> Result<Option<Tensor>, ModelError> {
    let size = old.size();
    if size.len() != target.len() || size.iter().zip(target).any(|(s, t)| s > t) {
        return Ok(None);
    }
    if size == target {
        return Ok(Some(old.shallow_clone()));
    }
    // constant_pad_nd takes (before, after) pairs from the last dimension backwards.
    let pad: Vec<i64> = size.iter().zip(target).rev().flat_map(|(s, t)| [0, t - s]).collect();
    Ok(Some(old.f_constant_pad_nd(pad)?))
}

/// Diagonal Fisher of the trainable variables of `vs`: for each of `n`
/// examples, `nll(i)` returns that example's negative log-likelihood; the
/// squared gradients are averaged. Any model can use this, whatever its layers.
pub fn diagonal_fisher_with(
    vs: &VarStore,
    n: usize,
    mut nll: impl FnMut(usize) -> Result<Tensor, ModelError>,
) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let variables: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    let mut sums: BTreeMap<String, Tensor> = BTreeMap::new();
    for (name, var) in &variables {
        sums.insert(name.clone(), var.f_zeros_like()?);
    }
    if n == 0 {
        return Ok(sums);
    }
    for i in 0..n {
        zero_grads(&variables)?;
        let loss = nll(i)?;
        loss.f_backward()?;
        crate::grad::no_grad(|| -> Result<(), ModelError> {
            for (name, var) in &variables {
                let grad = var.f_grad()?;
                if grad.defined() {
                    // A sparse gradient may list a row more than once: sum
                    // the duplicates (coalesce) before squaring.
                    let squared = if grad.is_sparse() {
                        grad.f_coalesce()?.f_square()?
                    } else {
                        grad.f_square()?
                    };
                    let sum = sums.get_mut(name).expect("every variable has a sum");
                    let _ = sum.f_add_(&squared)?;
                }
            }
            Ok(())
        })?;
    }
    zero_grads(&variables)?;
    let scale = 1.0 / n as f64;
    sums.into_iter()
        .map(|(name, sum)| Ok((name, sum.f_mul_scalar(scale)?)))
        .collect()
}

fn zero_grads(variables: &[(String, Tensor)]) -> Result<(), ModelError> {
    for (_, var) in variables {
        let mut grad = var.f_grad()?;
        if grad.defined() {
            let _ = grad.f_zero_()?;
        }
    }
    Ok(())
}

/// Whether every variable of `vs` is finite; the name of the first that is not.
pub fn first_non_finite(vs: &VarStore) -> Result<Option<String>, ModelError> {
    for (name, var) in vs.variables() {
        let finite = crate::grad::no_grad(|| var.f_isfinite()?.f_all())?;
        if finite.f_int64_value(&[])? == 0 {
            return Ok(Some(name));
        }
    }
    Ok(None)
}
