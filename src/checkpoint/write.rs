//! Writing a version: a full file, or a delta of the rows an update
//! changed, atomically (a hidden temporary file, fsynced, renamed).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use tch::Tensor;

use super::*;
use crate::ewc::EwcState;
use crate::models::AgentModel;
use crate::optim::{is_state, Touched};

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

/// Writes a loaded checkpoint (from a chain of deltas, say) in full as its
/// version's file in `dir`: a lineage handed to other instances then starts
/// from one self-contained file.
pub fn write_full_of(dir: &Path, saved: &Checkpoint) -> Result<PathBuf, CheckpointError> {
    let meta = CheckpointMeta {
        base: None,
        packed: BTreeMap::new(),
        ..saved.meta.clone()
    };
    let mut named = Vec::new();
    for (name, t) in &saved.params {
        named.push((format!("{PARAM}{name}"), t.shallow_clone()));
    }
    append_ewc_and_meta(dir, &mut named, &saved.ewc, &meta)?;
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

/// `named` in libtorch's file format, in memory.
///
/// libtorch writing a file itself on a full disk threw from its zip
/// writer's destructor, which ended the whole process (`std::terminate`);
/// into memory nothing can fail, and the file is written by Rust, whose
/// errors are values.
fn serialised(named: &[(&str, Tensor)]) -> Result<Vec<u8>, CheckpointError> {
    let buffer = SharedBuffer::default();
    Tensor::save_multi_to_stream(named, buffer.clone())?;
    let bytes = std::mem::take(&mut *buffer.0.lock());
    Ok(bytes)
}

/// A byte buffer that libtorch's stream writer (which must own its
/// writer) fills and the caller reads afterwards.
#[derive(Clone, Default)]
struct SharedBuffer(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    let bytes = serialised(&named)?;
    let temp = dir.join(format!(".v{version:08}.ckpt.{}.tmp", std::process::id()));
    let written = File::create(&temp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .map_err(io(&temp))
        .and_then(|()| fs::rename(&temp, target).map_err(io(target)))
        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir)));
    if let Err(e) = written {
        // Leave nothing half-written behind (a full disk would fill further).
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(())
}
