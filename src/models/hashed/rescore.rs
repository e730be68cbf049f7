//! Raw scores of judging inputs after a pass, from their scores before it.
//!
//! An update is judged on a window of 100 examples that it hardly changes,
//! by a model that differs from the serving one in the rows its pass
//! wrote: a news update of one article changes about 1,400 of 2¹⁸ rows.
//! Scoring the window afresh (100 articles of up to 2,000 n-grams each, an
//! `embedding_bag` over the table) was three quarters of such an update.
//! An input's scores are a sum over its features, so the candidate's are
//! the serving model's plus, for each changed row the input uses, its value
//! times the row's change: a look-up in a bitmap per feature, and
//! arithmetic only where a row changed.
//!
//! Summing in another order rounds differently: derived scores differ from
//! fresh ones by a few units in the last place per derivation. The judge
//! derives from derived scores a bounded number of times before it scores
//! an input afresh (`crate::eval`), so the difference cannot build up.

use super::closed_form::copied;
use super::{HashedLinear, RowUnion, WEIGHT};
use crate::base::ModelError;
use crate::models::{KnownScores, TextModelConfig};

/// An input's raw scores, one per output, and whether they were derived
/// from its scores before the last pass (rather than scored afresh).
pub(crate) type RawScores = (Vec<f32>, bool);

impl HashedLinear {
    /// Raw scores (one per output) of `inputs`. Where `known` holds an
    /// input's scores under this layer as it was before one pass that
    /// wrote the weight table and nothing else, they are those plus the
    /// changed rows' contributions; every other input is scored afresh.
    pub fn raw_scores(
        &self,
        inputs: &[&str],
        known: KnownScores<'_>,
        config: &TextModelConfig,
    ) -> Result<Vec<RawScores>, ModelError> {
        let outputs = self.outputs();
        let change = known
            .since
            .and_then(|touched| touched.only_pass::<RowChange>(WEIGHT))
            .filter(|change| change.outputs == outputs);
        let mut scored: Vec<Option<RawScores>> = vec![None; inputs.len()];
        if let Some(change) = change {
            let mut hits = Vec::new();
            for (i, text) in inputs.iter().enumerate() {
                if let Some(before) = known.scores.get(i).copied().flatten().filter(|b| b.len() == outputs) {
                    let features = self.features(text, config);
                    let mut scores = before.to_vec();
                    change.add_to(&mut scores, &features.ids, &features.values, &mut hits);
                    scored[i] = Some((scores, true));
                }
            }
        }
        let fresh: Vec<usize> = (0..inputs.len()).filter(|&i| scored[i].is_none()).collect();
        if !fresh.is_empty() {
            let texts: Vec<&str> = fresh.iter().map(|&i| inputs[i]).collect();
            let values = crate::grad::no_grad(|| -> Result<Vec<f32>, ModelError> {
                copied(&self.forward(&texts, config, false)?, texts.len() * outputs)
            })?;
            for (&i, scores) in fresh.iter().zip(values.chunks(outputs.max(1))) {
                scored[i] = Some((scores.to_vec(), false));
            }
        }
        Ok(scored.into_iter().flatten().collect())
    }
}

/// The rows a pass wrote, as a bitmap with ranks, and each one's change:
/// kept by the pass ([`crate::optim::Touched::only_pass`]), which has both
/// at hand, for the judge to derive the candidate's scores from.
pub(super) struct RowChange {
    rows: RowUnion,
    /// `rows × outputs`, in the rows' ascending order.
    delta: Vec<f32>,
    outputs: usize,
}

impl RowChange {
    /// The change of the pass that wrote `rows` (`rows × outputs` values,
    /// in the rows' order) from `before` to `after`.
    pub(super) fn new(rows: RowUnion, before: &[f32], after: &[f32], outputs: usize) -> RowChange {
        let delta = after.iter().zip(before).map(|(a, b)| a - b).collect();
        RowChange { rows, delta, outputs }
    }

    /// Adds to `scores` what the change did to an input of features `ids`
    /// with `values`.
    ///
    /// Most of an input's features are not among the changed rows, and
    /// which are is unpredictable: a branch per feature mispredicted often
    /// enough to be most of the time. The features that hit are gathered
    /// first without a branch (each one's place written, the count moved
    /// on by the bit), then only they are added.
    fn add_to(&self, scores: &mut [f32], ids: &[u32], values: &[f32], hits: &mut Vec<u32>) {
        hits.clear();
        hits.resize(ids.len(), 0);
        let mut found = 0;
        for (i, &id) in ids.iter().enumerate() {
            hits[found] = i as u32;
            found += self.rows.has(id) as usize;
        }
        let outputs = self.outputs;
        for &i in &hits[..found] {
            let (id, value) = (ids[i as usize], values[i as usize]);
            let at = self.rows.place(id) as usize;
            for (score, &d) in scores.iter_mut().zip(&self.delta[at * outputs..(at + 1) * outputs]) {
                *score += value * d;
            }
        }
    }
}
