//! The review queues' side of the engine: a quarantined example offered to
//! a person first in line, a prediction queued for a label, an item that
//! leaves its queue (the coordinator's calls are in `coordinator/review.rs`).

use crate::agent::AgentState;
use crate::base::TrainingExample;
use crate::review::{ReviewItem, QUARANTINED_USEFULNESS};
use crate::runtime::Shared;
use crate::store::{ExampleState, StoreOp};

/// Puts a quarantined example into its task's review queue, first in line;
/// `reason` says why it was quarantined.
pub(crate) fn offer_quarantined(shared: &Shared, agent: &AgentState, row: TrainingExample, reason: &str) {
    enqueue(shared, agent, row, QUARANTINED_USEFULNESS, Some(reason.to_string()));
}

/// Puts a stored row (its target is what is shown as the answer) into its
/// task's review queue.
pub(crate) fn enqueue(
    shared: &Shared,
    agent: &AgentState,
    row: TrainingExample,
    usefulness: f64,
    quarantined: Option<String>,
) {
    let item = ReviewItem {
        review_id: row.id,
        agent_name: row.agent_name,
        task_type: row.task_type.clone(),
        input_text: row.input_text,
        predicted_output: row.expected_output,
        confidence: 1.0 - row.uncertainty_score,
        usefulness,
        source_url: row.source_url,
        quarantined,
    };
    let dropped = agent
        .reviews
        .lock()
        .entry(row.task_type)
        .or_default()
        .push(item, shared.config.max_pending_review);
    if let Some(dropped) = dropped {
        drop_from_review(shared, dropped);
    }
}

/// An item that left a full review queue: a prediction is unreviewed (its
/// target is the model's own answer: marked evicted, it was taken back and
/// trained as if a person had given it), a quarantined example stays
/// quarantined in the store (only no longer offered).
pub(crate) fn drop_from_review(shared: &Shared, dropped: ReviewItem) {
    if dropped.quarantined.is_none() {
        shared.persist(StoreOp::SetState {
            ids: vec![dropped.review_id],
            state: ExampleState::Unreviewed,
            update_id: None,
        });
    }
}
