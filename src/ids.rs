//! Example and update ids of a single instance, never handed out twice,
//! not even after `kill -9`.
//!
//! An id is returned to the caller at once, while its row reaches the store
//! later (the writer's thread, batched), so the highest stored id does not
//! bound the ids handed out before a crash. Ids are therefore handed out
//! from blocks reserved durably first: the end of the current block is
//! written to `data_dir/id_reserved` (written aside, fsynced, renamed),
//! and a restart continues after both that end and the highest stored id.
//! A block costs one small synchronous write per [`BLOCK`] ids. Several
//! instances sharing one database take their blocks from the database
//! instead (`cluster`).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::store::StoreError;

/// Ids reserved at a time.
pub const BLOCK: u64 = 4_096;

/// The file that holds the end of the reserved block.
pub const FILE: &str = "id_reserved";

/// The ids of one instance: the next one and the end of what is reserved.
pub(crate) struct LocalIds {
    state: Mutex<Reserved>,
    /// Where reservations are kept; `None` when nothing is persisted (a
    /// restart then starts afresh anyway).
    file: Option<PathBuf>,
}

struct Reserved {
    next: u64,
    /// Ids below this may have been handed out (by this run or one before).
    end: u64,
}

impl LocalIds {
    /// Ids kept in memory only, from 1.
    pub fn in_memory() -> LocalIds {
        LocalIds {
            state: Mutex::new(Reserved { next: 1, end: u64::MAX }),
            file: None,
        }
    }

    /// Ids reserved in `dir`: the next one follows the block an earlier run
    /// reserved (which it may have handed out in part).
    pub fn durable(dir: &Path) -> Result<LocalIds, StoreError> {
        let file = dir.join(FILE);
        let reserved = match fs::read_to_string(&file) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|e| failed(&file, format!("holds {text:?}, not an id: {e}")))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => return Err(failed(&file, e.to_string())),
        };
        Ok(LocalIds {
            state: Mutex::new(Reserved {
                next: reserved.max(1),
                end: reserved.max(1),
            }),
            file: Some(file),
        })
    }

    /// Ids continue at `next` at the least (the highest stored id + 1).
    pub fn continue_from(&self, next: u64) {
        let mut state = self.state.lock();
        state.next = state.next.max(next);
    }

    /// A new id, reserving a block durably first when the current one is
    /// used up.
    pub fn next(&self) -> Result<u64, StoreError> {
        let mut state = self.state.lock();
        if state.next >= state.end {
            let end = state
                .next
                .checked_add(BLOCK)
                .ok_or_else(|| StoreError::Corrupt("ids exhausted".into()))?;
            if let Some(file) = &self.file {
                write_durably(file, end).map_err(|e| failed(file, e.to_string()))?;
            }
            state.end = end;
        }
        let id = state.next;
        state.next += 1;
        Ok(id)
    }
}

fn failed(file: &Path, message: String) -> StoreError {
    StoreError::IdReservation {
        path: file.display().to_string(),
        message,
    }
}

/// Writes `end` to `file` so that a crash leaves either the old value or
/// the new one, on disk.
fn write_durably(file: &Path, end: u64) -> io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let written = fs::write(&temp, end.to_string())
        .and_then(|()| File::open(&temp)?.sync_all())
        .and_then(|()| fs::rename(&temp, file))
        .and_then(|()| File::open(dir)?.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_continues_after_the_reserved_block_and_the_stored_ids() {
        let dir = std::env::temp_dir().join(format!("onthefly-ids-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = LocalIds::durable(&dir).unwrap();
        let handed: Vec<u64> = (0..10).map(|_| first.next().unwrap()).collect();
        assert_eq!(handed, (1..=10).collect::<Vec<_>>());
        // A crash: nothing of these ten was stored.
        let second = LocalIds::durable(&dir).unwrap();
        assert_eq!(second.next().unwrap(), 1 + BLOCK);
        // Stored ids beyond the reservation (a store written by an older
        // version) are not handed out again either.
        let third = LocalIds::durable(&dir).unwrap();
        third.continue_from(10 * BLOCK);
        assert_eq!(third.next().unwrap(), 10 * BLOCK);
        assert_eq!(LocalIds::durable(&dir).unwrap().next().unwrap(), 11 * BLOCK);
        fs::write(dir.join(FILE), "garbage").unwrap();
        assert!(matches!(LocalIds::durable(&dir), Err(StoreError::IdReservation { .. })));
        let _ = fs::remove_dir_all(&dir);
    }
}
