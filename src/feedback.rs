//! Turning agents' predictions and people's corrections into examples, with the
//! original system's rules.
//!
//! For a prediction with confidence `c`, the uncertainty is `1 − c`. Its
//! importance follows the original: on the tasks where a wrong answer is
//! costly (`sentiment`, `bias`, `fact_verification`) it is 1.0 for a wrong
//! prediction and 0.3 for a right one; on other tasks it is the uncertainty.
//! One addition: a wrong prediction on any other task has importance 0.8, so a
//! known mistake is always learned (the original document lists "prediction
//! errors" and "classification task mismatches" as triggers, but its code let a
//! confident mistake on most tasks pass unlearned). A prediction becomes an
//! example when its uncertainty exceeds 0.6 or its importance exceeds 0.7 (both
//! configurable). A prediction whose correct answer is not known yet waits for
//! a label when it is uncertain enough, and is otherwise not needed.

use serde::{Deserialize, Serialize};

use crate::base::{Priority, Target};

/// Tasks where a wrong prediction is always important (the original's list).
pub const CRITICAL_TASKS: [&str; 3] = ["sentiment", "bias", "fact_verification"];

/// Largest difference between a predicted and a true score still counted as right.
pub const SCORE_TOLERANCE: f64 = 0.1;

/// An agent's prediction, handed in for learning (the original's
/// `add_prediction_feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionFeedback {
    /// The agent that predicted.
    pub agent_name: String,
    /// The task.
    pub task_type: String,
    /// The model's input.
    pub input_text: String,
    /// What the agent predicted.
    pub predicted_output: Target,
    /// The correct output, when known.
    pub actual_output: Option<Target>,
    /// The agent's confidence in its prediction, `0..=1`.
    pub confidence_score: f64,
    /// Where the input came from.
    pub source_url: String,
}

/// A person's correction of an agent's output (the original's `add_user_correction`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCorrection {
    /// The agent that was wrong.
    pub agent_name: String,
    /// The task.
    pub task_type: String,
    /// The model's input.
    pub input_text: String,
    /// What the agent answered.
    pub incorrect_output: Target,
    /// The right answer.
    pub correct_output: Target,
    /// 2 (high, the default) triggers an immediate update; 3 (critical) also logs it as critical.
    pub priority: Priority,
    /// A comment of the person, if any.
    pub user_feedback: Option<String>,
}

impl UserCorrection {
    /// A correction with the default priority 2.
    pub fn new(
        agent_name: impl Into<String>,
        task_type: impl Into<String>,
        input_text: impl Into<String>,
        incorrect_output: Target,
        correct_output: Target,
    ) -> UserCorrection {
        UserCorrection {
            agent_name: agent_name.into(),
            task_type: task_type.into(),
            input_text: input_text.into(),
            incorrect_output,
            correct_output,
            priority: Priority::High,
            user_feedback: None,
        }
    }
}

/// What the rules make of a prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Judgement {
    pub uncertainty: f64,
    pub importance: f64,
    pub wrong: Option<bool>,
    pub learn: bool,
}

/// Applies the rules above. `confidence` must already be validated.
pub(crate) fn judge(
    task_type: &str,
    predicted: &Target,
    actual: Option<&Target>,
    confidence: f64,
    uncertainty_threshold: f64,
    importance_threshold: f64,
) -> Judgement {
    let uncertainty = 1.0 - confidence;
    let wrong = actual.map(|a| !outputs_agree(predicted, a));
    let critical = CRITICAL_TASKS.contains(&task_type);
    let importance = match (wrong, critical) {
        (Some(true), true) => 1.0,
        (Some(false), true) => 0.3,
        (Some(true), false) => uncertainty.max(0.8),
        (Some(false), false) | (None, _) => uncertainty,
    };
    let learn = uncertainty > uncertainty_threshold || importance > importance_threshold;
    Judgement {
        uncertainty,
        importance,
        wrong,
        learn,
    }
}

/// Whether a prediction counts as right.
pub(crate) fn outputs_agree(predicted: &Target, actual: &Target) -> bool {
    match (predicted, actual) {
        (Target::Score(p), Target::Score(a)) => (p - a).abs() <= SCORE_TOLERANCE,
        // As the tagger reads them: IOB1 tags (a type's first word I-)
        // and the BIO the tagger answers in agree.
        (Target::Tags(p), Target::Tags(a)) => {
            let (mut p, mut a) = (p.clone(), a.clone());
            crate::base::repair_bio(&mut p);
            crate::base::repair_bio(&mut a);
            p == a
        }
        (p, a) => p == a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> Target {
        Target::Label(s.into())
    }

    #[test]
    fn iob1_tags_agree_with_the_bio_the_tagger_answers() {
        let tags = |t: &[&str]| Target::Tags(t.iter().map(|s| s.to_string()).collect());
        // The user's IOB1 and the tagger's BIO of the same entities: right,
        // not a mistake to learn again.
        let j = judge(
            "ner",
            &tags(&["B-PER", "I-PER", "O"]),
            Some(&tags(&["I-PER", "I-PER", "O"])),
            0.95,
            0.6,
            0.7,
        );
        assert_eq!((j.wrong, j.learn), (Some(false), false));
        let j = judge(
            "ner",
            &tags(&["B-PER", "O", "O"]),
            Some(&tags(&["I-LOC", "O", "O"])),
            0.95,
            0.6,
            0.7,
        );
        assert_eq!(j.wrong, Some(true));
    }

    #[test]
    fn critical_task_mistake_is_important() {
        let j = judge("sentiment", &label("pos"), Some(&label("neg")), 0.95, 0.6, 0.7);
        assert_eq!((j.importance, j.wrong, j.learn), (1.0, Some(true), true));
    }

    #[test]
    fn confident_right_prediction_is_not_needed() {
        let j = judge("sentiment", &label("pos"), Some(&label("pos")), 0.9, 0.6, 0.7);
        assert_eq!(j.importance, 0.3);
        assert!(!j.learn);
    }

    #[test]
    fn uncertain_right_prediction_is_learned() {
        let j = judge("news_classification", &label("bbc"), Some(&label("bbc")), 0.3, 0.6, 0.7);
        assert!((j.importance - 0.7).abs() < 1e-12);
        assert!(j.learn);
    }

    #[test]
    fn confident_mistake_on_other_task_is_learned() {
        let j = judge("news_classification", &label("bbc"), Some(&label("cnn")), 0.9, 0.6, 0.7);
        assert_eq!(j.importance, 0.8);
        assert!(j.learn);
    }

    #[test]
    fn scores_agree_within_tolerance() {
        assert!(outputs_agree(&Target::Score(0.5), &Target::Score(0.58)));
        assert!(!outputs_agree(&Target::Score(0.5), &Target::Score(0.65)));
    }
}
