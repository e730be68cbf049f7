//! The active-learning calls: predictions that wait for a label go into
//! their task's review queue ([`crate::review`]), persisted with state
//! `pending_review`; a person takes the most useful ones, labels them (each
//! label becomes a correction) or skips them.

use super::{Coordinator, FeedbackOutcome, Receipt};
use crate::active::{drop_from_review, enqueue, offer_quarantined};
use crate::agent::{task_of_kind, AgentState};
use crate::base::{now_millis, ExampleId, Priority, Target, TrainingExample};
use crate::error::Result;
use crate::feedback::{PredictionFeedback, UserCorrection};
use crate::review::{ReviewError, ReviewItem};
use crate::store::{ExampleState, Split, StoreOp};

impl Coordinator {
    /// Puts a validated prediction without a known answer into its task's
    /// review queue: awaiting a label, or not kept when the full queue's
    /// least useful item is this one.
    pub(crate) fn queue_for_review(
        &self,
        feedback: PredictionFeedback,
        distribution: &[f64],
    ) -> Result<FeedbackOutcome> {
        let config = &self.shared.config;
        let usefulness = config
            .query_strategy
            .usefulness(distribution, feedback.confidence_score);
        let agent = self.agent_or_create(&feedback.agent_name);
        task_of_prediction(
            &mut agent.tasks.lock(),
            &agent.name,
            &feedback.task_type,
            feedback.predicted_output.kind(),
            config.performance_window,
        )?;
        // One item per input: the same unsure input predicted again waits
        // as the item it is already (copies filled the queue, pushed out
        // other inputs, and went to several people, each label trained).
        {
            let reviews = agent.reviews.lock();
            let queue = reviews.get(&feedback.task_type);
            if let Some((review_id, queue)) = queue.and_then(|q| q.waiting_for(&feedback.input_text).map(|id| (id, q)))
            {
                return Ok(FeedbackOutcome::AwaitingLabel {
                    review_id,
                    pending: queue.len(),
                });
            }
        }
        let review_id = ExampleId(self.shared.next_id()?);
        let row = TrainingExample {
            id: review_id,
            agent_name: feedback.agent_name.clone(),
            task_type: feedback.task_type.clone(),
            input_text: feedback.input_text.clone(),
            expected_output: feedback.predicted_output.clone(),
            uncertainty_score: 1.0 - feedback.confidence_score,
            importance_score: usefulness,
            source_url: feedback.source_url.clone(),
            timestamp: now_millis(),
            user_feedback: None,
            correction_priority: Priority::Low,
        };
        if let Some(store) = &self.shared.store {
            store
                .send(StoreOp::Insert {
                    example: row,
                    split: Split::Train,
                    state: ExampleState::PendingReview,
                })
                .map_err(|_| crate::Error::ShutDown)?;
        }
        let item = ReviewItem {
            review_id,
            agent_name: feedback.agent_name,
            task_type: feedback.task_type.clone(),
            input_text: feedback.input_text,
            predicted_output: feedback.predicted_output,
            confidence: feedback.confidence_score,
            usefulness,
            source_url: feedback.source_url,
            quarantined: None,
        };
        let mut reviews = agent.reviews.lock();
        let queue = reviews.entry(feedback.task_type).or_default();
        let dropped = queue.push(item, config.max_pending_review);
        let pending = queue.len();
        drop(reviews);
        match dropped {
            // Said as such: "awaiting a label" for an item that left at once
            // sent the person looking for it.
            Some(dropped) if dropped.review_id == review_id => {
                drop_from_review(&self.shared, dropped);
                Ok(FeedbackOutcome::NotKept { pending })
            }
            Some(dropped) => {
                drop_from_review(&self.shared, dropped);
                Ok(FeedbackOutcome::AwaitingLabel { review_id, pending })
            }
            None => Ok(FeedbackOutcome::AwaitingLabel { review_id, pending }),
        }
    }

    /// Offers a stored quarantined row to a person again (at start-up).
    pub(crate) fn restore_quarantined(&self, row: TrainingExample) {
        if let Some(agent) = self.agent_of_row(&row) {
            offer_quarantined(
                &self.shared,
                &agent,
                row,
                "an update that trained it was rolled back, and so was every smaller part of its batch",
            );
        }
    }

