//! The folder every instance mounts (`shared_checkpoint_dir`): each
//! publication's file under a name of its own, and the files no kept
//! version needs removed.

use std::path::{Path, PathBuf};

use crate::checkpoint;

/// Where publication `attempt` (its update id, unique across the group)
/// puts the checkpoint `local` (a full or delta file named by its version)
/// in `folder`. A name of its own: an instance that lost its session during
/// an update writes its file before it learns that its commit failed, and
/// must not replace the bytes another instance published for that version
/// meanwhile. The version stays first and the delta suffix last, which is
/// all readers look at.
pub(crate) fn publication_path(folder: &Path, local: &Path, attempt: u64) -> PathBuf {
    let name = local.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let (stem, suffix) = match checkpoint::is_delta(local) {
        true => name.split_at(name.len() - checkpoint::DELTA_SUFFIX.len()),
        false => name.split_at(name.rfind('.').unwrap_or(name.len())),
    };
    folder.join(format!("{stem}-u{attempt}{suffix}"))
}

/// The version a file of `folder` holds, from its name (`v00000012…`).
fn version_of(name: &str) -> Option<u64> {
    let digits: String = name
        .strip_prefix('v')?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Removes the files of versions below `kept_from` (whose rows no longer
/// keep their bytes either); returns how many. A file that cannot be
/// removed is left for the next publication to try.
pub(crate) fn prune_below(folder: &Path, kept_from: u64) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let old = name.to_str().and_then(version_of).is_some_and(|v| v < kept_from);
        if old {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "old shared checkpoint not removed")
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_names_its_file_and_keeps_version_and_kind() {
        let folder = Path::new("/shared/scout/news");
        let full = publication_path(folder, Path::new("/d/v00000012.ckpt"), 77);
        let delta = publication_path(folder, Path::new("/d/v00000013.delta.ckpt"), 78);
        assert_eq!(full, folder.join("v00000012-u77.ckpt"));
        assert_eq!(delta, folder.join("v00000013-u78.delta.ckpt"));
        assert!(!checkpoint::is_delta(&full) && checkpoint::is_delta(&delta));
        assert_eq!(version_of("v00000013-u78.delta.ckpt"), Some(13));
        assert_eq!(version_of(".v00000013.tmp"), None);
    }
}
