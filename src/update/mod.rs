//! The update pipeline and the background threads that run it.
//!
//! One update of an agent, for each task in its batch:
//! 1. take the most valuable buffered examples (they stay buffered meanwhile);
//! 2. the trainer's copy of the live model ([`crate::live`]; level with it between updates:
//!    the rows the last update changed are written into it by the worker
//!    once that update is over for the caller, or here if not yet);
//! 3. measure the copy on the task's held-out window (the live model's result);
//! 4. train the copy in place: adaptive sparse steps, or an Adam epoch;
//! 5. measure it again on the same held-out examples;
//! 6. the paired acceptance test ([`crate::judge`]) keeps the live model on
//!    evidence of harm (a rollback: the copy's changed rows are copied back),
//!    otherwise the copy is swapped in and the version goes up;
//! 7. record a [`crate::ModelPerformance`] and remove exactly the trained examples.
//!
//! Predictions keep being served by the live model during steps 3–5.
//!
//! One file per stage: [`snapshot`] (1–3), [`train`] (4), [`verdict`]
//! (5–6), [`commit`] (6–7, one [`commit::Commit`] trait for the local and
//! the cluster mode), tied together by [`task`]; [`batches`] retries failed
//! batches in halves and isolates harmful examples; [`worker`] runs it all
//! on the worker threads (and on a caller waiting for idle, which runs a
//! queued update itself rather than wait for a worker to wake up).

mod batches;
mod commit;
mod snapshot;
mod task;
mod train;
mod verdict;
mod worker;

pub(crate) use commit::compact_checkpoints;
pub(crate) use snapshot::{catch_up_trainer_copies, configured_model_refuses};
pub use train::{train_one_epoch, train_one_epoch_back_propagated};
pub(crate) use worker::{run_job, ticker_loop, worker_loop};
