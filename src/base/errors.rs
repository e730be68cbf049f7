//! The leaf errors: an input refused ([`ValidationError`]) and a failure
//! inside a model ([`ModelError`]). Every domain module returns them;
//! [`crate::error::Error`] gathers them with the errors of the layers above.

use super::example::TargetKind;

/// An input that was refused. Nothing of a refused input is stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// A text holds a NUL character, which neither PostgreSQL text nor JSON
    /// columns can store.
    #[error("{field} must not contain a NUL character (\\0)")]
    NulCharacter {
        /// Which field.
        field: &'static str,
    },
    /// A required name is empty or blank.
    #[error("{field} must not be empty")]
    EmptyName {
        /// Which name.
        field: &'static str,
    },
    /// A name is longer than `max_name_bytes`.
    #[error("{field} must be at most {max} bytes, got {len}")]
    NameTooLong {
        /// Which name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A name holds characters other than ASCII letters, digits, `_`, `-` and
    /// `.`, or starts with `.`.
    #[error(
        "{field} may hold only ASCII letters, digits, '_', '-' and '.', and must not start with '.', got {value:?}"
    )]
    InvalidName {
        /// Which name.
        field: &'static str,
        /// The name given.
        value: String,
    },
    /// The input text is empty or blank.
    #[error("input_text must not be empty")]
    EmptyInput,
    /// The input text is longer than `max_input_bytes`.
    #[error("input_text must be at most {max} bytes, got {len}")]
    InputTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A target (label, tags or JSON) is longer than `max_input_bytes`.
    #[error("{field} must be at most {max} bytes, got {len}")]
    TargetTooLong {
        /// Which target.
        field: &'static str,
        /// Its length in bytes (a label's, the tags' together, the JSON text's).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A score is NaN, infinite or outside `0..=1`.
    #[error("{field} must be a finite number in 0..=1, got {value}")]
    OutOfUnitRange {
        /// Which score.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A correction priority outside `0..=3`.
    #[error("correction_priority must be in 0..=3, got {0}")]
    PriorityOutOfRange(i64),
    /// A label (or a tag) is empty.
    #[error("a label must not be empty")]
    EmptyLabel,
    /// A list that a new task would keep as free JSON, where tags were most
    /// likely meant (empty, or plain values not all strings).
    #[error(
        "{field} {got} is neither tags (one string per word: O, B-PER, I-PER, ...) nor free JSON a new task \
         should keep; declare the task kept first (register_task) to keep such lists"
    )]
    AmbiguousList {
        /// The argument, as the caller wrote it.
        field: &'static str,
        /// The list, shortened.
        got: String,
    },
    /// A label (or a tag) begins or ends with white space: `"sports "` and
    /// `"sports"` would be two classes.
    #[error("a label must not begin or end with white space, got {0:?}")]
    UntrimmedLabel(String),
    /// A tag not in the BIO form the tagger is judged by (entity F1 sees no
    /// entity in `PER` or `b-per`, so no update of such tags could be
    /// judged).
    #[error("tags must be O, B-<type> or I-<type> (BIO, as CoNLL writes them); tag {position} is {tag:?}")]
    NotBioTag {
        /// Its position among the tags, from 0.
        position: usize,
        /// The tag.
        tag: String,
    },
    /// Token tags do not match the input's whitespace-separated tokens one to one.
    #[error("expected one tag per whitespace-separated token: the input has {tokens} tokens, got {tags} tags")]
    TagCountMismatch {
        /// Tokens in the input.
        tokens: usize,
        /// Tags given.
        tags: usize,
    },
    /// A target its task cannot learn (a boolean for a regressor, a
    /// fraction for a classifier, a string for labels given as booleans).
    #[error("task {task:?} of agent {agent:?} is a {learner}: {field} must be {expected}; got {got}")]
    UnlearnableTarget {
        /// The agent.
        agent: String,
        /// The task.
        task: String,
        /// The argument, as the caller named it.
        field: &'static str,
        /// What the task is (`classifier`, `regressor`, `tagger`).
        learner: &'static str,
        /// What to pass instead.
        expected: &'static str,
        /// The value given, as JSON (cut to 60 characters).
        got: Box<str>,
    },
    /// A target the model the configuration names for its task
    /// (`model_kinds`, `torchscript`) cannot learn: accepted, it failed every
    /// update and held the agent's other tasks back.
    #[error("task {task:?} of agent {agent:?} is learned by the configured {why}")]
    NotForConfiguredModel {
        /// The agent.
        agent: String,
        /// The task.
        task: String,
        /// The configured model, what it learns, and what was given.
        why: Box<str>,
    },
    /// The task already learns another kind of target.
    #[error(
        "task {task:?} of agent {agent:?} is a {}: it learns {expected} targets, so a {got} cannot be one \
         (its first target or register_task fixed this)",
        super::target_json::learner_name(*expected)
    )]
    TargetKindMismatch {
        /// The agent.
        agent: String,
        /// The task.
        task: String,
        /// The kind fixed by the task's first example.
        expected: TargetKind,
        /// The kind given.
        got: TargetKind,
    },
}

