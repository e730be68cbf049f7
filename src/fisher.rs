//! The diagonal Fisher information of a model's weights over examples (what
//! EWC weighs each weight's anchor by, [`crate::ewc`]): the empirical Fisher
//! (the examples' own targets) or the true Fisher (targets drawn from the
//! model's predictive distribution). Here, above the models, because it
//! needs a whole model; the Fisher of any `VarStore` is
//! [`crate::ewc::diagonal_fisher_with`].

use crate::base::{ModelError, TrainingExample};
use crate::ewc::{dense, diagonal_fisher_with, Fisher, FisherKind};
use crate::models::AgentModel;

/// Diagonal Fisher of a model over (at most `max_samples` of) `examples`,
/// a dense tensor per trainable variable.
pub fn diagonal_fisher(
    model: &dyn AgentModel,
    examples: &[TrainingExample],
    kind: FisherKind,
    max_samples: usize,
    seed: u64,
) -> Result<Fisher, ModelError> {
    let sampled = fisher_examples(model, examples, kind, max_samples, seed)?;
    fresh_fisher(model, &sampled)?
        .into_iter()
        .map(|(name, t)| Ok((name, dense(t)?)))
        .collect()
}

/// The examples a Fisher is taken over: at most `max_samples` of
/// `examples`, with their own targets (the empirical Fisher) or targets
/// drawn from the model (the true Fisher).
pub(crate) fn fisher_examples(
    model: &dyn AgentModel,
    examples: &[TrainingExample],
    kind: FisherKind,
    max_samples: usize,
    seed: u64,
) -> Result<Vec<TrainingExample>, ModelError> {
    let used = &examples[..examples.len().min(max_samples)];
    Ok(match kind {
        FisherKind::Empirical => used.to_vec(),
        FisherKind::True => {
            let refs: Vec<&TrainingExample> = used.iter().collect();
            let targets = model.sample_targets(&refs, seed)?;
            used.iter()
                .zip(targets)
                .map(|(e, target)| TrainingExample {
                    expected_output: target,
                    ..e.clone()
                })
                .collect()
        }
    })
}

/// The Fisher over `sampled` ([`fisher_examples`]), where a tensor may
/// stay sparse (COO) as a model's closed form gives it: what
/// [`crate::ewc::EwcState::consolidate`] adds to the Fisher it keeps
/// without a dense table per update.
pub(crate) fn fresh_fisher(model: &dyn AgentModel, sampled: &[TrainingExample]) -> Result<Fisher, ModelError> {
    let refs: Vec<&TrainingExample> = sampled.iter().collect();
    match model.closed_form_fisher(&refs)? {
        Some(fisher) => Ok(fisher),
        None => diagonal_fisher_back_propagated(model, sampled),
    }
}

/// The empirical Fisher of `model` over `examples` by back-propagating
/// each one, never a model's closed form: what tests compare the closed
/// form with.
#[doc(hidden)]
pub fn diagonal_fisher_back_propagated(
    model: &dyn AgentModel,
    examples: &[TrainingExample],
) -> Result<Fisher, ModelError> {
    diagonal_fisher_with(model.var_store(), examples.len(), |i| model.fisher_loss(&examples[i]))
}
