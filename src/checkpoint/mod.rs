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

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::base::ModelError;
use crate::base::TargetKind;
use crate::ewc::EwcState;
use crate::models::{AgentModel, ModelKind};
use crate::optim::{is_state, state_name, Touched};

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
const DELTA_SUFFIX: &str = ".delta.ckpt";

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

/// Writes a full checkpoint atomically, records it as the serving version
/// and removes all but the newest `keep` versions. Returns the file written.
pub fn save(
    dir: &Path,
    model: &dyn AgentModel,
    ewc: &EwcState,
    meta: &CheckpointMeta,
    keep: usize,
) -> Result<PathBuf, CheckpointError> {
    save_changes(dir, model, ewc, meta, keep, None)
}

/// [`save`], as a delta of the version before when `changed` says what
/// changed since it ([`write_changes`]).
pub fn save_changes(
    dir: &Path,
    model: &dyn AgentModel,
    ewc: &EwcState,
    meta: &CheckpointMeta,
    keep: usize,
    changed: Option<&Touched>,
) -> Result<PathBuf, CheckpointError> {
    let target = write_changes(dir, model, ewc, meta, changed)?;
    set_current(dir, meta.version)?;
    if let Err(e) = prune(dir, keep) {
        tracing::warn!(dir = %dir.display(), error = %e, "old checkpoints not pruned");
    }
    Ok(target)
}

/// Writes a full checkpoint file atomically, without making it the serving
/// version or pruning others (for a version that may yet be abandoned).
pub fn write(
    dir: &Path,
    model: &dyn AgentModel,
    ewc: &EwcState,
    meta: &CheckpointMeta,
) -> Result<PathBuf, CheckpointError> {
    write_changes(dir, model, ewc, meta, None)
}

/// [`write`], as a delta of version `meta.version − 1` when `changed` gives
/// what changed since that version (whose file must be in `dir`, with the
/// same variables and shapes). Any other file of the same version is
/// removed once this one is in place.
pub fn write_changes(
    dir: &Path,
    model: &dyn AgentModel,
    ewc: &EwcState,
    meta: &CheckpointMeta,
    changed: Option<&Touched>,
) -> Result<PathBuf, CheckpointError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let variables = model.var_store().variables();
    let mut named: Vec<(String, Tensor)> = Vec::new();
    let mut meta = meta.clone();
    meta.packed.clear();
    match changed {
        None => {
            meta.base = None;
            for (name, t) in &variables {
                named.push((format!("{PARAM}{name}"), t.f_detach()?));
            }
        }
        Some(changed) => {
            meta.base = Some(meta.version.checked_sub(1).ok_or_else(|| CheckpointError::Meta {
                path: dir.to_path_buf(),
                reason: "version 0 has no version before it".into(),
            })?);
            for (name, rows) in changed.changed()? {
                let Some(t) = variables.get(&name) else { continue };
                match rows {
                    None => named.push((format!("{PARAM}{name}"), t.f_detach()?)),
                    Some(rows) => {
                        let part = crate::grad::no_grad(|| t.f_index_select(0, &rows))?;
                        if packed::packable(&part) {
                            let cannot = |reason: String| CheckpointError::Meta {
                                path: dir.to_path_buf(),
                                reason: format!("variable {name} not packed: {reason}"),
                            };
                            let before = changed.before(&name, &rows);
                            let (bytes, how) = packed::pack_values(&part, before.as_ref()).map_err(cannot)?;
                            named.push((format!("{PACKED_SHIFTED}{name}"), Tensor::f_from_slice(&bytes)?));
                            meta.packed.insert(name.clone(), how);
                            if !is_state(&name) {
                                let rows = packed::pack_rows(&rows).map_err(cannot)?;
                                named.push((format!("{PACKED_ROWS}{name}"), Tensor::f_from_slice(&rows)?));
                            }
                            continue;
                        }
                        named.push((format!("{PART}{name}"), part));
                        // A variable's optimiser state changed in the same
                        // rows: stored once, as 32-bit numbers (tables have
                        // far fewer than 2³¹ rows), a fifth of a delta's bytes.
                        if !is_state(&name) {
                            named.push((format!("{ROWS}{name}"), rows.f_to_kind(tch::Kind::Int)?));
                        }
                    }
                }
            }
        }
    }
    append_ewc_and_meta(dir, &mut named, ewc, &meta)?;

    let (target, other) = match meta.base {
        None => (path_of(dir, meta.version), delta_path_of(dir, meta.version)),
        Some(_) => (delta_path_of(dir, meta.version), path_of(dir, meta.version)),
    };
    // A file of the same number from an abandoned lineage (a version written
    // but never published) must not shadow this one: gone before this one
    // exists, so a crash in between cannot leave both.
    match fs::remove_file(&other) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&other)(e)),
        _ => {}
    }
    write_file(dir, meta.version, &named, &target)?;
    Ok(target)
}