    /// Puts a stored pending-review row back into its queue (at start-up).
    pub(crate) fn restore_review(&self, row: TrainingExample) {
        if let Some(agent) = self.agent_of_row(&row) {
            let usefulness = row.importance_score;
            enqueue(&self.shared, &agent, row, usefulness, None);
        }
    }

    /// The agent of a stored row, its task registered; `None` when the task
    /// learns another kind of target.
    fn agent_of_row(&self, row: &TrainingExample) -> Option<std::sync::Arc<AgentState>> {
        let agent = self.agent_or_create(&row.agent_name);
        let window = self.shared.config.performance_window;
        let kind = row.expected_output.kind();
        task_of_prediction(&mut agent.tasks.lock(), &agent.name, &row.task_type, kind, window).ok()?;
        Some(agent)
    }

    /// Hands out up to `n` predictions of (agent, task) that wait for a label,
    /// the most useful first by the configured query strategy (with the
    /// diversity rule). An item handed out is not handed out again until it is
    /// skipped.
    ///
    /// The predictions waiting are scored again by the live model first when
    /// it changed since they were scored: an answer the model gave several
    /// versions ago says little about what a label would teach it now, and
    /// items scored by different versions do not compare.
    pub fn next_for_review(&self, agent_name: &str, task_type: &str, n: usize) -> Result<Vec<ReviewItem>> {
        self.ensure_running()?;
        let agent = self.agent(agent_name)?;
        self.rescore_reviews(&agent, task_type);
        let diversity = self.shared.config.review_diversity;
        let items = agent
            .reviews
            .lock()
            .get_mut(task_type)
            .map(|queue| queue.take(n, diversity))
            .unwrap_or_default();
        Ok(items)
    }

    /// Scores the waiting predictions of a task again with its live model,
    /// those scored by another version. Predicted outside the queue's lock;
    /// a failure leaves the old scores (logged).
    fn rescore_reviews(&self, agent: &AgentState, task_type: &str) {
        let Some(live) = agent.live_model(task_type) else {
            return;
        };
        let version = live.version();
        let stale = match agent.reviews.lock().get(task_type) {
            Some(queue) => queue.stale(version),
            None => return,
        };
        if stale.is_empty() {
            return;
        }
        let texts: Vec<&str> = stale.iter().map(|(_, t)| t.as_str()).collect();
        let answers = {
            let model = live.serving();
            crate::models::predict_checked(model.as_ref(), &texts)
        };
        let answers = match answers {
            Ok(answers) => answers,
            Err(e) => {
                tracing::warn!(agent = %agent.name, task = task_type, error = %e, "review items not scored again");
                return;
            }
        };
        let strategy = self.shared.config.query_strategy;
        let mut reviews = agent.reviews.lock();
        let Some(queue) = reviews.get_mut(task_type) else {
            return;
        };
        for ((id, _), answer) in stale.iter().zip(answers) {
            let usefulness = strategy.usefulness(&answer.distribution, answer.confidence);
            queue.rescore(*id, version, answer.output, answer.confidence, usefulness);
        }
    }

    /// Labels a review item: it leaves the queue and becomes a user
    /// correction (the model's answer as the incorrect output) with
    /// `priority` (2 when `None`, which triggers an update). Errors: an
    /// unknown id, an id labelled already, an output of another kind.
    pub fn label(&self, review_id: ExampleId, output: Target, priority: Option<Priority>) -> Result<Receipt> {
        self.ensure_running()?;
        let item = self.with_queue_of(review_id, |queue| Ok(queue.peek(review_id)?.clone()))?;
        let settled = reviewed_state(&item);
        // Every check of the correction before the item leaves its queue: a
        // label refused after (one over `max_input_bytes`) used the item up,
        // and the person could neither label it again nor skip it.
        let example = self.correction_example(UserCorrection {
            priority: priority.unwrap_or(Priority::High),
            user_feedback: Some(format!("label of review item {review_id}")),
            ..UserCorrection::new(
                item.agent_name,
                item.task_type,
                item.input_text,
                item.predicted_output,
                output,
            )
        })?;
        // With several instances every one holds the group's waiting items:
        // the first label taken in the database wins, a second one (from
        // another instance) is refused rather than trained as a second,
        // maybe contradicting, correction.
        if let Some(cluster) = &self.shared.cluster {
            // The item's row may still be on its way to the database.
            if let Some(store) = &self.shared.store {
                store.flush(std::time::Duration::from_secs(5))?;
            }
            if !cluster.take_review(review_id, settled)? {
                let _ = self.with_queue_of(review_id, |queue| Ok(queue.label(review_id)?));
                return Err(crate::review::ReviewError::AlreadyLabelled(review_id.0).into());
            }
        }
        self.with_queue_of(review_id, |queue| Ok(queue.label(review_id)?))?;
        self.shared.persist(StoreOp::SetState {
            ids: vec![review_id],
            state: settled,
            update_id: None,
        });
        self.accept(example, false)
    }

