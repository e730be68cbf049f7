//! What flows through the library: training examples, their targets and
//! priorities, and the record of one model update.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::errors::{ModelError, ValidationError};

/// A unique, increasing id given to every accepted example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExampleId(pub u64);

impl fmt::Display for ExampleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The expected output of an example.
///
/// A task's target type is fixed by its first example; it decides which model
/// learns it (a classifier for labels, a regressor for scores, a tagger for tags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// A class label, such as an outlet or a sentiment.
    Label(String),
    /// A score in `0..=1`, such as quality or credibility.
    Score(f64),
    /// One tag per whitespace-separated token of the input (BIO entity tags).
    Tags(Vec<String>),
    /// Anything else (a summary, a screenshot description): kept, not trained by a built-in model.
    Json(serde_json::Value),
}

/// The kind of a [`Target`], without its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// [`Target::Label`].
    Label,
    /// [`Target::Score`].
    Score,
    /// [`Target::Tags`].
    Tags,
    /// [`Target::Json`].
    Json,
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Label => "label",
            TargetKind::Score => "score",
            TargetKind::Tags => "tags",
            TargetKind::Json => "json",
        })
    }
}

impl Target {
    /// This target's kind.
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Label(_) => TargetKind::Label,
            Target::Score(_) => TargetKind::Score,
            Target::Tags(_) => TargetKind::Tags,
            Target::Json(_) => TargetKind::Json,
        }
    }

    /// The label, or [`ModelError::WrongTarget`] for a model that learns
    /// labels.
    pub fn as_label(&self) -> Result<&str, ModelError> {
        match self {
            Target::Label(label) => Ok(label),
            other => Err(other.kind_mismatch(TargetKind::Label)),
        }
    }

    /// The score, or [`ModelError::WrongTarget`] for a model that learns
    /// scores.
    pub fn as_score(&self) -> Result<f64, ModelError> {
        match self {
            Target::Score(score) => Ok(*score),
            other => Err(other.kind_mismatch(TargetKind::Score)),
        }
    }

    /// The tags, or [`ModelError::WrongTarget`] for a model that learns tags.
    pub fn as_tags(&self) -> Result<&[String], ModelError> {
        match self {
            Target::Tags(tags) => Ok(tags),
            other => Err(other.kind_mismatch(TargetKind::Tags)),
        }
    }

    /// The error a model that learns `expected` targets gives for this one.
    pub fn kind_mismatch(&self, expected: TargetKind) -> ModelError {
        ModelError::WrongTarget {
            expected,
            got: self.kind(),
        }
    }

    /// Reads a plain JSON value the way agents write outputs: a string, a
    /// boolean or an integer is a class label (`true` is the label
    /// `"true"`, `3` the label `"3"`), a fractional number a score, an array
    /// of strings token tags, anything else free JSON. A task that learns
    /// scores reads integers as scores
    /// ([`crate::Coordinator::read_json_target`]).
    pub fn from_json(value: serde_json::Value) -> Target {
        match value {
            serde_json::Value::String(s) => Target::Label(s),
            serde_json::Value::Bool(b) => Target::Label(b.to_string()),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Target::Label(n.to_string()),
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(x) => Target::Score(x),
                None => Target::Json(serde_json::Value::Number(n)),
            },
            serde_json::Value::Array(items) if !items.is_empty() && items.iter().all(|v| v.is_string()) => {
                Target::Tags(
                    items
                        .into_iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                )
            }
            other => Target::Json(other),
        }
    }

    /// The plain JSON form (a label as a string; see
    /// [`crate::base::target_json::LabelForm::to_json`] for its caller's form).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Target::Label(s) => serde_json::Value::String(s.clone()),
            Target::Score(x) => serde_json::json!(x),
            Target::Tags(tags) => serde_json::json!(tags),
            Target::Json(v) => v.clone(),
        }
    }

    /// Checks the target's own rules against the input it belongs to;
    /// `field` names the argument as the caller wrote it
    /// (`expected_output`, `predicted_output`, ...).
    pub(crate) fn validate(&self, field: &'static str, input_text: &str) -> Result<(), ValidationError> {
        if json_has_nul(&self.to_json()) {
            return Err(ValidationError::NulCharacter { field });
        }
        match self {
            Target::Label(label) if label.trim().is_empty() => Err(ValidationError::EmptyLabel),
            Target::Label(label) if label.trim() != label => Err(ValidationError::UntrimmedLabel(label.clone())),
            Target::Score(x) => check_unit(field, *x),
            Target::Tags(tags) => {
                let tokens = input_text.split_whitespace().count();
                if tags.len() != tokens {
                    return Err(ValidationError::TagCountMismatch {
                        tokens,
                        tags: tags.len(),
                    });
                }
                if tags.iter().any(|t| t.trim().is_empty()) {
                    return Err(ValidationError::EmptyLabel);
                }
                match tags.iter().position(|t| !is_bio(t)) {
                    Some(position) => Err(ValidationError::NotBioTag {
                        position,
                        tag: tags[position].clone(),
                    }),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// A valid BIO sequence: an `I-X` that does not continue an `X` becomes
/// `B-X` (the reading [`crate::eval::entity_spans`] gives it: the same
/// entities).
pub(crate) fn repair_bio(tags: &mut [String]) {
    let mut previous = String::from("O");
    for tag in tags.iter_mut() {
        if let Some(kind) = tag.strip_prefix("I-") {
            let continues = previous
                .split_once('-')
                .is_some_and(|(p, k)| (p == "B" || p == "I") && k == kind);
            if !continues {
                *tag = format!("B-{kind}");
            }
        }
        previous = tag.clone();
    }
}

/// `O`, or `B-`/`I-` and a type without white space around it.
fn is_bio(tag: &str) -> bool {
    let kind = tag.strip_prefix("B-").or_else(|| tag.strip_prefix("I-"));
    tag == "O" || kind.is_some_and(|k| !k.is_empty() && k.trim() == k)
}

/// Whether a string anywhere in the value (keys included) holds a NUL.
fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// Checks that a score lies in `0..=1` and is finite.
pub(crate) fn check_unit(field: &'static str, value: f64) -> Result<(), ValidationError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::OutOfUnitRange { field, value })
    }
}

/// How urgently an example should be learned (the original's `correction_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
#[repr(u8)]
pub enum Priority {
    /// 0: an ordinary example.
    #[default]
    Low = 0,
    /// 1: worth learning soon.
    Medium = 1,
    /// 2: a correction; triggers an immediate update.
    High = 2,
    /// 3: a critical correction; triggers an immediate update and is logged as critical.
    Critical = 3,
}

impl TryFrom<u8> for Priority {
    type Error = ValidationError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(Priority::Low),
            1 => Ok(Priority::Medium),
            2 => Ok(Priority::High),
            3 => Ok(Priority::Critical),
            other => Err(ValidationError::PriorityOutOfRange(i64::from(other))),
        }
    }
}

impl TryFrom<i64> for Priority {
    type Error = ValidationError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u8::try_from(value)
            .map_err(|_| ValidationError::PriorityOutOfRange(value))
            .and_then(Priority::try_from)
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p as u8
    }
}

