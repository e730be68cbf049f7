//! What agents hand in: examples, feedback on predictions and corrections,
//! validated and routed to a held-out window or a buffer, and the update
//! they trigger.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::validate::{check_input, check_name, check_target, check_text};
use super::{Coordinator, FeedbackOutcome, Placement, Receipt};
use crate::agent::{task_of_kind, AgentState};
use crate::base::kind_matches;
use crate::base::{check_unit, now_millis, ExampleId, NewExample, Priority, Target, TargetKind, TrainingExample};
use crate::buffer::Insert;
use crate::error::{Error, Result};
use crate::eval::is_held_out;
use crate::feedback::{judge, PredictionFeedback, UserCorrection};
use crate::store::{ExampleState, Split, StoreOp};

impl Coordinator {
    /// Adds a labelled example (the original's `add_training_example`). Returns
    /// once it is validated and buffered (or held out); never waits for training.
    /// An example of priority ≥ `immediate_update_priority`, or one that brings
    /// the agent's buffer to the threshold, queues an update.
    pub fn add_training_example(&self, example: NewExample) -> Result<Receipt> {
        self.ensure_running()?;
        self.validate_example(&example)?;
        self.accept(example, true)
    }

    /// Hands in an agent's prediction (the original's `add_prediction_feedback`);
    /// see [`crate::feedback`] for the rules deciding what becomes of it.
    pub fn add_prediction_feedback(&self, feedback: PredictionFeedback) -> Result<FeedbackOutcome> {
        self.route_feedback(feedback, &[])
    }

    /// The feedback path, with the model's class probabilities when the
    /// library itself predicted (for the review queue's ordering).
    pub(crate) fn route_feedback(&self, feedback: PredictionFeedback, distribution: &[f64]) -> Result<FeedbackOutcome> {
        self.ensure_running()?;
        let limits = &self.shared.config;
        check_name("agent_name", &feedback.agent_name, limits.max_name_bytes)?;
        check_name("task_type", &feedback.task_type, limits.max_name_bytes)?;
        check_input(&feedback.input_text, limits.max_input_bytes)?;
        check_text("source_url", &feedback.source_url, limits.max_input_bytes)?;
        check_unit("confidence_score", feedback.confidence_score)?;
        check_target("predicted_output", &feedback.predicted_output, limits.max_input_bytes)?;
        feedback
            .predicted_output
            .validate("predicted_output", &feedback.input_text)?;
        if let Some(actual) = &feedback.actual_output {
            check_target("actual_output", actual, limits.max_input_bytes)?;
            actual.validate("actual_output", &feedback.input_text)?;
            let (agent, task) = (&feedback.agent_name, &feedback.task_type);
            kind_matches(agent, task, feedback.predicted_output.kind(), actual.kind())?;
        }
        self.check_task_kind(
            &feedback.agent_name,
            &feedback.task_type,
            feedback.predicted_output.kind(),
        )?;
        let answer = feedback.actual_output.as_ref().unwrap_or(&feedback.predicted_output);
        self.check_configured_model(&feedback.agent_name, &feedback.task_type, answer)?;

        let j = judge(
            &feedback.task_type,
            &feedback.predicted_output,
            feedback.actual_output.as_ref(),
            feedback.confidence_score,
            limits.feedback_uncertainty_threshold,
            limits.feedback_importance_threshold,
        );
        if !j.learn {
            // Not worth learning, but answered: a person need not label it.
            if feedback.actual_output.is_some() {
                let agent = self.shared.agents.read().get(&feedback.agent_name).cloned();
                if let Some(agent) = agent {
                    self.answer_reviews(&agent, &feedback.task_type, &feedback.input_text);
                }
            }
            return Ok(FeedbackOutcome::NotNeeded {
                uncertainty: j.uncertainty,
                importance: j.importance,
            });
        }
        match feedback.actual_output.clone() {
            Some(actual) => {
                let note = format!(
                    "prediction feedback: predicted {} with confidence {:.3}{}",
                    brief(&feedback.predicted_output),
                    feedback.confidence_score,
                    if j.wrong == Some(true) { " (wrong)" } else { "" }
                );
                let mut example = NewExample::new(
                    feedback.agent_name.clone(),
                    feedback.task_type.clone(),
                    feedback.input_text.clone(),
                    actual,
                )
                .with_uncertainty(j.uncertainty)
                .with_importance(j.importance)
                .with_source(feedback.source_url.clone());
                example.user_feedback = Some(note);
                let receipt = self.accept(example, true)?;
                Ok(FeedbackOutcome::Learned {
                    receipt,
                    uncertainty: j.uncertainty,
                    importance: j.importance,
                })
            }
            None => self.queue_for_review(feedback, distribution),
        }
    }