    /// Returns a handed-out item to its queue, unlabelled.
    pub fn skip(&self, review_id: ExampleId) -> Result<()> {
        self.ensure_running()?;
        self.with_queue_of(review_id, |queue| Ok(queue.skip(review_id)?))
    }

    /// Runs `f` on the queue that knows `review_id`, under its agent's lock.
    /// [`Coordinator::label`] with the output as JSON, read by what the
    /// item's task learns ([`Coordinator::read_json_target`]).
    pub fn label_json(
        &self,
        review_id: ExampleId,
        output: serde_json::Value,
        priority: Option<Priority>,
    ) -> Result<Receipt> {
        self.ensure_running()?;
        let (agent, task) = self.with_queue_of(review_id, |queue| {
            let item = queue.peek(review_id)?;
            Ok((item.agent_name.clone(), item.task_type.clone()))
        })?;
        let _one_at_a_time = self.first_labels_guard(&agent, &task);
        let (output, form) = self.read_json_target(&agent, &task, "output", output)?;
        let receipt = self.label(review_id, output, priority)?;
        self.fix_label_form(&agent, &task, form);
        Ok(receipt)
    }

    /// Takes the predictions of `input_text` waiting for a person out of
    /// the task's review queue: the input has its answer now (an accepted
    /// example). Stored as reviewed.
    pub(super) fn answer_reviews(&self, agent: &AgentState, task: &str, input_text: &str) {
        let answered = match agent.reviews.lock().get_mut(task) {
            Some(queue) if queue.len() > 0 => queue.answered(input_text),
            _ => return,
        };
        // Predictions only: quarantined examples wait for a person.
        if !answered.is_empty() {
            self.shared.persist(StoreOp::SetState {
                ids: answered.iter().map(|item| item.review_id).collect(),
                state: ExampleState::Reviewed,
                update_id: None,
            });
        }
    }

    fn with_queue_of<T>(
        &self,
        review_id: ExampleId,
        f: impl FnOnce(&mut crate::review::ReviewQueue) -> Result<T>,
    ) -> Result<T> {
        for agent in self.shared.agents_snapshot() {
            let mut reviews = agent.reviews.lock();
            if let Some(queue) = reviews.values_mut().find(|q| q.knows(review_id)) {
                return f(queue);
            }
        }
        Err(ReviewError::Unknown(review_id.0).into())
    }
}

/// Checks a prediction waiting for a label against its task, registering the
/// task by it, except that a prediction no model learns (free JSON, the
/// original system's `result.output` of a dict) registers nothing: it fixed
/// the task as kept for export, and the labels written next (`"markets"`)
/// were kept as JSON and never trained. A target does that, not a guess.
fn task_of_prediction(
    tasks: &mut std::collections::BTreeMap<String, crate::agent::TaskState>,
    agent: &str,
    task: &str,
    kind: crate::base::TargetKind,
    window: usize,
) -> std::result::Result<(), crate::base::ValidationError> {
    if kind == crate::base::TargetKind::Json && !tasks.contains_key(task) {
        return Ok(());
    }
    task_of_kind(tasks, agent, task, kind, window).map(|_| ())
}

/// The stored state of a review item once settled: a prediction is
/// reviewed; a quarantined example stays counted as quarantined.
fn reviewed_state(item: &ReviewItem) -> ExampleState {
    match item.quarantined {
        Some(_) => ExampleState::QuarantineReviewed,
        None => ExampleState::Reviewed,
    }
}
