//! The arithmetic of a consolidation: the kept Fisher decayed and the
//! fresh one added (in place where shapes held), the anchors brought to
//! the new weights (only the rows an update changed, where it can), and
//! the count and mean of the Fisher's positive entries that scale λ.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use super::{deep_copy, dense, pad_to, Changed, Fisher, RowsOf};
use crate::base::ModelError;

/// The values of `t` as 32-bit floats, on the CPU.
fn floats(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_reshape([-1])?)?)
}

/// `γ·old + fresh` per variable of `fresh` (variables only `old` has are
/// dropped), in place where a variable's shape held, with the count of
/// positive entries carried over from `positive` where only rows were
/// added (`None`: count the result afresh).
pub(super) fn decayed_plus(
    mut old_fisher: Fisher,
    fresh: Fisher,
    gamma: f64,
    mut positive: Option<f64>,
) -> Result<(Fisher, Option<f64>), ModelError> {
    let mut fisher = BTreeMap::new();
    for (name, new) in fresh {
        let combined = match old_fisher.remove(&name) {
            // In place where the shape held: the state is this update's
            // alone (the lock of its live model is held), and a new table
            // per consolidation cost more than the pass.
            Some(mut old) if old.size() == new.size() => {
                let _ = old.f_mul_scalar_(gamma)?;
                match new.is_sparse() {
                    // The rows of a coalesced sparse Fisher are distinct:
                    // their sums are written over the decayed rows, which
                    // takes less time than adding the sparse tensor or
                    // index_add_, and gives the same values.
                    true if new.is_coalesced() && new.sparse_dim() == 1 => {
                        let rows = new.f_indices()?.f_select(0, 0)?;
                        let values = new.f_values()?;
                        let decayed = old.f_index_select(0, &rows)?;
                        if positive.is_some() {
                            // Both non-negative: a sum is positive where either
                            // is, so the count grows by the rows' entries that
                            // were zero and are not any more.
                            let (decayed, values) = (floats(&decayed)?, floats(&values)?);
                            // Counted here, not by tensor calls (a sign and a
                            // sum for each of the two counts took 1.2 ms).
                            let new = decayed
                                .iter()
                                .zip(&values)
                                .filter(|&(&d, &v)| d == 0.0 && v > 0.0)
                                .count();
                            positive = positive.map(|p| p + new as f64);
                        }
                        let _ = old.f_index_copy_(0, &rows, &decayed.f_add(&values)?)?;
                    }
                    _ => {
                        let _ = old.f_add_(&new)?;
                        positive = None;
                    }
                }
                old
            }
            Some(old) => {
                positive = None;
                match pad_to(&old, &new.size())? {
                    Some(old) => old.f_mul_scalar(gamma)?.f_add(&new)?,
                    None => dense(new)?,
                }
            }
            None => {
                positive = None;
                dense(new)?
            }
        };
        fisher.insert(name, combined);
    }
    if !old_fisher.is_empty() {
        positive = None; // Variables the fresh Fisher lacks are dropped.
    }
    Ok((fisher, positive))
}

/// The anchors of the variables of `fisher`: their values in `variables`,
/// written into `old` in place where shapes held, only the rows `rows_since`
/// says changed when it is given (the anchors were a copy of the version
/// the update started from).
pub(super) fn anchors_of(
    fisher: &Fisher,
    variables: &std::collections::HashMap<String, Tensor>,
    mut old: BTreeMap<String, Tensor>,
    rows_since: Option<&RowsOf<'_>>,
) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let mut anchors = BTreeMap::new();
    for name in fisher.keys() {
        let Some(theta) = variables.get(name) else { continue };
        let changed = rows_since.map(|rows_of| rows_of(name)).transpose()?;
        let anchor = match (old.remove(name), changed) {
            (Some(anchor), Some(Changed::Written { rows, values }))
                if anchor.size() == theta.size() && values.size().get(1..) == theta.size().get(1..) =>
            {
                let _ = anchor.shallow_clone().f_index_copy_(0, &rows, &values)?;
                anchor
            }
            (Some(anchor), Some(Changed::Rows(rows))) if anchor.size() == theta.size() => {
                let _ = anchor
                    .shallow_clone()
                    .f_index_copy_(0, &rows, &theta.f_index_select(0, &rows)?)?;
                anchor
            }
            // Untouched since the anchored version: nothing to copy.
            (Some(anchor), Some(Changed::Nothing)) if anchor.size() == theta.size() => anchor,
            (Some(mut anchor), _) if anchor.size() == theta.size() => {
                anchor.f_copy_(theta)?;
                anchor
            }
            _ => deep_copy(theta)?,
        };
        anchors.insert(name.clone(), anchor);
    }
    Ok(anchors)
}

/// The mean of the positive entries of every tensor of `fisher`, of which
/// `positive` are positive (0 when none is).
pub(super) fn mean_of_positive(fisher: &BTreeMap<String, Tensor>, positive: f64) -> f64 {
    let sum: f64 = fisher
        .values()
        .filter_map(|t| t.f_sum(Kind::Float).and_then(|s| s.f_double_value(&[])).ok())
        .sum();
    match positive > 0.0 {
        true => sum / positive,
        false => 0.0,
    }
}

/// How many entries of `tensors` are positive, for tensors of non-negative
/// entries (a Fisher, a mean of squares): the sum of their signs, counted
/// in double precision, so it is exact whatever the table's size (and a
/// third of the time of count_nonzero, which libtorch does not vectorise).
pub(super) fn count_positive<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> f64 {
    tensors
        .into_iter()
        .filter_map(|t| {
            t.f_sign()
                .and_then(|p| p.f_sum(Kind::Double))
                .and_then(|c| c.f_double_value(&[]))
                .ok()
        })
        .sum()
}
