//! Per-coordinate adaptive steps whose state lives with the model.
//!
//! AdaGrad (Duchi, Hazan & Singer 2011), the per-coordinate rate at the heart
//! of Vowpal Wabbit's default update: each weight's step is the base rate
//! divided by the root of the sum of its squared gradients so far. An n-gram
//! seen once keeps a large step and is learned from one article; a frequent
//! one settles. The sums are variables of the model's own `VarStore`, not
//! trainable, named `<variable>__sumsq` (see [`state_name`]), so checkpoints
//! save them with the weights and rollback, restart and cluster install
//! restore them with the weights: an update continues where the last one
//! stopped instead of starting a fresh optimiser.
//!
//! A table may keep one sum per row instead of one per weight (its state is
//! `rows × 1`: row-wise AdaGrad, as large embedding tables are trained): the
//! sum of the squared gradients of the whole row. The hashed linear models do:
//! a weight's first gradient, however small, would otherwise be scaled to a
//! full step of the base rate, so the first article naming a new outlet moved
//! that outlet's weight of every common word by the whole rate and flipped
//! half of the held-out predictions; with a sum per n-gram, each class's
//! step keeps its share of the row's gradient.
//!
//! A variable whose gradient is sparse (a hashed table looked up with
//! `embedding_bag(sparse = true)`) is stepped only on the rows its examples
//! used, weights and sums alike; [`Touched`] records those rows so the update
//! pipeline can copy exactly them between the live model and the trainer's
//! copy.
//!
//! EWC enters as a proximal term, solved in closed form per coordinate:
//! `θ ← (θ − η·g + η·λF̂·θ*) / (1 + η·λF̂)` with `η` the coordinate's adaptive
//! rate and `F̂` the Fisher divided by its mean over the weights it protects
//! ([`EwcState::scale`]). The step is a weighted mean of the plain step and
//! the anchor, so no λ can make it overshoot: a large λ holds a weight at its
//! anchor, it cannot make the model diverge.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use tch::{nn::VarStore, Tensor};

use crate::base::ModelError;
use crate::ewc::{Changed, EwcState};

/// Added under the root of the sums so a weight never seen divides by no zero.
pub(crate) const EPSILON: f64 = 1e-8;

/// The name of the squared-gradient sums of variable `name`.
pub fn state_name(name: &str) -> String {
    format!("{name}{STATE_SUFFIX}")
}

/// How the name of a variable's optimiser state ends.
const STATE_SUFFIX: &str = "__sumsq";

/// Whether `name` is optimiser state rather than a weight.
pub fn is_state(name: &str) -> bool {
    name.ends_with(STATE_SUFFIX)
}

/// Which rows of which variables an update changed.
#[derive(Debug, Default)]
pub struct Touched {
    /// Per variable: `Some(rows)` (a 1-d int64 tensor, possibly with
    /// duplicates) or `None` for the whole variable.
    rows: BTreeMap<String, Option<Vec<Tensor>>>,
    /// Per variable written once by a pass that kept its results: what
    /// it wrote and what the rows held before.
    written: BTreeMap<String, Written>,
}

/// The rows one pass wrote in a variable.
#[derive(Debug)]
struct Written {
    /// The rows (unique).
    rows: Tensor,
    /// Their new values and sums: installing them in the other copy of the
    /// model needs no read of the trained one.
    new: [Tensor; 2],
    /// Their values and sums before the pass: a delta checkpoint stores
    /// only the bits that changed.
    old: [Tensor; 2],
    /// What the model that ran the pass kept of it for itself, in its own
    /// terms (the hashed models: the rows' change, to derive scores from).
    by_model: Option<ByModel>,
}

/// A model's own record of a pass ([`Touched::add_written`]), opaque here.
#[derive(Clone)]
pub(crate) struct ByModel(pub Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for ByModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByModel(..)")
    }
}

impl Touched {
    /// Nothing touched yet.
    pub fn new() -> Touched {
        Touched::default()
    }