/// An accepted training example, as buffered and trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingExample {
    /// Unique, increasing id; also the recency order.
    pub id: ExampleId,
    /// The agent whose model learns it (scout, analyst, fact_checker, ...).
    pub agent_name: String,
    /// The task within the agent (news_classification, sentiment, ...).
    pub task_type: String,
    /// The model's input.
    pub input_text: String,
    /// The correct output.
    pub expected_output: Target,
    /// How unsure the agent was (`0..=1`).
    pub uncertainty_score: f64,
    /// How much the example matters (`0..=1`).
    pub importance_score: f64,
    /// Where the input came from.
    pub source_url: String,
    /// When it was accepted.
    pub timestamp: SystemTime,
    /// A person's comment, if any.
    pub user_feedback: Option<String>,
    /// How urgently it should be learned.
    pub correction_priority: Priority,
}

impl TrainingExample {
    /// An example with the original's default scores (uncertainty and
    /// importance 0.5), priority 0, no source or feedback, stamped now. For
    /// code that trains models directly (experiments, benchmarks, data sets);
    /// the coordinator builds its own from what agents hand in.
    pub fn new(
        id: u64,
        agent_name: impl Into<String>,
        task_type: impl Into<String>,
        input_text: impl Into<String>,
        expected_output: Target,
    ) -> TrainingExample {
        NewExample::new(agent_name, task_type, input_text, expected_output).accepted(ExampleId(id), SystemTime::now())
    }
}