/// Writes `version`, which serves from `model` and whose file in `dir` is a
/// delta, in full beside that delta: loading it then reads one file, not
/// the chain. The delta stays (records name it); the full file is read
/// first.
pub fn write_full_beside(
    dir: &Path,
    model: &dyn AgentModel,
    ewc: &EwcState,
    meta: &CheckpointMeta,
) -> Result<PathBuf, CheckpointError> {
    let meta = CheckpointMeta {
        base: None,
        packed: BTreeMap::new(),
        ..meta.clone()
    };
    let mut named = Vec::new();
    for (name, t) in &model.var_store().variables() {
        named.push((format!("{PARAM}{name}"), t.f_detach()?));
    }
    append_ewc_and_meta(dir, &mut named, ewc, &meta)?;
    let target = path_of(dir, meta.version);
    write_file(dir, meta.version, &named, &target)?;
    Ok(target)
}

/// The EWC state and the metadata, as entries of a file.
fn append_ewc_and_meta(
    dir: &Path,
    named: &mut Vec<(String, Tensor)>,
    ewc: &EwcState,
    meta: &CheckpointMeta,
) -> Result<(), CheckpointError> {
    for (name, t) in ewc.fisher() {
        named.push((format!("{FISHER}{name}"), t.shallow_clone()));
    }
    for (name, t) in ewc.anchors() {
        named.push((format!("{ANCHOR}{name}"), t.shallow_clone()));
    }
    let meta = CheckpointMeta {
        checksummed: true,
        ..meta.clone()
    };
    let json = serde_json::to_vec(&meta).map_err(|e| CheckpointError::Meta {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    named.push((META.to_string(), Tensor::f_from_slice(&json)?));
    Ok(())
}

/// Writes `named` to `target` atomically: a temporary file, fsynced,
/// renamed, the folder fsynced.
fn write_file(dir: &Path, version: u64, named: &[(String, Tensor)], target: &Path) -> Result<(), CheckpointError> {
    let sum =
        integrity::checksum(named.iter().map(|(n, t)| (n.as_str(), t))).map_err(|reason| CheckpointError::Meta {
            path: target.to_path_buf(),
            reason,
        })?;
    let mut named: Vec<(&str, Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t.shallow_clone())).collect();
    named.push((CHECKSUM, integrity::to_entry(sum)));
    let temp = dir.join(format!(".v{version:08}.ckpt.{}.tmp", std::process::id()));
    let written = Tensor::save_multi(&named, &temp)
        .map_err(CheckpointError::from)
        .and_then(|()| File::open(&temp).and_then(|f| f.sync_all()).map_err(io(&temp)))
        .and_then(|()| fs::rename(&temp, target).map_err(io(target)))
        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir)));
    if let Err(e) = written {
        // Leave nothing half-written behind (a full disk would fill further).
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(())
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

/// Loads the checkpoint of `version` from `dir`: its file, and for a delta
/// the versions before it down to the nearest full file, each applied in
/// turn to the full one.
pub fn load(dir: &Path, version: u64) -> Result<Checkpoint, CheckpointError> {
    let first = version - deltas_before(dir, version) as u64;
    let mut files = read_all(dir, first..=version).into_iter();
    let full = files.next().expect("the full version, first of those read")?;
    if full.meta.base.is_some() {
        return Err(full.bad(format!("version {first} is a delta with no full version before it")));
    }
    let mut tables: BTreeMap<String, Table> = full.params.into_iter().map(|(n, t)| (n, Table::Tensor(t))).collect();
    let (mut meta, mut fisher, mut anchors) = (full.meta, full.fisher, full.anchors);
    for delta in files {
        let mut delta = delta?;
        delta.apply(&mut tables)?;
        (meta, fisher, anchors) = (delta.meta, delta.fisher, delta.anchors);
    }
    let params: BTreeMap<String, Tensor> = tables
        .into_iter()
        .map(|(name, table)| Ok((name, table.into_tensor()?)))
        .collect::<Result<_, String>>()
        .map_err(|reason| CheckpointError::Meta {
            path: dir.to_path_buf(),
            reason,
        })?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: file_of(dir, version).unwrap_or_else(|| dir.to_path_buf()),
        reason,
    };
    if let Some(name) = integrity::first_non_finite(&params).map_err(&corrupt)? {
        return Err(corrupt(format!("weight {name} holds a value that is not finite")));
    }
    let consolidations = meta.ewc_consolidations;
    Ok(Checkpoint {
        meta,
        params,
        ewc: EwcState::from_parts(fisher, anchors, consolidations),
    })
}

