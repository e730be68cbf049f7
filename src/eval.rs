//! Held-out evaluation: which examples are kept out of training, the window of
//! recent held-out examples per (agent, task), and the metrics an update is
//! judged by.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::example::{Target, TargetKind, TrainingExample};
use crate::features::stable_hash;
use crate::models::AgentModel;

/// Whether an input belongs to the held-out share. A stable hash of the text
/// decides, so the same text is always on the same side, in every process and
/// on every machine. (Corrections and urgent examples are trained whatever
/// the hash says, so such a text can be both trained on and held out.)
pub fn is_held_out(input_text: &str, fraction: f64) -> bool {
    const SCALE: u64 = 1 << 20;
    let slot = stable_hash(input_text.as_bytes()) % SCALE;
    (slot as f64) < fraction * SCALE as f64
}

/// The most recent held-out examples of one (agent, task), oldest first.
#[derive(Debug, Clone)]
pub struct HeldOutWindow {
    capacity: usize,
    examples: VecDeque<TrainingExample>,
}

impl HeldOutWindow {
    /// An empty window of at most `capacity` examples.
    pub fn new(capacity: usize) -> HeldOutWindow {
        HeldOutWindow {
            capacity: capacity.max(1),
            examples: VecDeque::new(),
        }
    }

    /// Adds an example; the oldest leaves when the window is full.
    pub fn push(&mut self, example: TrainingExample) {
        if self.examples.len() == self.capacity {
            self.examples.pop_front();
        }
        self.examples.push_back(example);
    }

    /// Examples in the window.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// A copy of the window's examples, oldest first.
    pub fn snapshot(&self) -> Vec<TrainingExample> {
        self.examples.iter().cloned().collect()
    }
}

/// The name of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Share of exactly right outputs (labels, tag sequences, JSON); higher is better.
    Accuracy,
    /// Mean absolute error of scores; lower is better.
    MeanAbsoluteError,
}

impl MetricName {
    /// The name used in performance records.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::Accuracy => "accuracy",
            MetricName::MeanAbsoluteError => "mean_absolute_error",
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        match self {
            MetricName::Accuracy => true,
            MetricName::MeanAbsoluteError => false,
        }
    }
}

/// A measured metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Which metric.
    pub name: MetricName,
    /// Its value.
    pub value: f64,
    /// Examples it was measured on.
    pub examples: usize,
}

impl Metric {
    /// How much worse `self` is than `before` (negative when it is better).
    pub fn drop_from(&self, before: &Metric) -> f64 {
        if self.name.higher_is_better() {
            before.value - self.value
        } else {
            self.value - before.value
        }
    }
}

/// Measures a model on examples with the metric of its target kind: mean
/// absolute error for scores, accuracy otherwise. A model that cannot predict
/// yet scores as if every answer were wrong (a score of 0.5, the largest
/// expected error, for a regressor).
pub fn evaluate(model: &dyn AgentModel, examples: &[TrainingExample]) -> Result<Option<Metric>, ModelError> {
    if examples.is_empty() {
        return Ok(None);
    }
    let inputs: Vec<&str> = examples.iter().map(|e| e.input_text.as_str()).collect();
    let predictions = match crate::models::predict_checked(model, &inputs) {
        Ok(p) => Some(p),
        Err(ModelError::NotTrained(_)) => None,
        Err(e) => return Err(e),
    };
    let n = examples.len() as f64;
    let metric = if model.target_kind() == TargetKind::Score {
        let error: f64 = examples
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let truth = match e.expected_output {
                    Target::Score(x) => x,
                    _ => return 1.0,
                };
                match predictions.as_ref().map(|p| &p[i].output) {
                    Some(Target::Score(y)) => (truth - y).abs(),
                    _ => 0.5,
                }
            })
            .sum();
        Metric {
            name: MetricName::MeanAbsoluteError,
            value: error / n,
            examples: examples.len(),
        }
    } else {
        let correct = match &predictions {
            None => 0,
            Some(p) => examples
                .iter()
                .zip(p)
                .filter(|(e, p)| e.expected_output == p.output)
                .count(),
        };
        Metric {
            name: MetricName::Accuracy,
            value: correct as f64 / n,
            examples: examples.len(),
        }
    };
    Ok(Some(metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_share_is_close_to_the_fraction_and_stable() {
        let held = (0..10_000)
            .filter(|i| is_held_out(&format!("article {i}"), 0.2))
            .count();
        assert!((1_800..2_200).contains(&held), "held out {held} of 10000");
        assert_eq!(is_held_out("same text", 0.2), is_held_out("same text", 0.2));
        assert!(!is_held_out("anything", 0.0));
    }

    #[test]
    fn drop_is_positive_when_accuracy_falls() {
        let before = Metric {
            name: MetricName::Accuracy,
            value: 0.8,
            examples: 10,
        };
        let after = Metric {
            name: MetricName::Accuracy,
            value: 0.7,
            examples: 10,
        };
        assert!((after.drop_from(&before) - 0.1).abs() < 1e-12);
    }
}
