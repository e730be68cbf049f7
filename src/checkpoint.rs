//! Versioned model checkpoints: one file per accepted version of an
//! (agent, task), holding the weights, the EWC Fisher and anchors, and the
//! model's metadata (kind, label map) together.
//!
//! A file is written to a hidden temporary name, fsynced, renamed to
//! `v<version>.ckpt` and the folder fsynced, so a version file is either
//! complete or absent: a process killed while writing leaves the previous
//! version loadable. The last `keep` versions are kept.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::ModelError;
use crate::ewc::EwcState;
use crate::example::TargetKind;
use crate::models::{AgentModel, ModelKind};

const PARAM: &str = "param/";
const FISHER: &str = "fisher/";
const ANCHOR: &str = "anchor/";
const META: &str = "meta";

/// A checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file operation failed.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// libtorch could not write or read the tensors.
    #[error("checkpoint tensors: {0}")]
    Tensor(#[from] ModelError),
    /// The metadata is missing or malformed.
    #[error("checkpoint {path} has invalid metadata: {reason}")]
    Meta {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No checkpoint of this version exists.
    #[error("no checkpoint of version {version} in {dir}")]
    NotFound {
        /// The folder searched.
        dir: PathBuf,
        /// The version asked for.
        version: u64,
    },
}

impl From<tch::TchError> for CheckpointError {
    fn from(e: tch::TchError) -> Self {
        CheckpointError::Tensor(ModelError::Torch(e))
    }
}

/// What a checkpoint says about its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The model's version.
    pub version: u64,
    /// The agent.
    pub agent_name: String,
    /// The task.
    pub task_type: String,
    /// The model's kind.
    pub model_kind: ModelKind,
    /// The kind of target it learns.
    pub target_kind: TargetKind,
    /// Model-specific metadata (a classifier's labels and hyper-parameters).
    pub model: serde_json::Value,
    /// Updates consolidated into the EWC state.
    pub ewc_consolidations: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// Its metadata.
    pub meta: CheckpointMeta,
    /// The weights, by variable name.
    pub params: BTreeMap<String, Tensor>,
    /// The EWC state saved with them.
    pub ewc: EwcState,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file of a version in `dir`.
pub fn path_of(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("v{version:08}.ckpt"))
}

/// Writes a checkpoint atomically, records it as the serving version and
/// removes all but the newest `keep` versions. Returns the file written.
pub fn save(
    dir: &Path,
    model: &dyn AgentModel,
    ewc: &EwcState,
    meta: &CheckpointMeta,
    keep: usize,
) -> Result<PathBuf, CheckpointError> {
    let target = write(dir, model, ewc, meta)?;
    set_current(dir, meta.version)?;
    if let Err(e) = prune(dir, keep) {
        tracing::warn!(dir = %dir.display(), error = %e, "old checkpoints not pruned");
    }
    Ok(target)
}

/// Writes a checkpoint file atomically, without making it the serving
/// version or pruning others (for a version that may yet be abandoned).
pub fn write(
    dir: &Path,
    model: &dyn AgentModel,
    ewc: &EwcState,
    meta: &CheckpointMeta,
) -> Result<PathBuf, CheckpointError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (name, t) in model.var_store().variables() {
        named.push((format!("{PARAM}{name}"), t.f_detach()?));
    }
    for (name, t) in ewc.fisher() {
        named.push((format!("{FISHER}{name}"), t.shallow_clone()));
    }
    for (name, t) in ewc.anchors() {
        named.push((format!("{ANCHOR}{name}"), t.shallow_clone()));
    }
    let json = serde_json::to_vec(meta).map_err(|e| CheckpointError::Meta {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    named.push((META.to_string(), Tensor::f_from_slice(&json)?));

    let target = path_of(dir, meta.version);
    let temp = dir.join(format!(".v{:08}.ckpt.{}.tmp", meta.version, std::process::id()));
    let written = Tensor::save_multi(&named, &temp)
        .map_err(CheckpointError::from)
        .and_then(|()| File::open(&temp).and_then(|f| f.sync_all()).map_err(io(&temp)))
        .and_then(|()| fs::rename(&temp, &target).map_err(io(&target)))
        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir)));
    if let Err(e) = written {
        // Leave nothing half-written behind (a full disk would fill further).
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(target)
}

const CURRENT: &str = "current";

/// Records which version serves, atomically (temporary file, fsync, rename).
/// Start-up loads this version rather than the newest one, so a version
/// restored on request survives a restart.
pub fn set_current(dir: &Path, version: u64) -> Result<(), CheckpointError> {
    let temp = dir.join(format!(".{CURRENT}.{}.tmp", std::process::id()));
    let target = dir.join(CURRENT);
    let written = fs::write(&temp, version.to_string())
        .and_then(|()| File::open(&temp).and_then(|f| f.sync_all()))
        .and_then(|()| fs::rename(&temp, &target))
        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(io(&target)(e));
    }
    Ok(())
}

/// The version recorded as serving, if any.
pub fn current(dir: &Path) -> Option<u64> {
    fs::read_to_string(dir.join(CURRENT)).ok()?.trim().parse().ok()
}

/// Versions with a complete checkpoint in `dir`, oldest first.
pub fn versions(dir: &Path) -> Result<Vec<u64>, CheckpointError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut versions: Vec<u64> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_prefix('v')?.strip_suffix(".ckpt")?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// Loads the checkpoint of `version` from `dir`.
pub fn load(dir: &Path, version: u64) -> Result<Checkpoint, CheckpointError> {
    let path = path_of(dir, version);
    if !path.exists() {
        return Err(CheckpointError::NotFound {
            dir: dir.to_path_buf(),
            version,
        });
    }
    let mut params = BTreeMap::new();
    let mut fisher = BTreeMap::new();
    let mut anchors = BTreeMap::new();
    let mut meta = None;
    // Loaded on the CPU whatever device wrote it; callers move what they keep.
    for (name, tensor) in Tensor::load_multi_with_device(&path, tch::Device::Cpu)? {
        if let Some(n) = name.strip_prefix(PARAM) {
            params.insert(n.to_string(), tensor);
        } else if let Some(n) = name.strip_prefix(FISHER) {
            fisher.insert(n.to_string(), tensor);
        } else if let Some(n) = name.strip_prefix(ANCHOR) {
            anchors.insert(n.to_string(), tensor);
        } else if name == META {
            let bytes = Vec::<u8>::try_from(&tensor)?;
            meta = Some(
                serde_json::from_slice::<CheckpointMeta>(&bytes).map_err(|e| CheckpointError::Meta {
                    path: path.clone(),
                    reason: e.to_string(),
                })?,
            );
        }
    }
    let meta = meta.ok_or_else(|| CheckpointError::Meta {
        path: path.clone(),
        reason: "no metadata entry".into(),
    })?;
    let consolidations = meta.ewc_consolidations;
    Ok(Checkpoint {
        meta,
        params,
        ewc: EwcState::from_parts(fisher, anchors, consolidations),
    })
}

/// Removes all but the newest `keep` versions (at least one stays, and the
/// version recorded as serving always stays).
pub fn prune(dir: &Path, keep: usize) -> Result<(), CheckpointError> {
    let versions = versions(dir)?;
    let serving = current(dir);
    for version in &versions[..versions.len().saturating_sub(keep.max(1))] {
        if Some(*version) == serving {
            continue;
        }
        let path = path_of(dir, *version);
        fs::remove_file(&path).map_err(io(&path))?;
    }
    Ok(())
}