/// A failure inside a model: a tensor operation, a shape, a value.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// libtorch reported an error (its message without the C++ backtrace
    /// libtorch appends; `Debug` keeps it whole).
    #[error("libtorch: {}", brief_torch_error(.0))]
    Torch(#[from] tch::TchError),
    /// The model cannot answer yet (for example a classifier that knows no label).
    #[error("the model is not trained yet: {0}")]
    NotTrained(String),
    /// The model panicked.
    #[error("the model panicked: {0}")]
    Panicked(String),
    /// The model returned another number of outputs than it was given inputs.
    #[error("the model returned {outputs} outputs for {inputs} inputs")]
    OutputCount {
        /// Inputs given.
        inputs: usize,
        /// Outputs returned.
        outputs: usize,
    },
    /// The model does not offer this operation (a custom model restored
    /// from a file, targets sampled by a model that has no distribution,
    /// a rollback with several instances).
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A checkpoint that does not fit the model reading it: its metadata, a
    /// variable it lacks, a shape its metadata contradicts.
    #[error("the checkpoint does not fit the model: {0}")]
    IncompatibleCheckpoint(String),
    /// A model's files (a MiniLM encoder, a TorchScript module) are not
    /// configured, missing or unreadable.
    #[error("model files: {0}")]
    ModelFiles(String),
    /// The configuration asks for a model the task cannot have (a model
    /// kind or module that cannot learn the task's targets, a table too
    /// large).
    #[error("model configuration: {0}")]
    Misconfigured(String),
    /// An example of a task that has no state (never registered).
    #[error("task {0:?} is not registered")]
    UnknownTask(String),
    /// A label outside a model's fixed set (a TorchScript classifier).
    #[error("label {label:?} is not one of the model's {known:?}")]
    UnknownLabel {
        /// The label given.
        label: String,
        /// The labels the model knows.
        known: Vec<String>,
    },
    /// A trainable variable without the state an adaptive step keeps
    /// beside it.
    #[error("variable {variable} has no optimiser state {state}")]
    MissingOptimizerState {
        /// The variable.
        variable: String,
        /// The name its state should have.
        state: String,
    },
    /// No built-in model learns this kind of target.
    #[error("no built-in model learns {0} targets")]
    Unsupported(TargetKind),
    /// A target of the wrong kind reached the model.
    #[error("the model learns {expected} targets, got a {got} target")]
    WrongTarget {
        /// What the model learns.
        expected: TargetKind,
        /// What it was given.
        got: TargetKind,
    },
    /// A loss or a weight became NaN or infinite.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// An update could not be published to the other instances sharing the
    /// database (see [`crate::cluster`]); it was not installed.
    #[error("the update could not be published to the other instances: {0}")]
    Publish(String),
    /// An example handed to a model directly (not through a coordinator,
    /// which checks on intake) breaks its target's own rules.
    #[error("invalid example: {0}")]
    Invalid(#[from] ValidationError),
}

/// Longest libtorch message kept in an error's text.
const TORCH_MESSAGE_CHARS: usize = 300;

/// A libtorch error in a line or two: libtorch appends the C++ frames it
/// was raised from ("Exception raised from … frame #0: …", 5 KB), which a
/// caller reading `last_error` cannot use.
pub(crate) fn brief_torch_error(error: &tch::TchError) -> String {
    let text = error.to_string();
    let end = ["Exception raised from", "\nframe #"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min()
        .unwrap_or(text.len());
    let message = text[..end].trim_end();
    match message.char_indices().nth(TORCH_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_string(),
    }
}

/// Whether a target of kind `got` fits task `task` of `agent`, which learns
/// `expected` targets; the one place a mismatch is built.
pub(crate) fn kind_matches(
    agent: &str,
    task: &str,
    expected: TargetKind,
    got: TargetKind,
) -> Result<(), ValidationError> {
    if expected == got {
        return Ok(());
    }
    Err(ValidationError::TargetKindMismatch {
        agent: agent.to_string(),
        task: task.to_string(),
        expected,
        got,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_mismatch_names_the_task_and_both_kinds() {
        assert!(kind_matches("scout", "news", TargetKind::Label, TargetKind::Label).is_ok());
        let error = kind_matches("scout", "news", TargetKind::Label, TargetKind::Score).unwrap_err();
        assert_eq!(
            error,
            ValidationError::TargetKindMismatch {
                agent: "scout".into(),
                task: "news".into(),
                expected: TargetKind::Label,
                got: TargetKind::Score,
            }
        );
    }

    #[test]
    fn model_errors_say_what_failed_in_their_own_words() {
        let unknown = ModelError::UnknownLabel {
            label: "maybe".into(),
            known: vec!["yes".into(), "no".into()],
        };
        assert_eq!(
            unknown.to_string(),
            r#"label "maybe" is not one of the model's ["yes", "no"]"#
        );
        let checkpoint = ModelError::IncompatibleCheckpoint("the checkpoint has no variable w".into());
        assert!(checkpoint
            .to_string()
            .starts_with("the checkpoint does not fit the model"));
    }
}