/// A labelled example an agent hands in (see [`crate::Coordinator::add_training_example`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewExample {
    /// The agent whose model learns it.
    pub agent_name: String,
    /// The task within the agent.
    pub task_type: String,
    /// The model's input.
    pub input_text: String,
    /// The correct output.
    pub expected_output: Target,
    /// How unsure the agent was (`0..=1`).
    pub uncertainty_score: f64,
    /// How much the example matters (`0..=1`, original default 0.5).
    pub importance_score: f64,
    /// Where the input came from.
    pub source_url: String,
    /// A person's comment, if any.
    pub user_feedback: Option<String>,
    /// How urgently it should be learned (original default 0).
    pub correction_priority: Priority,
}

impl NewExample {
    /// This example as accepted: with its id and the time it was accepted.
    pub fn accepted(self, id: ExampleId, timestamp: SystemTime) -> TrainingExample {
        TrainingExample {
            id,
            agent_name: self.agent_name,
            task_type: self.task_type,
            input_text: self.input_text,
            expected_output: self.expected_output,
            uncertainty_score: self.uncertainty_score,
            importance_score: self.importance_score,
            source_url: self.source_url,
            timestamp,
            user_feedback: self.user_feedback,
            correction_priority: self.correction_priority,
        }
    }

    /// An example with the original's defaults: uncertainty 0.5, importance 0.5,
    /// no source, no feedback, priority 0.
    pub fn new(
        agent_name: impl Into<String>,
        task_type: impl Into<String>,
        input_text: impl Into<String>,
        expected_output: Target,
    ) -> NewExample {
        NewExample {
            agent_name: agent_name.into(),
            task_type: task_type.into(),
            input_text: input_text.into(),
            expected_output,
            uncertainty_score: 0.5,
            importance_score: 0.5,
            source_url: String::new(),
            user_feedback: None,
            correction_priority: Priority::Low,
        }
    }

    /// Sets the uncertainty score.
    pub fn with_uncertainty(mut self, uncertainty: f64) -> NewExample {
        self.uncertainty_score = uncertainty;
        self
    }

    /// Sets the importance score.
    pub fn with_importance(mut self, importance: f64) -> NewExample {
        self.importance_score = importance;
        self
    }

    /// Sets the correction priority.
    pub fn with_priority(mut self, priority: Priority) -> NewExample {
        self.correction_priority = priority;
        self
    }

    /// Sets the source URL.
    pub fn with_source(mut self, source_url: impl Into<String>) -> NewExample {
        self.source_url = source_url.into();
        self
    }

    /// Sets the user feedback.
    pub fn with_feedback(mut self, feedback: impl Into<String>) -> NewExample {
        self.user_feedback = Some(feedback.into());
        self
    }
}

/// The record of one model update: how the model did on held-out data before
/// and after, and whether the update was kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPerformance {
    /// Unique id of the update (from the same sequence as example ids); the
    /// examples it trained record it.
    pub update_id: u64,
    /// The agent.
    pub agent_name: String,
    /// The task (one model per agent and task).
    pub task_type: String,
    /// The model's kind, such as `text_classifier`.
    pub model_name: String,
    /// The metric used, such as `accuracy`.
    pub metric: String,
    /// The live model's metric on the held-out examples before the update;
    /// `None` when no held-out example existed yet.
    pub accuracy_before: Option<f64>,
    /// The updated model's metric on the same examples.
    pub accuracy_after: Option<f64>,
    /// Held-out examples both were measured on.
    pub held_out_examples: usize,
    /// Examples the update trained on.
    pub examples_trained: usize,
    /// Mean training loss of the update's epoch.
    pub train_loss: f64,
    /// When the update finished, in milliseconds since the Unix epoch.
    pub update_timestamp_ms: u64,
    /// Whether the update was discarded and the live model kept.
    pub rollback_triggered: bool,
    /// Why it was rolled back, if it was.
    pub rollback_reason: Option<String>,
    /// The live model's version after the update (unchanged on a rollback).
    pub model_version: u64,
    /// Wall time of the whole update, in milliseconds.
    pub duration_ms: u64,
}

/// Now, to the millisecond: what both stores keep exactly.
pub(crate) fn now_millis() -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_millis(unix_millis(SystemTime::now()))
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
