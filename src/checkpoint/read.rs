//! Loading a version: a full file, or the chain of deltas down to the
//! nearest full file, read and unpacked side by side and checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::*;
use crate::base::brief_torch_error;
use crate::ewc::EwcState;
use crate::optim::state_name;

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
pub(super) fn cores() -> usize {
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
    let mut entries =
        Tensor::load_multi_with_device(&path, tch::Device::Cpu).map_err(|e| corrupt(brief_torch_error(&e)))?;
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