    /// Records that `rows` of variable `name` changed.
    pub(crate) fn add_rows(&mut self, name: &str, rows: &Tensor) {
        // Values recorded for a first write are stale after a second one.
        self.written.remove(name);
        // A variable already touched whole stays whole.
        if let Some(list) = self.rows.entry(name.to_string()).or_insert_with(|| Some(Vec::new())) {
            list.push(rows.shallow_clone());
        }
    }

    /// Records that `rows` (unique) of variable `name` now hold `new`
    /// (values and optimiser sums), where they held `old`, and what the
    /// model kept of the pass for itself (`by_model`, see
    /// [`Touched::only_pass`]).
    pub(crate) fn add_written(
        &mut self,
        name: &str,
        rows: &Tensor,
        new: [Tensor; 2],
        old: [Tensor; 2],
        by_model: Option<ByModel>,
    ) {
        let first = !self.rows.contains_key(name);
        self.add_rows(name, rows);
        if first {
            let rows = rows.shallow_clone();
            self.written.insert(
                name.to_string(),
                Written {
                    rows,
                    new,
                    old,
                    by_model,
                },
            );
        }
    }

    /// What variable `var` (a weight or its optimiser state) held in the
    /// rows `rows` before the update, when one pass wrote exactly those rows
    /// and recorded it; `None` otherwise.
    pub fn before(&self, var: &str, rows: &Tensor) -> Option<Tensor> {
        let (name, which) = match var.strip_suffix(STATE_SUFFIX) {
            Some(name) => (name, 1),
            None => (var, 0),
        };
        let written = self.written.get(name)?;
        let same = written.rows.size() == rows.size() && written.rows.f_equal(rows).unwrap_or(false);
        same.then(|| written.old[which].shallow_clone())
    }

    /// What the model kept for itself of the one pass that wrote variable
    /// `name` ([`Touched::add_written`]), when that pass is all the update
    /// changed; `None` when anything else changed too, a second pass wrote
    /// over the first, or the model kept nothing of type `T` (a caller then
    /// reads the model itself).
    pub(crate) fn only_pass<T: Any>(&self, name: &str) -> Option<&T> {
        let written = self.written.get(name)?;
        if self.rows.len() != 1 {
            return None;
        }
        written.by_model.as_ref()?.0.downcast_ref::<T>()
    }

    fn add_all(&mut self, name: &str) {
        self.written.remove(name);
        self.rows.insert(name.to_string(), None);
    }

    /// Every trainable variable, whole (what a dense optimiser changes).
    pub fn everything(vs: &VarStore) -> Touched {
        let mut touched = Touched::new();
        for (name, var) in vs.variables() {
            if var.requires_grad() {
                touched.add_all(&name);
            }
        }
        touched
    }

    /// What this update changed of variable `name`.
    pub fn rows_of(&self, name: &str) -> Result<Changed, ModelError> {
        if let Some(written) = self.written.get(name) {
            return Ok(Changed::Written {
                rows: written.rows.shallow_clone(),
                values: written.new[0].shallow_clone(),
            });
        }
        Ok(match self.rows.get(name) {
            None => Changed::Nothing,
            Some(Some(list)) if list.is_empty() => Changed::Nothing,
            Some(Some(list)) => Changed::Rows(Tensor::f_cat(list, 0)?),
            Some(None) => Changed::Whole,
        })
    }

    /// Whether no variable was touched.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every variable the update changed, its optimiser state included:
    /// `Some(rows)` (unique, int64) or `None` for the whole variable.
    pub fn changed(&self) -> Result<Vec<(String, Option<Tensor>)>, ModelError> {
        let mut changed = Vec::new();
        for (name, rows) in &self.rows {
            let rows = match rows {
                None => None,
                Some(list) if list.is_empty() => continue,
                Some(list) => Some(Tensor::f_cat(list, 0)?.f_unique_dim(0, true, false, false)?.0),
            };
            changed.push((state_name(name), rows.as_ref().map(Tensor::shallow_clone)));
            changed.push((name.clone(), rows));
        }
        Ok(changed)
    }

