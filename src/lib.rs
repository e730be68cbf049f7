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
//! The update pipeline lives in [`update`](crate::update)'s module docs; C
//! and Python agents use the header `include/onthefly.h`.

mod active;
mod agent;
mod base;
pub mod buffer;
mod catch_up;
pub mod checkpoint;
pub mod cluster;
pub mod config;
mod coordinator;
mod data_dir_lock;
pub mod error;
pub mod eval;
pub mod ewc;
pub mod feedback;
pub mod ffi;
pub mod fisher;
mod follow;
mod global;
mod grad;
mod ids;
pub mod judge;
mod live;
mod metrics;
pub mod models;
pub mod optim;
pub mod replay;
pub mod review;
mod runtime;
pub mod status;
pub mod store;
mod update;
pub use update::train_one_epoch;

pub use base::{example, features};
pub use base::{kind_of_learner, learner_name, LabelForm};
pub use config::{ClusterConfig, Config, ConfigError, DatabaseConfig, DeviceChoice, StoreConfig, TextModelConfig};
pub use coordinator::{CheckpointInfo, Coordinator, FeedbackOutcome, Placement, Prediction, Receipt};
pub use error::{Error, ModelError, Result, ValidationError};
pub use example::{ExampleId, ModelPerformance, NewExample, Priority, Target, TargetKind, TrainingExample};
pub use feedback::{PredictionFeedback, UserCorrection};
pub use global::{
    add_prediction_feedback, add_training_example, add_user_correction, force_update_agent, get_training_status,
    global, initialize_online_training, metrics_text, predict, shutdown,
};
pub use status::{AgentStatus, ClusterStatus, ClusterTaskStatus, InstanceStatus, ModelStatus, TrainingStatus};
