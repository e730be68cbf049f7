//! Versioned model checkpoints: one file per accepted version of an
//! (agent, task), holding the weights, the EWC Fisher and anchors, and the
//! model's metadata (kind, label map) together.
//!
//! A file is written to a hidden temporary name, fsynced, renamed to
//! `v<version>.ckpt` and the folder fsynced, so a version file is either
//! complete or absent: a process killed while writing leaves the previous
//! version loadable. The last `keep` versions are kept.
//!
//! A version that changed only some rows of the one before (an adaptive
//! update of a hashed model touches the n-grams it saw) may be written as a
//! delta, `v<version>.delta.ckpt`: the changed rows of each changed variable
//! (weights and optimiser state, which share one list of 32-bit row
//! numbers), whole variables where an update changed
//! all of one, the EWC state whole (it is exactly the version's) and the
//! metadata. The rows of 32-bit variables are packed ([`packed`]: the bits
//! that changed, compressed), so an update of 50 news articles (and 50
//! replayed) writes a tenth of the full table. Loading a delta loads the
//! version before it first, down to the nearest full file: the files of that
//! chain are read and unpacked side by side (one thread per core), and their
//! packed rows written into the full table in one sweep. The writer starts a
//! full file after `full_every − 1` deltas, which bounds that chain, and
//! pruning keeps every file a kept version needs.

pub mod integrity;
pub mod packed;
mod read;
mod write;

use read::cores;
pub use read::load;
pub use write::{save, save_changes, write, write_changes, write_full_beside, write_full_of};

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::base::ModelError;
use crate::base::TargetKind;
use crate::ewc::EwcState;
use crate::models::ModelKind;

const PARAM: &str = "param/";
const FISHER: &str = "fisher/";
const ANCHOR: &str = "anchor/";
const META: &str = "meta";
/// The changed rows of variable `<name>` in a delta.
const ROWS: &str = "rows/";
/// The values of those rows.
const PART: &str = "part/";
/// The changed rows of variable `<name>`, packed.
const PACKED_ROWS: &str = "packed_rows/";
/// Their values, packed (how: the metadata's `packed`), as deltas were
/// written before zero low bits were shifted out ([`packed::PackedPart`]'s
/// `shift`): read, never written.
const PACKED: &str = "packed/";
/// Their values, packed with the low bits zero in every word shifted out.
/// A name of its own, so that a reader from before shifts existed finds no
/// values for the rows and refuses the delta instead of misreading it.
const PACKED_SHIFTED: &str = "packed_shifted/";
/// The checksum of every other entry ([`integrity`]).
const CHECKSUM: &str = "checksum";
/// The file name ending of a delta.
pub const DELTA_SUFFIX: &str = ".delta.ckpt";

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
    /// The file's contents are not what was written: its checksum does not
    /// match, or a weight is not finite.
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt {
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
    /// For a delta, the version it changes (always `version − 1`); `None`
    /// for a full checkpoint.
    #[serde(default)]
    pub base: Option<u64>,
    /// Whether the file holds a checksum of its entries: the writer sets it
    /// on every file it writes (whatever the caller gave); older files load
    /// without one.
    #[serde(default)]
    pub checksummed: bool,
    /// For a delta, how each packed variable's rows were packed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packed: BTreeMap<String, packed::PackedPart>,
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

/// The file of a full checkpoint of a version in `dir`.
pub fn path_of(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("v{version:08}.ckpt"))
}

/// The file of a delta checkpoint of a version in `dir`.
pub fn delta_path_of(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("v{version:08}{DELTA_SUFFIX}"))
}

/// Whether a checkpoint file (by its name) is a delta.
pub fn is_delta(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(DELTA_SUFFIX))
}

/// The file holding `version` in `dir`, full or delta, if there is one.
pub fn file_of(dir: &Path, version: u64) -> Option<PathBuf> {
    [path_of(dir, version), delta_path_of(dir, version)]
        .into_iter()
        .find(|p| p.exists())
}

/// How many deltas end at `version` in `dir` (0 for a full file): the
/// files loading it reads beyond the full one.
pub fn deltas_before(dir: &Path, version: u64) -> usize {
    let mut n = 0;
    let mut v = version;
    while v > 0 && delta_path_of(dir, v).exists() && !path_of(dir, v).exists() {
        n += 1;
        v -= 1;
    }
    n
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
            let stem = name.strip_prefix('v')?;
            let number = stem.strip_suffix(DELTA_SUFFIX).or_else(|| stem.strip_suffix(".ckpt"))?;
            number.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    Ok(versions)
}

/// Removes all but the newest `keep` versions (at least one stays, and the
/// version recorded as serving always stays), with the files those versions
/// need (the versions before a delta, down to a full one).
pub fn prune(dir: &Path, keep: usize) -> Result<(), CheckpointError> {
    let versions = versions(dir)?;
    let mut kept: std::collections::BTreeSet<u64> = versions.iter().rev().take(keep.max(1)).copied().collect();
    kept.extend(current(dir));
    for version in kept.clone() {
        let mut v = version;
        while v > 0 && file_of(dir, v).is_some_and(|p| is_delta(&p)) {
            v -= 1;
            kept.insert(v);
        }
    }
    for version in versions.iter().filter(|v| !kept.contains(v)) {
        for path in [path_of(dir, *version), delta_path_of(dir, *version)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&path)(e)),
                _ => {}
            }
        }
    }
    Ok(())
}