    /// Copies the touched rows of every touched variable, and of its
    /// optimiser state, from `src` into `dst` (two stores with the same
    /// variables). Returns `false`, copying nothing more, when a variable is
    /// missing or its shape differs (a classifier grew): the caller then
    /// copies the whole model.
    pub fn copy_rows(&self, src: &VarStore, dst: &VarStore) -> Result<bool, ModelError> {
        let src_vars = src.variables();
        let dst_vars = dst.variables();
        if src_vars.len() != dst_vars.len()
            || src_vars
                .iter()
                .any(|(name, t)| dst_vars.get(name).is_none_or(|d| d.size() != t.size()))
        {
            return Ok(false);
        }
        crate::grad::no_grad(|| -> Result<bool, ModelError> {
            for (name, rows) in &self.rows {
                for var in [name.clone(), state_name(name)] {
                    let (Some(from), Some(to)) = (src_vars.get(&var), dst_vars.get(&var)) else {
                        continue;
                    };
                    let mut to = to.shallow_clone();
                    match rows {
                        None => {
                            to.f_copy_(from)?;
                        }
                        Some(list) => {
                            if list.is_empty() {
                                continue;
                            }
                            // Duplicates copy the same values twice: cheaper
                            // than making the rows unique.
                            let rows = Tensor::f_cat(list, 0)?;
                            let values = from.f_index_select(0, &rows)?;
                            let _ = to.f_index_copy_(0, &rows, &values)?;
                        }
                    }
                }
            }
            Ok(true)
        })
    }

    /// Writes the new values recorded by [`Touched::add_written`] into
    /// `dst`, reading nothing from the trained model: the other copy of a
    /// model brought up to date after an accepted update. Returns `false`,
    /// writing nothing, when a touched variable has no record or `dst`
    /// lacks it in that shape (the caller then uses
    /// [`Touched::copy_rows`]).
    pub fn write_recorded(&self, dst: &VarStore) -> Result<bool, ModelError> {
        let dst_vars = dst.variables();
        let mut writes = Vec::new();
        for name in self.rows.keys() {
            let Some(Written {
                rows,
                new: [values, sums],
                ..
            }) = self.written.get(name)
            else {
                return Ok(false);
            };
            for (var, new) in [(name.clone(), values), (state_name(name), sums)] {
                match dst_vars.get(&var) {
                    Some(to) if to.size().get(1..) == new.size().get(1..) => writes.push((to, rows, new)),
                    _ => return Ok(false),
                }
            }
        }
        crate::grad::no_grad(|| -> Result<bool, ModelError> {
            for (to, rows, new) in writes {
                let _ = to.shallow_clone().f_index_copy_(0, rows, new)?;
            }
            Ok(true)
        })
    }
}

/// The EWC terms of an adaptive step: each `(state, λ)` pulls the weights it
/// consolidated towards their anchors.
pub type Penalties<'a> = [(&'a EwcState, f64)];

/// One adaptive step of every trainable variable of `vs` that has a
/// gradient, at base rate `rate`, with the EWC `penalties`; records what it
/// changed in `touched`.
///
/// Every trainable variable needs its sums (a variable named
/// [`state_name`] of the same shape); a model without them is an error.
pub fn adaptive_step(
    vs: &VarStore,
    rate: f64,
    penalties: &Penalties<'_>,
    touched: &mut Touched,
) -> Result<(), ModelError> {
    let variables = vs.variables();
    crate::grad::no_grad(|| -> Result<(), ModelError> {
        for (name, var) in &variables {
            if !var.requires_grad() {
                continue;
            }
            let grad = var.f_grad()?;
            if !grad.defined() {
                continue;
            }
            let sums = variables
                .get(&state_name(name))
                .ok_or_else(|| ModelError::MissingOptimizerState {
                    variable: name.clone(),
                    state: state_name(name),
                })?;
            if grad.is_sparse() {
                let grad = grad.f_coalesce()?;
                let rows = grad.f_indices()?.f_select(0, 0)?;
                let values = grad.f_values()?;
                if rows.numel() == 0 {
                    continue;
                }
                let theta = var.f_index_select(0, &rows)?;
                let squared = match row_wise(&sums.size(), &values.size()) {
                    true => values.f_square()?.f_sum_dim_intlist(1, true, values.kind())?,
                    false => values.f_square()?,
                };
                let sum = sums.f_index_select(0, &rows)?.f_add(&squared)?;
                let stepped = step(name, &theta, &values, &sum, rate, penalties, Some(&rows))?;
                check_finite(name, &stepped)?;
                let _ = sums.shallow_clone().f_index_copy_(0, &rows, &sum)?;
                let _ = var.shallow_clone().f_index_copy_(0, &rows, &stepped)?;
                touched.add_rows(name, &rows);
            } else {
                let sum = sums.f_add(&grad.f_square()?)?;
                let stepped = step(name, var, &grad, &sum, rate, penalties, None)?;
                check_finite(name, &stepped)?;
                sums.shallow_clone().f_copy_(&sum)?;
                var.shallow_clone().f_copy_(&stepped)?;
                touched.add_all(name);
            }
            // Gradients are set to none, so the next backward of a sparse
            // lookup starts sparse again instead of accumulating into a
            // dense tensor.
            let _ = var.shallow_clone().f_grad()?.f_zero_()?;
        }
        Ok(())
    })
}