/// One checkpoint file as read.
struct VersionFile {
    path: PathBuf,
    meta: CheckpointMeta,
    /// Whole variables.
    params: BTreeMap<String, Tensor>,
    /// A delta's changed rows, by variable.
    parts: BTreeMap<String, ChangedRows>,
    fisher: BTreeMap<String, Tensor>,
    anchors: BTreeMap<String, Tensor>,
}

/// A variable's changed rows in a delta: their numbers and their values,
/// as stored (packed values unpacked to their words when read).
#[derive(Default)]
struct ChangedRows {
    rows: Option<Vec<i64>>,
    values: Option<Values>,
}

/// The values of a delta's changed rows.
enum Values {
    /// A plain tensor, rows first.
    Plain(Tensor),
    /// Packed ones, unpacked: their bits, or their exclusive or with the
    /// version before ([`packed::PackedPart`] in the metadata says which).
    Words(Vec<u32>),
}

/// A variable while a chain of deltas is applied: a tensor, or its bits
/// with the packed rows of the deltas read so far, written in one sweep
/// when the tensor is needed again (no tensor call per delta).
enum Table {
    Tensor(Tensor),
    Bits {
        bits: Vec<u32>,
        shape: Vec<i64>,
        pending: Vec<packed::Unpacked>,
    },
}

impl Table {
    /// The variable as a tensor (its pending rows written and converted
    /// from its bits if need be).
    fn tensor(&mut self) -> Result<&mut Tensor, String> {
        if let Table::Bits { bits, shape, pending } = self {
            packed::write_in_order(bits, pending);
            *self = Table::Tensor(packed::from_bits(std::mem::take(bits), shape)?);
        }
        match self {
            Table::Tensor(t) => Ok(t),
            Table::Bits { .. } => unreachable!("converted above"),
        }
    }

    /// Queues a delta's packed rows for this variable, checked against its
    /// shape (the variable converted to bits if need be).
    fn queue(&mut self, rows: Vec<i64>, words: Vec<u32>, how: &packed::PackedPart) -> Result<(), String> {
        if let Table::Tensor(t) = self {
            let shape = t.size();
            *self = Table::Bits {
                bits: packed::bits(t)?,
                shape,
                pending: Vec::new(),
            };
        }
        match self {
            Table::Bits { shape, pending, .. } => {
                pending.push(packed::Unpacked::checked(shape, rows, words, how)?);
                Ok(())
            }
            Table::Tensor(_) => unreachable!("converted above"),
        }
    }

