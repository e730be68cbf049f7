//! The process-wide training system, as the original exposed it: free
//! functions over one [`Coordinator`] kept in a `OnceLock`.
//!
//! `initialize_online_training` is idempotent: calling it again with the same
//! configuration returns the running instance, with another configuration it
//! is an error. After [`shutdown`] the instance refuses new input; a process
//! cannot start a second global instance (own a [`Coordinator`] for that).
//! A process that exits without [`shutdown`] shuts the instance down on its
//! way out (an `atexit` handler, see `ffi::exit`).

use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::base::NewExample;
use crate::config::Config;
use crate::coordinator::{Coordinator, FeedbackOutcome, Prediction, Receipt};
use crate::error::{Error, Result};
use crate::feedback::{PredictionFeedback, UserCorrection};
use crate::status::TrainingStatus;

static GLOBAL: OnceLock<Coordinator> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Starts the global training system with `config`, or returns it when it is
/// already running with the same configuration. After [`shutdown`] it is an
/// error ([`Error::ShutDown`]): the global instance cannot be restarted.
pub fn initialize_online_training(config: Config) -> Result<&'static Coordinator> {
    let _guard = INIT.lock();
    if let Some(existing) = GLOBAL.get() {
        // An instance inherited through a fork serves nobody here: say so
        // now, not at the first call after a success.
        existing.check_process()?;
        // As the running instance resolved its folders when it opened.
        let config = config.with_absolute_paths().map_err(|e| Error::Io {
            path: "the working directory".into(),
            message: e.to_string(),
        })?;
        return if *existing.config() != config {
            Err(Error::AlreadyInitialized)
        } else if existing.is_shut_down() {
            Err(Error::ShutDown)
        } else {
            Ok(existing)
        };
    }
    let coordinator = Coordinator::new(config)?;
    let running = GLOBAL.get_or_init(|| coordinator);
    // Started after the coordinator, so after libtorch's statics: the exit
    // handler runs before they are destroyed. An import back up into the C
    // ABI's module: registering it calls the C library's `atexit`, and calls
    // into C live only in `ffi/`.
    crate::ffi::exit::shut_down_global_at_exit(shut_down_global);
    Ok(running)
}

/// Stops the global instance, if one was started (the exit handler's part).
fn shut_down_global() {
    if let Some(coordinator) = GLOBAL.get() {
        coordinator.shutdown();
    }
}

/// The global instance, if initialised; [`Error::Forked`] in a process
/// forked from the one that initialised it.
pub fn global() -> Result<&'static Coordinator> {
    let coordinator = GLOBAL.get().ok_or(Error::NotInitialized)?;
    coordinator.check_process()?;
    Ok(coordinator)
}

/// See [`Coordinator::add_training_example`].
pub fn add_training_example(example: NewExample) -> Result<Receipt> {
    global()?.add_training_example(example)
}

/// See [`Coordinator::add_prediction_feedback`].
pub fn add_prediction_feedback(feedback: PredictionFeedback) -> Result<FeedbackOutcome> {
    global()?.add_prediction_feedback(feedback)
}

/// See [`Coordinator::add_user_correction`].
pub fn add_user_correction(correction: UserCorrection) -> Result<Receipt> {
    global()?.add_user_correction(correction)
}

/// See [`Coordinator::get_training_status`].
pub fn get_training_status() -> Result<TrainingStatus> {
    Ok(global()?.get_training_status())
}

/// See [`Coordinator::force_update_agent`].
pub fn force_update_agent(agent_name: &str) -> Result<()> {
    global()?.force_update_agent(agent_name)
}

/// See [`Coordinator::predict`].
pub fn predict(agent_name: &str, task_type: &str, input_text: &str) -> Result<Prediction> {
    global()?.predict(agent_name, task_type, input_text)
}

/// See [`Coordinator::metrics_text`].
pub fn metrics_text() -> Result<String> {
    Ok(global()?.metrics_text())
}

/// Stops the global instance's threads (see [`Coordinator::shutdown`]).
pub fn shutdown() -> Result<()> {
    // Not `global()`: in a forked process shutting down is allowed (and
    // does nothing, see [`Coordinator::shutdown`]), so exit handlers pass.
    GLOBAL.get().ok_or(Error::NotInitialized)?.shutdown_checked()
}
