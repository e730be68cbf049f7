//! `onthefly` keeps the models of a multi-agent news-analysis system learning
//! while they run.
//!
//! Agents hand in labelled examples ([`add_training_example`]), their own
//! predictions ([`add_prediction_feedback`]) and people's corrections
//! ([`add_user_correction`]). The library buffers them per agent by value,
//! trains the agent's libtorch models on background threads, measures every
//! update on held-out examples it never trained on, and keeps an update only
//! when the model did not get worse.
//!
//! ```no_run
//! use onthefly::{Config, Coordinator, NewExample, Target};
//!
//! let coordinator = Coordinator::new(Config::default())?;
//! coordinator.add_training_example(NewExample::new(
//!     "scout",
//!     "news_classification",
//!     "Parliament passed the budget after a long night of debate.",
//!     Target::Label("politics".into()),
//! ))?;
//! println!("{:?}", coordinator.get_training_status().buffer_sizes);
//! # Ok::<(), onthefly::Error>(())
//! ```
//!
//! The layers and one example's route are drawn in `docs/ARCHITECTURE.md`; C
//! and Python agents use the header `include/onthefly.h`.

// What a Rust user needs is re-exported at the root (and the configuration's
// parts from `config`); the modules marked `doc(hidden)` stay public for the
// tests, benches and examples, which exercise their parts directly.
mod active;
mod agent;
mod base;
#[doc(hidden)]
pub mod buffer;
mod catch_up;
#[doc(hidden)]
pub mod checkpoint;
#[doc(hidden)]
pub mod cluster;
pub mod config;
mod coordinator;
mod data_dir_lock;
pub mod error;
#[doc(hidden)]
pub mod eval;
#[doc(hidden)]
pub mod ewc;
pub mod feedback;
/// The C ABI (`include/onthefly.h`); Rust code uses the crate's root instead.
#[doc(hidden)]
pub mod ffi;
#[doc(hidden)]
pub mod fisher;
mod follow;
mod global;
mod grad;
mod ids;
#[doc(hidden)]
pub mod judge;
mod live;
mod metrics;
pub mod models;
#[doc(hidden)]
pub mod optim;
#[doc(hidden)]
pub mod replay;
#[doc(hidden)]
pub mod review;
mod runtime;
mod slots;
pub mod status;
pub mod store;
mod update;
pub use update::{train_one_epoch, train_one_epoch_back_propagated};

pub use base::{example, features};
pub use base::{kind_of_learner, learner_name, LabelForm};
pub use config::{
    AcceptanceConfig, ClusterConfig, Config, ConfigError, DatabaseConfig, DeviceChoice, EwcConfig, ModelKind,
    QueryStrategy, ReplayConfig, RetentionConfig, StoreConfig, TextModelConfig, TorchScriptSpec,
};
pub use coordinator::{CheckpointInfo, Coordinator, FeedbackOutcome, Placement, Prediction, Receipt};
pub use error::{Error, ModelError, Result, ValidationError};
pub use example::{ExampleId, ModelPerformance, NewExample, Priority, Target, TargetKind, TrainingExample};
pub use feedback::{PredictionFeedback, UserCorrection};
pub use global::{
    add_prediction_feedback, add_training_example, add_user_correction, force_update_agent, get_training_status,
    global, initialize_online_training, metrics_text, predict, shutdown,
};
pub use status::{AgentStatus, ClusterStatus, ClusterTaskStatus, InstanceStatus, ModelStatus, TrainingStatus};
