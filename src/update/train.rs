//! Stage 2, train: one pass over the batch (and its replayed examples),
//! adaptive sparse steps with the model's own optimiser state, or a fresh
//! Adam epoch for models without it; EWC as a penalty.

use tch::nn::{self, OptimizerConfig};

use crate::base::ModelError;
use crate::base::SplitMix64;
use crate::base::TrainingExample;
use crate::ewc::EwcState;
use crate::models::{AgentModel, Gradients, Training};
use crate::optim::{adaptive_step, Touched};

/// One pass over `examples` in shuffled minibatches, each step's loss plus
/// the EWC penalty of every `(state, λ)` given (one for online EWC, one per
/// earlier task for the original EWC): adaptive steps with the model's own
/// optimiser state for [`Training::Adaptive`] models, a fresh Adam
/// otherwise. Returns the mean loss without the penalties; a non-finite loss
/// stops training with [`ModelError::NonFinite`].
pub fn train_one_epoch(
    model: &mut dyn AgentModel,
    examples: &[TrainingExample],
    seed: u64,
    penalties: &[(&EwcState, f64)],
) -> Result<f64, ModelError> {
    train_update(model, examples, seed, penalties).map(|(loss, _)| loss)
}

/// [`train_one_epoch`] by back-propagating every step, never a model's
/// closed form: what tests compare the closed form with.
#[doc(hidden)]
pub fn train_one_epoch_back_propagated(
    model: &mut dyn AgentModel,
    examples: &[TrainingExample],
    seed: u64,
    penalties: &[(&EwcState, f64)],
) -> Result<f64, ModelError> {
    train(model, examples, seed, penalties, false).map(|(loss, _)| loss)
}

/// [`train_one_epoch`], also returning what the pass changed.
pub(crate) fn train_update(
    model: &mut dyn AgentModel,
    examples: &[TrainingExample],
    seed: u64,
    penalties: &[(&EwcState, f64)],
) -> Result<(f64, Touched), ModelError> {
    train(model, examples, seed, penalties, true)
}

/// The pass; `closed_form`: whether a model's own closed form may take it.
fn train(
    model: &mut dyn AgentModel,
    examples: &[TrainingExample],
    seed: u64,
    penalties: &[(&EwcState, f64)],
    closed_form: bool,
) -> Result<(f64, Touched), ModelError> {
    model.prepare(examples)?;
    let mut order: Vec<&TrainingExample> = examples.iter().collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let settings = model.settings();
    let adaptive = settings.training == Training::Adaptive;
    let mut adam = match adaptive {
        true => None,
        false => Some(nn::Adam::default().build(model.var_store(), settings.learning_rate)?),
    };
    let mut touched = Touched::new();
    let mut total = 0.0;
    if closed_form && adaptive && settings.minibatch_size == 1 {
        if let Some((total, touched)) = model.closed_form_pass(&order, penalties)? {
            return Ok((total / examples.len().max(1) as f64, touched));
        }
    }
    let gradients = match adaptive {
        true => Gradients::Sparse,
        false => Gradients::Dense,
    };
    for chunk in order.chunks(settings.minibatch_size) {
        let loss = model.loss(chunk, gradients)?;
        let value = loss.f_double_value(&[])?;
        if !value.is_finite() {
            return Err(ModelError::NonFinite(format!("training loss is {value}")));
        }
        match adam.as_mut() {
            None => {
                loss.f_backward()?;
                adaptive_step(model.var_store(), settings.learning_rate, penalties, &mut touched)?;
            }
            Some(optimizer) => {
                optimizer.zero_grad();
                loss.f_backward()?;
                // The penalty's gradient goes straight into the gradients: the same
                // step as back-propagating λ/2·Σ F(θ−θ*)², at a fraction of the cost.
                for (ewc, lambda) in penalties {
                    ewc.add_penalty_gradient(model.var_store(), *lambda)?;
                }
                optimizer.step();
            }
        }
        total += value * chunk.len() as f64;
    }
    if let Some(mut optimizer) = adam {
        // libtorch's zero_grad sets the gradients to none: the model does not
        // carry them (memory), and the Fisher's gradients start sparse where the
        // model makes them so.
        optimizer.zero_grad();
        touched = Touched::everything(model.var_store());
    }
    Ok((total / examples.len().max(1) as f64, touched))
}
