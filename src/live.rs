//! The model serving one (agent, task): the one place where what serves
//! changes ([`LiveModel::swap_serving`]), its version, the EWC state of its
//! weights, and the trainer's copy updates start from ([`TrainerCopy`]).
//!
//! Lock order, the same for an update, a rollback, a cluster install and
//! start-up: the EWC state, then the trainer's copy, then the serving model
//! (held only for the swap and for predictions); the task's replay memory
//! after the first two.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::base::ModelError;
use crate::ewc::EwcState;
use crate::models::{AgentModel, ModelKind};
use crate::optim::Touched;

/// The model currently serving one (agent, task), and its version.
pub(crate) struct LiveModel {
    /// The kind of the serving model (it never changes for a task).
    pub kind: ModelKind,
    model: Mutex<Box<dyn AgentModel>>,
    /// The version serving: 0 for a freshly initialised model, a new number
    /// per accepted update, or an older one restored on request.
    version: AtomicU64,
    /// The highest version ever given to this task's model.
    latest_version: AtomicU64,
    /// Importance and anchors of the live weights. Only the update of this
    /// task touches it, so holding it through an update blocks nobody.
    pub ewc: Mutex<EwcState>,
    /// The trainer's own copy of the live weights (possibly an update
    /// behind, see [`TrainerCopy`]). Updates start from it, so they never
    /// copy the live model under its lock: predictions wait only for the
    /// swap. Only the update of this task, and the worker that brings the
    /// copy up to date after it, touch it.
    pub shadow: Mutex<Option<TrainerCopy>>,
    /// The serving version's answers for the examples updates were judged
    /// on, and that version (see [`crate::eval::measure_reusing`]). Only the
    /// update of this task touches it.
    pub judged: Mutex<(u64, crate::eval::Judged)>,
}

impl LiveModel {
    /// A freshly initialised model, version 0.
    pub fn new(model: Box<dyn AgentModel>) -> LiveModel {
        LiveModel {
            kind: model.kind(),
            model: Mutex::new(model),
            version: AtomicU64::new(0),
            latest_version: AtomicU64::new(0),
            ewc: Mutex::new(EwcState::new()),
            shadow: Mutex::new(None),
            judged: Mutex::new((0, crate::eval::Judged::new())),
        }
    }

    /// A model loaded from a checkpoint of `version`, with its EWC state;
    /// versions up to `latest` were given before (new ones continue above).
    pub fn restored(model: Box<dyn AgentModel>, version: u64, latest: u64, ewc: EwcState) -> LiveModel {
        let live = LiveModel::new(model);
        live.version.store(version, Ordering::Release);
        live.latest_version.store(latest.max(version), Ordering::Release);
        *live.ewc.lock() = ewc;
        live
    }

    /// Continues the version numbers of checkpoints already in `dir` (from an
    /// earlier run whose files were not loaded), so new files never reuse or
    /// fall below them.
    pub fn numbered_after(self, dir: &std::path::Path) -> LiveModel {
        let newest = crate::checkpoint::versions(dir)
            .ok()
            .and_then(|v| v.last().copied())
            .unwrap_or(0);
        self.latest_version.fetch_max(newest, Ordering::AcqRel);
        self
    }

    /// The version serving.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The highest version ever given to this task's model.
    pub fn latest_version(&self) -> u64 {
        self.latest_version.load(Ordering::Acquire)
    }

    /// The serving model, locked: for predictions and copies. What serves
    /// changes only through [`swap_serving`](Self::swap_serving).
    pub fn serving(&self) -> MutexGuard<'_, Box<dyn AgentModel>> {
        self.model.lock()
    }

    /// Makes `model` serve as `version` (an accepted update, a published
    /// version installed, a rollback on request); returns the model that
    /// served and its version. The caller holds the EWC state and the
    /// trainer's copy (the lock order above) and sets them to match. The
    /// version is written under the model's lock, so a prediction never sees
    /// new weights with the old version; the latest version never goes down.
    pub fn swap_serving(&self, model: Box<dyn AgentModel>, version: u64) -> (Box<dyn AgentModel>, u64) {
        let mut serving = self.model.lock();
        let old = std::mem::replace(&mut *serving, model);
        self.latest_version.fetch_max(version, Ordering::AcqRel);
        let was = self.version.swap(version, Ordering::AcqRel);
        drop(serving);
        (old, was)
    }
}

