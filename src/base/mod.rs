//! The vocabulary every layer shares: targets and examples, the leaf errors,
//! the text features. It imports nothing else of the crate, so any module
//! may import it.

mod errors;
pub mod example;
pub mod features;
pub mod target_json;

pub(crate) use errors::{brief_torch_error, kind_matches};
pub use errors::{ModelError, ValidationError};
pub(crate) use example::{check_unit, now_millis, repair_bio, unix_millis};
pub use example::{ExampleId, ModelPerformance, NewExample, Priority, Target, TargetKind, TrainingExample};
pub use features::{ngram_ids, stable_hash, tokenize, SplitMix64};
pub use target_json::{kind_of_learner, learner_name, read_target, LabelForm, TaskShape};