    /// Adds a person's correction (the original's `add_user_correction`):
    /// uncertainty and importance 1.0, never held out; priority 2 (the default)
    /// queues an immediate update, priority 3 is also logged as critical.
    pub fn add_user_correction(&self, correction: UserCorrection) -> Result<Receipt> {
        self.ensure_running()?;
        let example = self.correction_example(correction)?;
        // A person's answer is too valuable to spend on evaluation only.
        self.accept(example, false)
    }

    /// The example a correction becomes, validated: everything that can
    /// refuse it before it is accepted.
    pub(super) fn correction_example(&self, correction: UserCorrection) -> Result<NewExample> {
        let max = self.shared.config.max_input_bytes;
        check_target("incorrect_output", &correction.incorrect_output, max)?;
        check_target("correct_output", &correction.correct_output, max)?;
        correction
            .incorrect_output
            .validate("incorrect_output", &correction.input_text)?;
        correction
            .correct_output
            .validate("correct_output", &correction.input_text)?;
        kind_matches(
            &correction.agent_name,
            &correction.task_type,
            correction.correct_output.kind(),
            correction.incorrect_output.kind(),
        )?;
        let note = correction.user_feedback.clone().unwrap_or_else(|| {
            format!(
                "user correction: the agent answered {}",
                correction.incorrect_output.to_json()
            )
        });
        let example = NewExample::new(
            correction.agent_name,
            correction.task_type,
            correction.input_text,
            correction.correct_output,
        )
        .with_uncertainty(1.0)
        .with_importance(1.0)
        .with_priority(correction.priority)
        .with_feedback(note);
        self.validate_example(&example)?;
        Ok(example)
    }

    /// Queues an update of the agent now, whatever its buffer holds (the
    /// original's `force_update_agent`), also examples a rolled-back update
    /// left waiting until fresh evidence can judge them again; when one is
    /// running, another follows it. Returns without waiting for it.
    pub fn force_update_agent(&self, agent_name: &str) -> Result<()> {
        self.ensure_running()?;
        let agent = self.agent(agent_name)?;
        // If an update is running it may have taken its batch already; the
        // flag makes the worker run another one after it.
        agent.force_requested.store(true, Ordering::Release);
        self.shared.schedule(&agent);
        Ok(())
    }

    pub(super) fn check_task_kind(&self, agent_name: &str, task: &str, got: TargetKind) -> Result<()> {
        let Some(agent) = self.shared.agents.read().get(agent_name).cloned() else {
            return Ok(());
        };
        let tasks = agent.tasks.lock();
        match tasks.get(task) {
            Some(state) => Ok(kind_matches(agent_name, task, state.target_kind, got)?),
            None => Ok(()),
        }
    }

    fn validate_example(&self, example: &NewExample) -> Result<()> {
        let limits = &self.shared.config;
        check_name("agent_name", &example.agent_name, limits.max_name_bytes)?;
        check_name("task_type", &example.task_type, limits.max_name_bytes)?;
        check_input(&example.input_text, limits.max_input_bytes)?;
        check_text("source_url", &example.source_url, limits.max_input_bytes)?;
        if let Some(feedback) = &example.user_feedback {
            check_text("user_feedback", feedback, limits.max_input_bytes)?;
        }
        check_unit("uncertainty_score", example.uncertainty_score)?;
        check_unit("importance_score", example.importance_score)?;
        check_target("expected_output", &example.expected_output, limits.max_input_bytes)?;
        example
            .expected_output
            .validate("expected_output", &example.input_text)?;
        self.check_task_kind(&example.agent_name, &example.task_type, example.expected_output.kind())?;
        self.check_configured_model(&example.agent_name, &example.task_type, &example.expected_output)
    }

    /// Refuses a target the model configured for the task cannot learn
    /// ([`crate::update::configured_model_refuses`]).
    pub(super) fn check_configured_model(&self, agent: &str, task: &str, target: &Target) -> Result<()> {
        match crate::update::configured_model_refuses(&self.shared.config, agent, task, target) {
            Some(refused) => Err(refused.into()),
            None => Ok(()),
        }
    }