/// Whether sums of `sums_shape` hold one sum per row (row-wise AdaGrad) for
/// a gradient of `grad_shape`: a `rows × 1` state beside a wider table.
fn row_wise(sums_shape: &[i64], grad_shape: &[i64]) -> bool {
    sums_shape.len() == 2 && sums_shape[1] == 1 && grad_shape.len() == 2 && grad_shape[1] != 1
}

/// Refuses a step that would write a non-finite weight: checked on the
/// stepped rows only, which is all an adaptive step changes.
fn check_finite(name: &str, stepped: &Tensor) -> Result<(), ModelError> {
    let finite = stepped.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
    match finite {
        true => Ok(()),
        false => Err(ModelError::NonFinite(format!(
            "weight {name} is not finite after training"
        ))),
    }
}

/// The new values of `theta` (the rows `rows` of variable `name`, or all of
/// it) after a step with gradient `grad` and squared-gradient sums `sum`.
fn step(
    name: &str,
    theta: &Tensor,
    grad: &Tensor,
    sum: &Tensor,
    rate: f64,
    penalties: &Penalties<'_>,
    rows: Option<&Tensor>,
) -> Result<Tensor, ModelError> {
    let eta = sum
        .f_sqrt()?
        .f_add_scalar(EPSILON)?
        .f_reciprocal()?
        .f_mul_scalar(rate)?;
    let mut numerator = theta.f_sub(&eta.f_mul(grad)?)?;
    let mut denominator: Option<Tensor> = None;
    for (ewc, lambda) in penalties {
        if *lambda == 0.0 {
            continue;
        }
        let Some((fisher, anchor)) = ewc.normalised_rows(name, rows, &theta.size())? else {
            continue;
        };
        // η·λF̂, the weight of the anchor against the plain step.
        let pull = eta.f_mul(&fisher)?.f_mul_scalar(*lambda)?;
        numerator = numerator.f_add(&pull.f_mul(&anchor)?)?;
        denominator = Some(match denominator {
            None => pull.f_add_scalar(1.0)?,
            Some(d) => d.f_add(&pull)?,
        });
    }
    Ok(match denominator {
        None => numerator,
        Some(d) => numerator.f_div(&d)?,
    })
}

/// A zero tensor of optimiser state for `var` in `vs`, named [`state_name`].
pub fn add_state(vs: &VarStore, name: &str, like: &Tensor) -> Result<Tensor, ModelError> {
    Ok(vs.root().f_zeros_no_train(&state_name(name), &like.size())?)
}

/// A state variable with the given values (from a checkpoint or a grown model).
pub fn add_state_with(vs: &VarStore, name: &str, values: &Tensor) -> Result<Tensor, ModelError> {
    let state = add_state(vs, name, values)?;
    crate::grad::no_grad(|| state.shallow_clone().f_copy_(values))?;
    Ok(state)
}
