//! Active learning: the per-(agent, task) queue of predictions that wait for
//! a person's label, ordered by how much a label would teach the model.
//!
//! Query strategies, as modAL defines them, over the model's class
//! probabilities `p` (sorted, `p₁ ≥ p₂ ≥ …`):
//! - least confidence: `1 − p₁`;
//! - margin: `1 − (p₁ − p₂)` (a small margin is useful);
//! - entropy: `−Σ pᵢ ln pᵢ`.
//!
//! Without probabilities (a regressor, a tagger, feedback handed in by an
//! agent) every strategy falls back to `1 − confidence`. With diversity on,
//! an item whose words overlap an item already handed out in the same call
//! by more than the threshold (Jaccard) waits for a later call, so
//! near-duplicates do not fill the top.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::base::tokenize;
use crate::base::{ExampleId, Target};

/// How the review queue ranks its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryStrategy {
    /// `1 − p₁`.
    #[default]
    LeastConfidence,
    /// `1 − (p₁ − p₂)`.
    Margin,
    /// `−Σ p ln p`.
    Entropy,
}

impl QueryStrategy {
    /// How useful a label for a prediction with class probabilities
    /// `distribution` (any order) and `confidence` would be; larger first.
    pub fn usefulness(self, distribution: &[f64], confidence: f64) -> f64 {
        if distribution.is_empty() {
            return 1.0 - confidence;
        }
        let mut sorted: Vec<f64> = distribution.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        match self {
            QueryStrategy::LeastConfidence => 1.0 - sorted[0],
            QueryStrategy::Margin => 1.0 - (sorted[0] - sorted.get(1).copied().unwrap_or(0.0)),
            QueryStrategy::Entropy => -sorted.iter().filter(|p| **p > 0.0).map(|p| p * p.ln()).sum::<f64>(),
        }
    }
}

/// Why a review call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// No queue holds this review id.
    #[error("review id {0} is not in any review queue")]
    Unknown(u64),
    /// The item was labelled already.
    #[error("review id {0} was labelled already")]
    AlreadyLabelled(u64),
    /// `skip` of an item that is not handed out.
    #[error("review id {0} is not handed out: only an item from next_for_review can be skipped")]
    NotHandedOut(u64),
}

/// A prediction waiting for a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// Its id (also its row's id in the store).
    pub review_id: ExampleId,
    /// The agent.
    pub agent_name: String,
    /// The task.
    pub task_type: String,
    /// What the model saw.
    pub input_text: String,
    /// What it answered.
    pub predicted_output: Target,
    /// How sure it was.
    pub confidence: f64,
    /// How useful a label would be, by the queue's strategy.
    pub usefulness: f64,
    /// Where the input came from.
    pub source_url: String,
    /// Set for a labelled example the library quarantined (an update that
    /// trained it was rolled back, and so was every smaller part of its
    /// batch): why. `predicted_output` is then the label it came with; a
    /// person's label becomes a correction, as for a prediction. Such items
    /// come before every prediction.
    #[serde(default)]
    pub quarantined: Option<String>,
}

/// The usefulness of a quarantined example: above every prediction's.
pub const QUARANTINED_USEFULNESS: f64 = f64::MAX;

/// Counts of a queue, for the status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewStatus {
    /// Items waiting (handed out or not).
    pub queued: usize,
    /// Of those, handed out and not yet labelled or skipped.
    pub handed_out: usize,
    /// Items labelled since start.
    pub labelled: u64,
    /// Items skipped (returned to the queue) since start.
    pub skipped: u64,
    /// Items that left a full queue as the least useful.
    pub dropped: u64,
    /// Items that left the queue, not handed out yet, because their input
    /// was answered another way (a training example or feedback with the
    /// answer) since start.
    pub answered: u64,
}

/// Labelled ids remembered to refuse a second label.
const LABELLED_REMEMBERED: usize = 100_000;

/// The bounded queue of one (agent, task).
#[derive(Debug, Default)]
pub(crate) struct ReviewQueue {
    items: HashMap<ExampleId, ReviewItem>,
    out: HashSet<ExampleId>,
    labelled_ids: HashSet<ExampleId>,
    labelled_order: VecDeque<ExampleId>,
    counts: ReviewStatus,
    /// The model version whose answer an item's usefulness comes from, for
    /// items re-scored since they were queued.
    scored_by: HashMap<ExampleId, u64>,
}

impl ReviewQueue {
    /// Adds an item; when the queue holds `capacity`, the least useful item
    /// not handed out leaves (possibly the new one). Returns the item that left.
    pub fn push(&mut self, item: ReviewItem, capacity: usize) -> Option<ReviewItem> {
        let id = item.review_id;
        self.items.insert(id, item);
        if self.items.len() <= capacity {
            return None;
        }
        let least = self
            .items
            .values()
            .filter(|i| !self.out.contains(&i.review_id))
            .min_by(|a, b| {
                a.usefulness
                    .total_cmp(&b.usefulness)
                    .then(b.review_id.cmp(&a.review_id))
            })
            .map(|i| i.review_id)?;
        self.counts.dropped += 1;
        self.scored_by.remove(&least);
        self.items.remove(&least)
    }

