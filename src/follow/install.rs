//! Taking in what other instances did: a published version becomes this
//! instance's live model, and buffered copies of examples another instance
//! already trained leave the local buffer.

use std::fs::{self, File};
use std::io::Write;
use std::sync::Arc;

use postgres::{Client, GenericClient, IsolationLevel};

use crate::agent::{task_of_kind, AgentStats};
use crate::base::ExampleId;
use crate::checkpoint;
use crate::error::Error;
use crate::live::LiveModel;
use crate::models::restore_model;
use crate::replay::ReplayMemory;
use crate::runtime::Shared;
use crate::store::postgres::{classify, replay_members};
use crate::store::{id_from_stored, id_to_stored, ExampleState, ReplayMembers, StoreError};

/// Loads published `version` of (agent, task) and serves it, unless this
/// instance already serves it or a newer one. Waits for a running update of
/// the task (the same locks as an update). Returns whether it installed.
pub(crate) fn install_published(
    shared: &Shared,
    client: &mut Client,
    agent_name: &str,
    task: &str,
    version: u64,
) -> Result<bool, Error> {
    let agent = shared.agent_or_create(agent_name);
    if let Some(live) = agent.live_model(task) {
        if live.version() >= version {
            return Ok(false);
        }
    }
    let dir = shared.config.model_dir(agent_name).join(task);
    let serving = agent.live_model(task).map(|live| live.version());
    // One snapshot: the files of a chain and the replay memory are those
    // committed with the version, whatever another instance publishes or
    // prunes meanwhile.
    let mut snapshot = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(classify)?;
    fetch_published(&mut snapshot, &dir, agent_name, task, version, serving)?;
    // The memory the publishing instance trained with, committed with the
    // version (or a newer one's, which the listener installs next).
    let replay = replay_members(&mut snapshot, Some((agent_name, task)))?.pop();
    snapshot.commit().map_err(classify)?;
    let saved = checkpoint::load(&dir, version)?;
    let device = shared.device;
    let model = restore_model(saved.meta.model_kind, device, &saved.params, &saved.meta.model)?;
    let ewc = saved.ewc.to_device(device)?;

    let live = {
        let mut tasks = agent.tasks.lock();
        let state = task_of_kind(
            &mut tasks,
            agent_name,
            task,
            saved.meta.target_kind,
            shared.config.performance_window,
        )?;
        let memory = Arc::clone(&state.replay);
        match &state.model {
            Some(live) => (Arc::clone(live), memory),
            None => {
                let live = Arc::new(LiveModel::restored(model.try_clone()?, version, version, ewc));
                state.model = Some(live);
                drop(tasks);
                restore_replay(shared, &memory, replay);
                checkpoint::set_current(&dir, version)?;
                return Ok(true);
            }
        }
    };
    // The same lock order as an update: EWC state, then the trainer's copy.
    let (live, memory) = live;
    let mut live_ewc = live.ewc.lock();
    let mut shadow = live.shadow.lock();
    if live.version() >= version {
        return Ok(false); // Installed meanwhile (by the listener or the trainer).
    }
    restore_replay(shared, &memory, replay);
    *shadow = Some(crate::live::TrainerCopy::ready(model.try_clone()?));
    *live_ewc = ewc;
    let (old, _) = live.swap_serving(model, version);
    drop(old);
    drop((shadow, live_ewc));
    checkpoint::set_current(&dir, version)?;
    if let Err(e) = checkpoint::prune(&dir, shared.config.checkpoints_kept) {
        tracing::warn!(dir = %dir.display(), error = %e, "old checkpoints not pruned");
    }
    tracing::info!(agent = %agent_name, task, version, "published version installed");
    Ok(true)
}

