//! One coordinator per `data_dir` at a time.
//!
//! Two instances on one folder would hand out the same example ids, append
//! to one spool and write the same checkpoint names: each would corrupt the
//! other's state without an error. A coordinator therefore holds an
//! exclusive advisory lock (`flock`) on `data_dir/.lock` from its start to
//! the end of its shutdown. The operating system drops the lock with the
//! process, so a killed instance never leaves the folder locked.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};

/// The lock file's name inside `data_dir`.
const LOCK_FILE: &str = ".lock";

/// The held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the folder's lock, creating the folder if needed; refused with
    /// [`Error::DataDirInUse`] while another coordinator (in this process or
    /// another) holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DataDirLock> {
        let io = |e: std::io::Error| Error::Io {
            path: dir.join(LOCK_FILE).display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::DataDirInUse {
                path: dir.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("onthefly-lock-{}", std::process::id()));
        let first = DataDirLock::acquire(&dir).unwrap();
        let second = DataDirLock::acquire(&dir);
        assert!(
            matches!(&second, Err(Error::DataDirInUse { path }) if path == &dir.display().to_string()),
            "{second:?}"
        );
        drop(first);
        assert!(DataDirLock::acquire(&dir).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