    /// The predictions waiting and not handed out, scored by a model version
    /// other than `version`: their ids and texts.
    pub fn stale(&self, version: u64) -> Vec<(ExampleId, String)> {
        self.items
            .values()
            .filter(|i| i.quarantined.is_none() && !self.out.contains(&i.review_id))
            .filter(|i| self.scored_by.get(&i.review_id) != Some(&version))
            .map(|i| (i.review_id, i.input_text.clone()))
            .collect()
    }

    /// Records what model `version` answers for an item still waiting.
    pub fn rescore(&mut self, id: ExampleId, version: u64, answer: Target, confidence: f64, usefulness: f64) {
        // Handed out meanwhile: the reviewer saw the answer it had.
        if self.out.contains(&id) {
            return;
        }
        if let Some(item) = self.items.get_mut(&id) {
            item.predicted_output = answer;
            item.confidence = confidence;
            item.usefulness = usefulness;
            self.scored_by.insert(id, version);
        }
    }

    /// Hands out up to `n` items not out yet, most useful first (newest first
    /// among equals); with `diversity`, skips items too similar to one taken.
    pub fn take(&mut self, n: usize, diversity: Option<f64>) -> Vec<ReviewItem> {
        let mut candidates: Vec<&ReviewItem> = self
            .items
            .values()
            .filter(|i| !self.out.contains(&i.review_id))
            .collect();
        candidates.sort_by(|a, b| {
            b.usefulness
                .total_cmp(&a.usefulness)
                .then(b.review_id.cmp(&a.review_id))
        });
        let mut chosen: Vec<ReviewItem> = Vec::new();
        let mut words: Vec<HashSet<String>> = Vec::new();
        for item in candidates {
            if chosen.len() == n {
                break;
            }
            let these: HashSet<String> = tokenize(&item.input_text).into_iter().collect();
            if let Some(limit) = diversity {
                if words.iter().any(|w| jaccard(w, &these) > limit) {
                    continue;
                }
            }
            words.push(these);
            chosen.push(item.clone());
        }
        for item in &chosen {
            self.out.insert(item.review_id);
        }
        chosen
    }

    /// The item with this id, without changing anything.
    pub fn peek(&self, id: ExampleId) -> Result<&ReviewItem, ReviewError> {
        if self.labelled_ids.contains(&id) {
            return Err(ReviewError::AlreadyLabelled(id.0));
        }
        self.items.get(&id).ok_or(ReviewError::Unknown(id.0))
    }

    /// Removes a labelled item (handed out or not) and returns it.
    pub fn label(&mut self, id: ExampleId) -> Result<ReviewItem, ReviewError> {
        if self.labelled_ids.contains(&id) {
            return Err(ReviewError::AlreadyLabelled(id.0));
        }
        let item = self.items.remove(&id).ok_or(ReviewError::Unknown(id.0))?;
        self.scored_by.remove(&id);
        self.out.remove(&id);
        self.labelled_ids.insert(id);
        self.labelled_order.push_back(id);
        if self.labelled_order.len() > LABELLED_REMEMBERED {
            if let Some(old) = self.labelled_order.pop_front() {
                self.labelled_ids.remove(&old);
            }
        }
        self.counts.labelled += 1;
        Ok(item)
    }

    /// The prediction already waiting for `input_text` (handed out or not).
    pub fn waiting_for(&self, input_text: &str) -> Option<ExampleId> {
        self.items
            .values()
            .find(|i| i.quarantined.is_none() && i.input_text == input_text)
            .map(|i| i.review_id)
    }

    /// Removes the items waiting for `input_text` and not handed out (its
    /// answer came another way); returns them. A handed-out item stays: its
    /// reviewer's label is a correction still.
    pub fn answered(&mut self, input_text: &str) -> Vec<ReviewItem> {
        let ids: Vec<ExampleId> = self
            .items
            .values()
            .filter(|i| i.quarantined.is_none() && !self.out.contains(&i.review_id) && i.input_text == input_text)
            .map(|i| i.review_id)
            .collect();
        self.counts.answered += ids.len() as u64;
        ids.into_iter()
            .filter_map(|id| {
                self.scored_by.remove(&id);
                self.items.remove(&id)
            })
            .collect()
    }

    /// Returns a handed-out item to the queue.
    pub fn skip(&mut self, id: ExampleId) -> Result<(), ReviewError> {
        if self.labelled_ids.contains(&id) {
            return Err(ReviewError::AlreadyLabelled(id.0));
        }
        if !self.items.contains_key(&id) {
            return Err(ReviewError::Unknown(id.0));
        }
        if !self.out.remove(&id) {
            return Err(ReviewError::NotHandedOut(id.0));
        }
        self.counts.skipped += 1;
        Ok(())
    }

    /// Whether the queue knows this id (waiting or labelled).
    pub fn knows(&self, id: ExampleId) -> bool {
        self.items.contains_key(&id) || self.labelled_ids.contains(&id)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn status(&self) -> ReviewStatus {
        ReviewStatus {
            queued: self.items.len(),
            handed_out: self.out.len(),
            ..self.counts
        }
    }
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}
