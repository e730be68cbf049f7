//! How a target written as JSON (by a C or Python agent) becomes a
//! [`Target`], read by what its task learns, and how a classifier's answer
//! goes back in the form its labels were given.
//!
//! A JSON boolean or integer is a class label (`True`, `3`), a string a
//! label, a fractional number a score, an array of strings token tags: what
//! a Python agent means by them. A task that learns scores (declared, or
//! fixed by its first example) reads integers as scores too (`0`, `1`). A
//! value its task cannot learn is refused with what to pass instead, never
//! accepted to sit untrained.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::ValidationError;
use super::example::{Target, TargetKind};

/// How a classifier task's labels are written, fixed by its first label: its
/// answers come back in the same form (a Python `True`, not `"true"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelForm {
    /// JSON strings.
    Text,
    /// JSON booleans, learned as the labels `"true"` and `"false"`.
    Bool,
    /// JSON integers (class ids), learned as their decimal text.
    Integer,
}

impl LabelForm {
    /// The form of a JSON label, if `value` is one.
    pub fn of(value: &Value) -> Option<LabelForm> {
        match value {
            Value::String(_) => Some(LabelForm::Text),
            Value::Bool(_) => Some(LabelForm::Bool),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(LabelForm::Integer),
            _ => None,
        }
    }

    /// The stored name (`text`, `bool`, `integer`).
    pub fn name(self) -> &'static str {
        match self {
            LabelForm::Text => "text",
            LabelForm::Bool => "bool",
            LabelForm::Integer => "integer",
        }
    }

    /// The form of a stored name.
    pub fn from_name(name: &str) -> Option<LabelForm> {
        [LabelForm::Text, LabelForm::Bool, LabelForm::Integer]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// A label of this form as JSON: `"true"` is `true` for booleans, `"3"`
    /// is `3` for integers; a label that is not of the form stays a string.
    pub fn to_json(self, label: &str) -> Value {
        match self {
            LabelForm::Bool if label == "true" || label == "false" => Value::Bool(label == "true"),
            // Class ids from 2⁶³ to 2⁶⁴ − 1 are JSON integers too.
            LabelForm::Integer => match (label.parse::<i64>(), label.parse::<u64>()) {
                (Ok(id), _) => Value::from(id),
                (_, Ok(id)) => Value::from(id),
                _ => Value::String(label.to_string()),
            },
            _ => Value::String(label.to_string()),
        }
    }

    /// What a caller passes for a label of this form.
    fn described(self) -> &'static str {
        match self {
            LabelForm::Text => "a label written as a string, as its first labels were",
            LabelForm::Bool => "true or false, as its first labels were",
            LabelForm::Integer => "an integer class id, as its first labels were",
        }
    }
}

/// What a task learns, as a caller names it when declaring the task.
pub fn learner_name(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Label => "classifier",
        TargetKind::Score => "regressor",
        TargetKind::Tags => "tagger",
        TargetKind::Json => "kept",
    }
}

/// The target kind of a learner's name (`classifier`, `regressor`, `tagger`,
/// `kept`).
pub fn kind_of_learner(name: &str) -> Option<TargetKind> {
    [TargetKind::Label, TargetKind::Score, TargetKind::Tags, TargetKind::Json]
        .into_iter()
        .find(|k| learner_name(*k) == name)
}

/// What a task expects of a target, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskShape {
    /// The kind of target it learns.
    pub kind: TargetKind,
    /// How its labels are written, once a label was given.
    pub form: Option<LabelForm>,
}

/// Reads `value` (the argument `field`) for task `task` of `agent`, which
/// expects `shape` (`None` for a task not seen yet: its first target fixes
/// it). Returns the target and, for a label, its form.
pub fn read_target(
    agent: &str,
    task: &str,
    field: &'static str,
    value: Value,
    shape: Option<TaskShape>,
) -> Result<(Target, Option<LabelForm>), ValidationError> {
    let Some(shape) = shape else {
        if looks_like_tags_gone_wrong(&value) {
            return Err(ValidationError::AmbiguousList {
                field,
                got: shortened(&value),
            });
        }
        let form = LabelForm::of(&value);
        return Ok((Target::from_json(value), form));
    };
    let refuse = |expected: &'static str, value: &Value| ValidationError::UnlearnableTarget {
        agent: agent.to_string(),
        task: task.to_string(),
        field,
        learner: learner_name(shape.kind),
        expected,
        got: shortened(value).into(),
    };
    match shape.kind {
        TargetKind::Label => {
            let form = LabelForm::of(&value);
            match (form, shape.form) {
                (Some(form), Some(fixed)) if form != fixed => Err(refuse(fixed.described(), &value)),
                (Some(form), _) => Ok((Target::from_json(value), Some(form))),
                (None, Some(fixed)) => Err(refuse(fixed.described(), &value)),
                (None, None) => Err(refuse(
                    "a label: a string, true or false, or an integer class id",
                    &value,
                )),
            }
        }
        TargetKind::Score => match value.as_f64() {
            Some(x) if value.is_number() => Ok((Target::Score(x), None)),
            _ => Err(refuse("a number in 0..=1", &value)),
        },
        TargetKind::Tags => match Target::from_json(value.clone()) {
            tags @ Target::Tags(_) => Ok((tags, None)),
            _ => Err(refuse(
                "a list of tag strings, one per word of the input (\"B-PER\", \"O\", ...)",
                &value,
            )),
        },
        TargetKind::Json => Ok((Target::Json(value), None)),
    }
}