    /// Routes a validated example: held out (when `may_hold_out` and the hash
    /// says so, and it is not urgent), or buffered (and maybe an update queued).
    pub(super) fn accept(&self, example: NewExample, may_hold_out: bool) -> Result<Receipt> {
        let config = &self.shared.config;
        let agent = self.agent_or_create(&example.agent_name);
        let kind = example.expected_output.kind();
        {
            // Registers the task. The kind was checked during validation, but a
            // concurrent first example of another kind may have won the race:
            // refuse this one here, before anything is stored.
            let mut tasks = agent.tasks.lock();
            task_of_kind(
                &mut tasks,
                &agent.name,
                &example.task_type,
                kind,
                config.performance_window,
            )?;
        }

        let id = ExampleId(self.shared.next_id()?);
        let priority = example.correction_priority;
        let urgent = u8::from(priority) >= config.immediate_update_priority;
        let example = example.accepted(id, now_millis());

        let trainable = agent
            .tasks
            .lock()
            .get(&example.task_type)
            .is_some_and(|t| t.trainable());
        let held_out =
            trainable && may_hold_out && !urgent && is_held_out(&example.input_text, config.held_out_fraction);
        let (split, state) = match (trainable, held_out) {
            (false, _) => (Split::Train, ExampleState::Kept),
            (true, true) => (Split::HeldOut, ExampleState::Evaluation),
            (true, false) => (Split::Train, ExampleState::Buffered),
        };
        // Handed to the store before anything can act on the example, so its
        // insert precedes every later change of its state.
        if let Some(store) = &self.shared.store {
            store
                .send(StoreOp::Insert {
                    example: example.clone(),
                    split,
                    state,
                })
                .map_err(|_| Error::ShutDown)?;
        }
        self.answer_reviews(&agent, &example.task_type, &example.input_text);
        if !trainable {
            // No model learns this task: keep the example for export instead of
            // letting it occupy the training buffer.
            let mut kept = agent.kept.lock();
            if kept.len() >= config.max_buffer_size {
                let gone = kept.pop_front();
                // With a store it is stored (memory only caches the newest);
                // without one it is gone, and the export will miss it.
                if let (None, Some(gone)) = (&self.shared.store, gone) {
                    agent.note_error(format!(
                        "with the store off, kept examples beyond max_buffer_size ({}) leave memory: example {} of \
                         task {:?} is gone and export_dataset will not have it",
                        config.max_buffer_size, gone.id.0, gone.task_type
                    ));
                }
            }
            kept.push_back(example);
            let mut stats = agent.stats.lock();
            stats.examples_received += 1;
            stats.examples_kept += 1;
            return Ok(Receipt {
                id,
                placement: Placement::Kept,
            });
        }
        if held_out {
            let leaving = agent.hold_out(example);
            {
                let mut stats = agent.stats.lock();
                stats.examples_received += 1;
                stats.examples_held_out += 1;
            }
            if let Some(leaving) = leaving {
                self.train_after_judging(&agent, leaving);
            }
            return Ok(Receipt {
                id,
                placement: Placement::HeldOut,
            });
        }

        if priority == Priority::Critical {
            tracing::warn!(agent = %agent.name, task = %example.task_type, id = id.0, "critical correction received");
        }
        let (placement, _) = self.insert_into_buffer(&agent, example, true);
        if placement == Placement::Buffered && (urgent || agent.fresh_buffered() >= config.update_threshold) {
            self.shared.schedule(&agent);
        }
        Ok(Receipt { id, placement })
    }

    /// A held-out example that left its full window: it judged the updates
    /// of its time and is now trained on like any other, so no labelled
    /// example is lost to training.
    pub(super) fn train_after_judging(&self, agent: &Arc<AgentState>, example: TrainingExample) {
        self.shared.persist(StoreOp::ReleaseHeldOut { ids: vec![example.id] });
        let (placement, _) = self.insert_into_buffer(agent, example, false);
        if placement == Placement::Buffered && agent.fresh_buffered() >= self.shared.config.update_threshold {
            self.shared.schedule(agent);
        }
    }

    /// Puts an example into its agent's buffer, marking what that evicts;
    /// counts it as received when `new`, else moves it from the held-out
    /// count. Returns where it went and the buffer's length.
    fn insert_into_buffer(&self, agent: &AgentState, example: TrainingExample, new: bool) -> (Placement, usize) {
        // Counters change in the same critical section as the buffer, so a
        // status read never sees them disagree.
        let mut buffer = agent.buffer.lock();
        let outcome = buffer.insert(example);
        let mut stats = agent.stats.lock();
        match new {
            true => stats.examples_received += 1,
            false => stats.examples_held_out -= 1,
        }
        let placement = match outcome {
            Insert::Rejected(_) => Placement::NotBuffered,
            _ => Placement::Buffered,
        };
        if let Insert::BufferedEvicting(gone) | Insert::Rejected(gone) = outcome {
            self.shared.record_eviction(agent, &mut stats, gone.id);
        }
        (placement, buffer.len())
    }
}

/// A short JSON rendering of an output for notes (at most about 200 bytes).
fn brief(target: &Target) -> String {
    let mut text = target.to_json().to_string();
    if text.len() > 200 {
        let cut = (0..=200).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}