    fn into_tensor(mut self) -> Result<Tensor, String> {
        self.tensor()?;
        match self {
            Table::Tensor(t) => Ok(t),
            Table::Bits { .. } => unreachable!("converted above"),
        }
    }
}

/// The machine's cores: how many threads a load spreads its work over.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads the files of `versions` in `dir` (in that order), side by side on
/// as many threads as the machine has cores: reading and unpacking the
/// deltas of a chain is most of what loading its newest version costs, and
/// each file is read on its own.
fn read_all(dir: &Path, versions: std::ops::RangeInclusive<u64>) -> Vec<Result<VersionFile, CheckpointError>> {
    let versions: Vec<u64> = versions.collect();
    let threads = cores().min(versions.len());
    if threads <= 1 {
        return versions.iter().map(|&v| read(dir, v)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut read_files: Vec<(usize, Result<VersionFile, CheckpointError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&version) = versions.get(at) else { break mine };
                        mine.push((at, read(dir, version)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    read_files.sort_by_key(|(at, _)| *at);
    read_files.into_iter().map(|(_, file)| file).collect()
}

/// Reads the file of `version` in `dir` and checks that its metadata
/// names that version (and, for a delta, the one before).
fn read(dir: &Path, version: u64) -> Result<VersionFile, CheckpointError> {
    let path = file_of(dir, version).ok_or_else(|| CheckpointError::NotFound {
        dir: dir.to_path_buf(),
        version,
    })?;
    let bad = |reason: String| CheckpointError::Meta {
        path: path.clone(),
        reason,
    };
    let (mut params, mut fisher, mut anchors) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut parts: BTreeMap<String, ChangedRows> = BTreeMap::new();
    let (mut packed_rows, mut packed_values) = (Vec::new(), Vec::new());
    let mut meta = None;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.clone(),
        reason,
    };
    // Loaded on the CPU whatever device wrote it; callers move what they keep.
    let mut entries = Tensor::load_multi_with_device(&path, tch::Device::Cpu).map_err(|e| corrupt(e.to_string()))?;
    let stored_sum = entries
        .iter()
        .position(|(name, _)| name == CHECKSUM)
        .map(|at| integrity::from_entry(&entries.swap_remove(at).1));
    let sum = integrity::checksum(entries.iter().map(|(n, t)| (n.as_str(), t))).map_err(&corrupt)?;
    for (name, tensor) in entries {
        if let Some(n) = name.strip_prefix(PARAM) {
            params.insert(n.to_string(), tensor);
        } else if let Some(n) = name.strip_prefix(PART) {
            parts.entry(n.to_string()).or_default().values = Some(Values::Plain(tensor));
        } else if let Some(n) = name.strip_prefix(ROWS) {
            parts.entry(n.to_string()).or_default().rows = Some(Vec::<i64>::try_from(tensor.f_to_kind(Kind::Int64)?)?);
        } else if let Some(n) = name.strip_prefix(PACKED_SHIFTED) {
            packed_values.push((n.to_string(), Vec::<u8>::try_from(&tensor)?, true));
        } else if let Some(n) = name.strip_prefix(PACKED) {
            packed_values.push((n.to_string(), Vec::<u8>::try_from(&tensor)?, false));
        } else if let Some(n) = name.strip_prefix(PACKED_ROWS) {
            packed_rows.push((n.to_string(), Vec::<u8>::try_from(&tensor)?));
        } else if let Some(n) = name.strip_prefix(FISHER) {
            fisher.insert(n.to_string(), tensor);
        } else if let Some(n) = name.strip_prefix(ANCHOR) {
            anchors.insert(n.to_string(), tensor);
        } else if name == META {
            let bytes = Vec::<u8>::try_from(&tensor)?;
            meta = Some(serde_json::from_slice::<CheckpointMeta>(&bytes).map_err(|e| corrupt(e.to_string()))?);
        }
    }
    let meta = meta.ok_or_else(|| corrupt("no metadata entry".into()))?;
    match stored_sum {
        Some(Some(stored)) if stored == sum => {}
        Some(_) => {
            return Err(corrupt(format!(
                "its checksum does not match its contents ({sum:016x})"
            )))
        }
        None if meta.checksummed => return Err(corrupt("its checksum entry is missing".into())),
        None => {}
    }
    if meta.version != version || meta.base.is_some_and(|b| b + 1 != version) || meta.base.is_some() != is_delta(&path)
    {
        return Err(bad(format!(
            "it says version {} on base {:?}, the file name version {version}",
            meta.version, meta.base
        )));
    }
    // Unpacked here rather than when applied: the deltas of a chain are
    // read side by side (see `read_all`), and unpacking is most of a
    // delta's cost.
    let how = |name: &str| {
        meta.packed
            .get(name)
            .ok_or_else(|| bad(format!("variable {name} packed without a shape")))
    };
    for (name, bytes) in packed_rows {
        let count = how(&name)?.shape.first().copied().unwrap_or(0).max(0) as usize;
        let rows = packed::unpack_rows(&bytes, count).map_err(|e| bad(format!("variable {name}: {e}")))?;
        parts.entry(name).or_default().rows = Some(rows);
    }
    for (name, bytes, shifted) in packed_values {
        let part = how(&name)?;
        if part.shift > 0 && !shifted {
            return Err(bad(format!(
                "variable {name}: a shift of {} for values stored unshifted",
                part.shift
            )));
        }
        let words = packed::unpack_words(&bytes, part).map_err(|e| bad(format!("variable {name}: {e}")))?;
        parts.entry(name).or_default().values = Some(Values::Words(words));
    }
    Ok(VersionFile {
        path,
        meta,
        params,
        parts,
        fisher,
        anchors,
    })
}

impl VersionFile {
    fn bad(&self, reason: String) -> CheckpointError {
        CheckpointError::Meta {
            path: self.path.clone(),
            reason,
        }
    }

    /// Writes this delta's whole variables and changed rows into `tables`,
    /// the variables of the version before.
    fn apply(&mut self, tables: &mut BTreeMap<String, Table>) -> Result<(), CheckpointError> {
        for (name, tensor) in std::mem::take(&mut self.params) {
            tables.insert(name, Table::Tensor(tensor));
        }
        // A weight's rows, which its optimiser state shares.
        let mut rows_of: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (name, changed) in &mut self.parts {
            if let Some(rows) = changed.rows.take() {
                rows_of.insert(state_name(name), rows.clone());
                rows_of.insert(name.clone(), rows);
            }
        }
        for (name, changed) in std::mem::take(&mut self.parts) {
            let (Some(rows), Some(values), Some(table)) =
                (rows_of.remove(&name), changed.values, tables.get_mut(&name))
            else {
                return Err(self.bad(format!(
                    "variable {name}: rows without values, or no such variable before"
                )));
            };
            let applied = match values {
                Values::Plain(values) => table.tensor().and_then(|target| {
                    let rows = Tensor::from_slice(&rows);
                    crate::grad::no_grad(|| target.f_index_copy_(0, &rows, &values).map(drop))
                        .map_err(|e| e.to_string())
                }),
                Values::Words(words) => match self.meta.packed.get(&name) {
                    None => Err("packed without a shape".to_string()),
                    Some(how) => table.queue(rows, words, how),
                },
            };
            applied.map_err(|e| self.bad(format!("variable {name}: {e}")))?;
        }
        Ok(())
    }
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