/// A value as a message shows it: its JSON, cut to 60 characters.
/// A list of plain values but not all strings (`[0, 3, 4]`, tag ids as a
/// dataset stores them; `["B-PER", null]`), or an empty one: it would make
/// a new task a kept one for good, where tags were meant. Lists of objects
/// or lists stay free JSON.
fn looks_like_tags_gone_wrong(value: &Value) -> bool {
    let Value::Array(items) = value else {
        return false;
    };
    let plain = |v: &Value| !(v.is_object() || v.is_array());
    items.is_empty() || (items.iter().all(plain) && !items.iter().all(Value::is_string))
}

fn shortened(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value, shape: Option<TaskShape>) -> Result<Target, String> {
        read_target("fact_checker", "verification", "expected_output", value, shape)
            .map(|(t, _)| t)
            .map_err(|e| e.to_string())
    }

    const LABELS: Option<TaskShape> = Some(TaskShape {
        kind: TargetKind::Label,
        form: Some(LabelForm::Bool),
    });
    const SCORES: Option<TaskShape> = Some(TaskShape {
        kind: TargetKind::Score,
        form: None,
    });

    #[test]
    fn booleans_and_integers_are_labels_of_a_new_task() {
        assert_eq!(read(json!(true), None), Ok(Target::Label("true".into())));
        assert_eq!(read(json!(3), None), Ok(Target::Label("3".into())));
        assert_eq!(read(json!(0.5), None), Ok(Target::Score(0.5)));
        assert_eq!(read(json!("bbc"), None), Ok(Target::Label("bbc".into())));
    }

    #[test]
    fn a_score_task_reads_integers_as_scores_and_refuses_the_rest() {
        assert_eq!(read(json!(1), SCORES), Ok(Target::Score(1.0)));
        for wrong in [json!(true), json!("0.5"), json!(["O"])] {
            let message = read(wrong.clone(), SCORES).unwrap_err();
            assert!(
                message.contains("is a regressor") && message.contains("a number in 0..=1"),
                "{message}"
            );
            assert!(message.contains(&wrong.to_string()), "{message}");
        }
    }

    #[test]
    fn a_classifier_keeps_the_form_of_its_first_labels() {
        assert_eq!(read(json!(false), LABELS), Ok(Target::Label("false".into())));
        for wrong in [json!("false"), json!(0.5), json!(1)] {
            let message = read(wrong, LABELS).unwrap_err();
            assert!(
                message.contains("is a classifier") && message.contains("true or false"),
                "{message}"
            );
        }
    }

    #[test]
    fn answers_go_back_in_their_form() {
        assert_eq!(LabelForm::Bool.to_json("true"), json!(true));
        assert_eq!(LabelForm::Integer.to_json("3"), json!(3));
        assert_eq!(LabelForm::Text.to_json("3"), json!("3"));
        assert_eq!(LabelForm::Integer.to_json("bbc"), json!("bbc"));
    }

    #[test]
    fn learner_names_round_trip() {
        for kind in [TargetKind::Label, TargetKind::Score, TargetKind::Tags, TargetKind::Json] {
            assert_eq!(kind_of_learner(learner_name(kind)), Some(kind));
        }
        assert_eq!(kind_of_learner("ranker"), None);
    }
}

#[cfg(test)]
mod ambiguous_lists {
    use super::*;

    #[test]
    fn a_new_task_refuses_lists_that_read_as_tags_gone_wrong() {
        for bad in [
            serde_json::json!([0, 3, 4]),
            serde_json::json!([]),
            serde_json::json!(["B-PER", null]),
        ] {
            let e = read_target("analyst", "ner", "expected_output", bad.clone(), None).unwrap_err();
            assert!(
                matches!(
                    e,
                    ValidationError::AmbiguousList {
                        field: "expected_output",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
        // Tags, and lists of objects (free JSON), are taken.
        let tags = read_target(
            "analyst",
            "ner",
            "expected_output",
            serde_json::json!(["B-PER", "O"]),
            None,
        );
        assert!(matches!(tags, Ok((Target::Tags(_), None))));
        let entities = serde_json::json!([{ "text": "Obama", "type": "PER" }]);
        let kept = read_target("analyst", "entities", "expected_output", entities, None);
        assert!(matches!(kept, Ok((Target::Json(_), None))));
        // A task declared kept keeps any list.
        let shape = TaskShape {
            kind: TargetKind::Json,
            form: None,
        };
        let ids = read_target(
            "analyst",
            "ner",
            "expected_output",
            serde_json::json!([0, 3, 4]),
            Some(shape),
        );
        assert!(matches!(ids, Ok((Target::Json(_), _))), "{ids:?}");
    }
}