/// The trainer's copy of a live model, and what it still has to catch up
/// with. An update's last step, bringing the copy level with the live
/// model (the rows it changed, written into the other copy), is left to
/// the worker once the new version serves and the update is over for the
/// caller (`update::catch_up_trainer_copies`): a caller waiting for the update
/// goes on while the worker writes, and the next update catches up first
/// if the worker has not.
pub(crate) struct TrainerCopy {
    model: Box<dyn AgentModel>,
    behind: Option<Behind>,
}

/// What a trainer's copy lacks against the live model.
enum Behind {
    /// An accepted update, trained on the other copy (now serving): its
    /// rows are written from the update's record, or copied from the live
    /// model.
    Accepted(Touched),
    /// A rolled-back update this copy trained: its rows (all of it, without
    /// a record, or after a change of shapes) go back to the live model's.
    RolledBack {
        touched: Option<Touched>,
        shapes: BTreeMap<String, Vec<i64>>,
    },
}

impl TrainerCopy {
    /// Whether it lacks an update of the live model.
    pub(crate) fn is_behind(&self) -> bool {
        self.behind.is_some()
    }

    /// A copy equal to the live model.
    pub(crate) fn ready(model: Box<dyn AgentModel>) -> TrainerCopy {
        TrainerCopy { model, behind: None }
    }

    /// The old live model after an accepted update, still without its rows.
    pub(crate) fn after_accepted(model: Box<dyn AgentModel>, touched: Touched) -> TrainerCopy {
        TrainerCopy {
            model,
            behind: Some(Behind::Accepted(touched)),
        }
    }

    /// The copy that trained a rolled-back update (`shapes`: its variables'
    /// shapes before).
    pub(crate) fn after_rollback(
        model: Box<dyn AgentModel>,
        touched: Option<Touched>,
        shapes: BTreeMap<String, Vec<i64>>,
    ) -> TrainerCopy {
        TrainerCopy {
            model,
            behind: Some(Behind::RolledBack { touched, shapes }),
        }
    }

    /// The copy level with the live model (called under the lock of
    /// `live.shadow`, so the live model is the version the copy is behind):
    /// `None` when it could not be brought level, and the next update
    /// copies the live model whole.
    pub(crate) fn caught_up(self, live: &LiveModel) -> Option<Box<dyn AgentModel>> {
        let TrainerCopy { model, behind } = self;
        let level = match behind {
            None => return Some(model),
            Some(Behind::Accepted(touched)) => install(live, model, &touched),
            Some(Behind::RolledBack { touched, shapes }) => resync(live, model, touched.as_ref(), &shapes)
                .map_err(|e| tracing::warn!(error = %e, "trainer's copy not brought back after a rollback"))
                .ok()
                .flatten(),
        };
        if level.is_none() {
            // Not an error of the update: it costs the next one a whole copy.
            tracing::warn!("trainer's copy dropped; the next update copies the live model");
        }
        level
    }
}

/// The old live model brought level with the new one after an accepted
/// update: the rows it changed written from the values the pass recorded,
/// else read from the serving model under its lock.
pub(crate) fn install(live: &LiveModel, old: Box<dyn AgentModel>, touched: &Touched) -> Option<Box<dyn AgentModel>> {
    match touched.write_recorded(old.var_store()) {
        Ok(true) => Some(old),
        Ok(false) => {
            let serving = live.serving();
            touched
                .copy_rows(serving.var_store(), old.var_store())
                .ok()
                .filter(|&copied| copied)
                .map(|_| old)
        }
        Err(_) => None,
    }
}

/// The shape of every variable, by name.
pub(crate) fn shapes(vs: &tch::nn::VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables().into_iter().map(|(name, t)| (name, t.size())).collect()
}

/// The trainer's copy brought back to the (unchanged) live model after a
/// rolled-back or unpublished update: the touched rows copied back, or a
/// fresh whole copy where the update changed shapes or touched everything.
pub(crate) fn resync(
    live: &LiveModel,
    shadow: Box<dyn AgentModel>,
    touched: Option<&Touched>,
    shapes_before: &BTreeMap<String, Vec<i64>>,
) -> Result<Option<Box<dyn AgentModel>>, ModelError> {
    let serving = live.serving();
    if let Some(touched) = touched {
        if shapes(shadow.var_store()) == *shapes_before && touched.copy_rows(serving.var_store(), shadow.var_store())? {
            return Ok(Some(shadow));
        }
    }
    Ok(Some(serving.try_clone()?))
}
