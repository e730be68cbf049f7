//! The library's typed errors: one enum per boundary, each message saying what
//! was wrong and what was expected.

pub use crate::base::{ModelError, ValidationError};
use crate::config::ConfigError;

/// Any error of the library's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input was refused.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// The configuration was refused.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// No example was ever added for this agent.
    #[error("unknown agent {0:?}: add an example for it first")]
    UnknownAgent(String),
    /// The agent has no trained model for this task yet.
    #[error("agent {agent:?} has no trained model for task {task:?} yet")]
    NoModel {
        /// The agent.
        agent: String,
        /// The task.
        task: String,
    },
    /// A model is already installed for this (agent, task).
    #[error("agent {agent:?} already has a model for task {task:?}")]
    ModelExists {
        /// The agent.
        agent: String,
        /// The task.
        task: String,
    },
    /// `initialize_online_training` was called again with another configuration.
    #[error("the training system is already initialised with a different configuration")]
    AlreadyInitialized,
    /// A global function was called before `initialize_online_training`.
    #[error("the training system is not initialised: call initialize_online_training first")]
    NotInitialized,
    /// The coordinator was shut down.
    #[error("the training system has been shut down")]
    ShutDown,
    /// A model failed.
    #[error("model error: {0}")]
    Model(#[from] ModelError),
    /// A checkpoint could not be written or read.
    #[error("checkpoint error: {0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The store (PostgreSQL or SQLite) failed.
    #[error("store error: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A review call was refused (unknown id, labelled twice, not handed out).
    #[error("review: {0}")]
    Review(#[from] crate::review::ReviewError),
    /// A file the caller named could not be written.
    #[error("cannot write {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// Another coordinator (in this process or another) runs on this
    /// `data_dir`.
    #[error("data_dir {path} is in use by another running coordinator: give each instance its own data_dir")]
    DataDirInUse {
        /// The folder.
        path: String,
    },
    /// A call in a process forked from the one that started this instance:
    /// its threads did not survive the fork, so nothing would be learned or
    /// stored here.
    #[error(
        "this process ({this}) is a fork of process {started_in}, which started the training system; its \
         threads do not survive a fork, so nothing given here would be learned or stored: start the training \
         system in each worker process instead (multiprocessing's \"spawn\" or \"forkserver\" start method, or \
         initialise after the workers are forked, not before)"
    )]
    Forked {
        /// The process that started the instance.
        started_in: u32,
        /// This process.
        this: u32,
    },
    /// A background thread could not be started.
    #[error("could not start thread {name}: {message}")]
    Thread {
        /// The thread's name.
        name: String,
        /// The operating system's message.
        message: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