/// Writes the published file of `version` into `dir`, and for a delta the
/// files it needs: the versions before it down to a full one, or down to
/// the version this instance serves (`serving`), whose local file is the
/// published one (installed, or published by this instance). A local file
/// of another version may be one this instance wrote and never published,
/// so it is replaced by the published bytes.
fn fetch_published(
    client: &mut impl GenericClient,
    dir: &std::path::Path,
    agent_name: &str,
    task: &str,
    version: u64,
    serving: Option<u64>,
) -> Result<(), Error> {
    let mut version = version;
    loop {
        let stored_version = id_to_stored(version)?;
        let row = client
            .query_opt(
                "SELECT path, data FROM model_checkpoints WHERE agent_name = $1 AND task_type = $2 AND version = $3",
                &[&agent_name, &task, &stored_version],
            )
            .map_err(classify)?
            .ok_or_else(|| StoreError::Corrupt(format!("version {version} of {agent_name}/{task} is not published")))?;
        let (path, data): (String, Option<Vec<u8>>) = (row.get(0), row.get(1));
        let bytes = match data {
            Some(bytes) => bytes,
            None => fs::read(&path).map_err(|e| Error::Io {
                path: path.clone(),
                message: e.to_string(),
            })?,
        };
        let delta = checkpoint::is_delta(std::path::Path::new(&path));
        let (target, other) = match delta {
            true => (
                checkpoint::delta_path_of(dir, version),
                checkpoint::path_of(dir, version),
            ),
            false => (
                checkpoint::path_of(dir, version),
                checkpoint::delta_path_of(dir, version),
            ),
        };
        // The other kind first: a crash in between must not leave both.
        match fs::remove_file(&other) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    path: other.display().to_string(),
                    message: e.to_string(),
                })
            }
            _ => {}
        }
        write_atomically(dir, &target, &bytes)?;
        let base = version - 1;
        if !delta || (serving == Some(base) && checkpoint::file_of(dir, base).is_some()) {
            return Ok(());
        }
        version = base;
    }
}

/// Replaces a task's replay memory with the stored one (empty when none is
/// stored). Beyond a smaller capacity of this instance, examples are
/// forgotten here only: the publishing instance's memory stays as committed.
fn restore_replay(shared: &Shared, memory: &parking_lot::Mutex<ReplayMemory>, stored: Option<ReplayMembers>) {
    let stored = stored.unwrap_or_default();
    let _ = memory
        .lock()
        .restore(shared.config.replay.capacity, stored.examples, &stored.seen);
}

/// Removes from the agent's local buffer the examples whose row is no longer
/// buffered (another instance trained, discarded or gave them up), counting
/// each under its new state so the counters still add up. Returns how many left.
pub(crate) fn prune_buffer(shared: &Shared, client: &mut Client, agent_name: &str) -> Result<usize, StoreError> {
    let Some(agent) = shared.agents.read().get(agent_name).cloned() else {
        return Ok(0);
    };
    let ids: Vec<i64> = agent
        .buffer
        .lock()
        .iter()
        .map(|e| id_to_stored(e.id.0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let rows = client
        .query(
            "SELECT id, state FROM training_examples WHERE id = ANY($1) AND state <> 'buffered'",
            &[&ids],
        )
        .map_err(classify)?;
    let mut gone: Vec<(ExampleId, ExampleState)> = Vec::with_capacity(rows.len());
    for row in &rows {
        gone.push((ExampleId(id_from_stored(row.get(0))?), ExampleState::parse(row.get(1))?));
    }
    let mut left = 0;
    for state in [
        ExampleState::Trained,
        ExampleState::Discarded,
        ExampleState::Failed,
        ExampleState::Quarantined,
        ExampleState::Evicted,
    ] {
        let ids: Vec<ExampleId> = gone.iter().filter(|(_, s)| *s == state).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            continue;
        }
        let counter: fn(&mut AgentStats) -> &mut u64 = match state {
            ExampleState::Trained => |s| &mut s.examples_trained,
            ExampleState::Discarded => |s| &mut s.examples_discarded,
            ExampleState::Failed => |s| &mut s.examples_failed,
            ExampleState::Quarantined => |s| &mut s.examples_quarantined,
            _ => |s| &mut s.examples_evicted,
        };
        left += agent.remove_examples(&ids, |stats, n| *counter(stats) += n as u64);
    }
    Ok(left)
}

/// Writes a published checkpoint into the local folder: temporary file,
/// fsync, rename, so a half-written file is never taken for a version.
pub(crate) fn write_atomically(dir: &std::path::Path, target: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Io {
        path: target.display().to_string(),
        message: e.to_string(),
    };
    fs::create_dir_all(dir).map_err(io)?;
    // Unique per call: the listener and a worker may install the same version at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = target.with_extension(format!("part{}-{call}", std::process::id()));
    let written = File::create(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&temp, target));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(io(e));
    }
    Ok(())
}
