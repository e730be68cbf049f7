//! The judge's memory of a window: what one version of a task's model
//! answered for each judging example, and the raw scores it answered from.
//!
//! The live model of a task is judged on a window that moves by a few
//! examples per update: its answers for the rest are those it gave, as the
//! accepted candidate, in the update before ([`measure_reusing`]). A
//! candidate differs from the live model in the rows its one pass wrote; a
//! model that gives raw scores derives its window's scores from the live
//! model's and those rows instead of scoring the window afresh
//! ([`measure_after_pass`], [`AgentModel::scored_answers`]).

use std::collections::HashMap;

use crate::base::ModelError;
use crate::base::{ExampleId, Target, TrainingExample};
use crate::models::{predict_checked, scored_checked, AgentModel, KnownScores, Scored};
use crate::optim::Touched;

use super::{measured, Measured};

/// How many updates in a row an example's scores may be derived from the
/// scores before before the judge scores it afresh. Each derivation sums
/// in another order than a fresh score: derived news scores drift from
/// fresh ones by about 1.5·10⁻⁷ of the largest score per derivation
/// (`tests/window_judge.rs`), 2·10⁻⁵ after 128, where one update moves them
/// by 10⁻³ to 0.3. A fresh score reads every row of its input from the
/// table (cache misses): at 32 it was a third of the judge's time in
/// updates of one article.
pub const DERIVED_AT_MOST: u32 = 128;

/// What one version of a model answered for a judging example.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The answer; `None` when the model could not predict yet.
    pub target: Option<Target>,
    /// The raw scores it came from, for a model that gives them.
    scores: Option<Vec<f32>>,
    /// Updates in a row that derived the scores (0: scored afresh).
    derivations: u32,
}

impl Answer {
    /// Updates in a row that derived this answer's scores from the scores
    /// before them (0: scored afresh).
    pub fn derivations(&self) -> u32 {
        self.derivations
    }
}

/// One version's answers on the examples it was judged on, by example id.
pub type Judged = HashMap<ExampleId, Answer>;

/// [`super::measure`], answering only the examples `judged` does not
/// answer yet (and remembering those answers there). The caller keeps
/// `judged` for one version of one model only.
pub fn measure_reusing(
    model: &dyn AgentModel,
    examples: &[TrainingExample],
    judged: &mut Judged,
) -> Result<Option<Measured>, ModelError> {
    if examples.is_empty() {
        return Ok(None);
    }
    let missing: Vec<&TrainingExample> = examples.iter().filter(|e| !judged.contains_key(&e.id)).collect();
    if !missing.is_empty() {
        let inputs: Vec<&str> = missing.iter().map(|e| e.input_text.as_str()).collect();
        match scored_checked(model, &inputs, KnownScores::default()) {
            Some(scored) => remember(judged, &missing, scored, None)?,
            None => remember_predictions(model, judged, &missing, &inputs)?,
        }
    }
    Ok(Some(measured_from(model, examples, judged)))
}

/// [`measure_reusing`] for a candidate that one training pass (`since`,
/// what it changed) made from the version that answered `before`; its own
/// answers go to `judged`. A model that gives raw scores derives the scores
/// of the examples `before` holds scores for from those (at most
/// [`DERIVED_AT_MOST`] updates in a row), and scores the others afresh.
pub fn measure_after_pass(
    model: &dyn AgentModel,
    examples: &[TrainingExample],
    before: &Judged,
    since: Option<&Touched>,
    judged: &mut Judged,
) -> Result<Option<Measured>, ModelError> {
    if examples.is_empty() {
        return Ok(None);
    }
    let all: Vec<&TrainingExample> = examples.iter().collect();
    let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
    let known: Vec<Option<&[f32]>> = examples
        .iter()
        .map(|e| {
            before
                .get(&e.id)
                .filter(|a| a.derivations < DERIVED_AT_MOST)
                .and_then(|a| a.scores.as_deref())
        })
        .collect();
    let known = KnownScores { scores: &known, since };
    match scored_checked(model, &inputs, known) {
        Some(scored) => remember(judged, &all, scored, Some(before))?,
        None => remember_predictions(model, judged, &all, &inputs)?,
    }
    Ok(Some(measured_from(model, examples, judged)))
}

/// Remembers `scored` (one per example) in `judged`, counting derivations
/// on from `before` (no scores: a prediction, nothing to derive from); a
/// model that could not predict yet answered nothing.
fn remember(
    judged: &mut Judged,
    examples: &[&TrainingExample],
    scored: Result<Vec<Scored>, ModelError>,
    before: Option<&Judged>,
) -> Result<(), ModelError> {
    match scored {
        Ok(scored) => {
            for (example, s) in examples.iter().zip(scored) {
                let derivations = match s.derived {
                    true => before.and_then(|b| b.get(&example.id)).map_or(0, |a| a.derivations) + 1,
                    false => 0,
                };
                let answer = Answer {
                    target: Some(s.answer),
                    scores: (!s.scores.is_empty()).then_some(s.scores),
                    derivations,
                };
                judged.insert(example.id, answer);
            }
            Ok(())
        }
        Err(ModelError::NotTrained(_)) => {
            for example in examples {
                judged.insert(example.id, Answer::default());
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Remembers a model's predictions for `examples` (whose texts are
/// `inputs`): answers without scores.
fn remember_predictions(
    model: &dyn AgentModel,
    judged: &mut Judged,
    examples: &[&TrainingExample],
    inputs: &[&str],
) -> Result<(), ModelError> {
    let predicted = predict_checked(model, inputs).map(|outputs| {
        outputs
            .into_iter()
            .map(|p| Scored {
                answer: p.output,
                scores: Vec::new(),
                derived: false,
            })
            .collect()
    });
    remember(judged, examples, predicted, None)
}

/// The metric and losses of the answers `judged` holds for `examples`.
fn measured_from(model: &dyn AgentModel, examples: &[TrainingExample], judged: &Judged) -> Measured {
    let answers: Vec<Option<&Target>> = examples
        .iter()
        .map(|e| judged.get(&e.id).and_then(|a| a.target.as_ref()))
        .collect();
    measured(model.target_kind(), examples, &answers)
}
