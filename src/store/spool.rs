//! The outage spool: an append-only file of JSON lines, one [`StoreOp`] each,
//! fsynced after every append, replayed in order when the database answers
//! again and emptied once replayed. Only the writer thread touches it.
//!
//! A `kill -9` in the middle of an append leaves a torn last line; opening
//! the spool cuts it off (that append had not returned, so nothing promised is
//! lost). A crash in the middle of a replay replays from the start next time,
//! which the store's idempotent operations allow.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{StoreError, StoreOp};

/// The spool's file name in its folder.
pub const SPOOL_FILE: &str = "store-spool.jsonl";

pub(crate) struct Spool {
    path: PathBuf,
    file: File,
    /// Where the next replay chunk starts.
    read_offset: u64,
    /// Operations in the file not yet replayed.
    ops: u64,
    /// The file's length.
    bytes: u64,
}

impl Spool {
    /// Opens the spool in `dir` (creating both), cutting off a torn last line.
    pub fn open(dir: &Path) -> Result<Spool, StoreError> {
        let path = dir.join(SPOOL_FILE);
        let err = |e: std::io::Error| spool_error(&path, e);
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        let mut content = Vec::new();
        file.read_to_end(&mut content).map_err(err)?;
        let whole = content.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < content.len() {
            tracing::warn!(file = %path.display(), bytes = content.len() - whole, "torn last line of the spool removed");
            file.set_len(whole as u64).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        let ops = content[..whole].iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(Spool {
            path,
            file,
            read_offset: 0,
            ops,
            bytes: whole as u64,
        })
    }

    /// Operations waiting for replay.
    pub fn len(&self) -> u64 {
        self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }

    /// The file's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `ops` and fsyncs; when this returns `Ok` they survive a crash.
    pub fn append<'a>(&mut self, ops: impl IntoIterator<Item = &'a StoreOp>) -> Result<(), StoreError> {
        let mut lines = Vec::new();
        let mut n = 0;
        for op in ops {
            serde_json::to_writer(&mut lines, op).map_err(|e| spool_error(&self.path, e.into()))?;
            lines.push(b'\n');
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let written = self.file.write_all(&lines).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // A partial append must not stay in front of the next one.
            let _ = self.file.set_len(self.bytes);
            return Err(spool_error(&self.path, e));
        }
        self.ops += n;
        self.bytes += lines.len() as u64;
        Ok(())
    }

    /// Reads up to `max` operations from where the replay stands; returns them
    /// and the offset after them (pass it to [`Spool::consumed`]).
    pub fn read_chunk(&self, max: usize) -> Result<(Vec<StoreOp>, u64), StoreError> {
        let err = |e: std::io::Error| spool_error(&self.path, e);
        let mut reader = File::open(&self.path).map_err(err)?;
        reader.seek(SeekFrom::Start(self.read_offset)).map_err(err)?;
        let mut reader = BufReader::new(reader);
        let (mut ops, mut offset, mut line) = (Vec::new(), self.read_offset, String::new());
        while ops.len() < max {
            line.clear();
            let n = reader.read_line(&mut line).map_err(err)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            let op = serde_json::from_str(&line).map_err(|e| StoreError::Spool {
                path: self.path.display().to_string(),
                message: format!("line at byte {offset} cannot be read: {e}"),
            })?;
            ops.push(op);
            offset += n as u64;
        }
        Ok((ops, offset))
    }

    /// Marks `n` operations up to `offset` as replayed; empties the file once
    /// everything is.
    pub fn consumed(&mut self, n: usize, offset: u64) -> Result<(), StoreError> {
        self.read_offset = offset;
        self.ops = self.ops.saturating_sub(n as u64);
        if self.ops == 0 {
            let err = |e: std::io::Error| spool_error(&self.path, e);
            self.file.set_len(0).map_err(err)?;
            self.file.sync_all().map_err(err)?;
            self.read_offset = 0;
            self.bytes = 0;
        }
        Ok(())
    }
}

fn spool_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Spool {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Appends operations the database refused (after they were isolated one by
/// one) to `rejected.jsonl` beside the spool, with the reason: nothing
/// accepted is dropped silently.
pub(crate) fn reject(dir: &Path, op: &StoreOp, reason: &StoreError) -> Result<(), StoreError> {
    let path = dir.join("rejected.jsonl");
    let line = serde_json::json!({ "error": reason.to_string(), "op": op });
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(format!("{line}\n").as_bytes())?;
            f.sync_data()
        })
        .map_err(|e| spool_error(&path, e))
}
