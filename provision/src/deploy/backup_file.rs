//! Where `provision backup -f FILE` may write: a file (not a directory) in a directory that exists,
//! and not an existing file unless `--force`, so a typo never creates directories or silently
//! replaces an earlier backup.

use std::path::Path;

/// Why the backup path was refused; each message names the path and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupPathError {
    #[error("-f {0}: is a directory; name a file in it (e.g. -f {0}/snapshot.db)")]
    IsDirectory(String),
    #[error("-f {path}: directory {dir} does not exist; create it first or choose another path")]
    NoDirectory { path: String, dir: String },
    #[error("-f {0}: file exists; pass --force to overwrite it, or choose another name")]
    Exists(String),
}

/// Check `file` as a backup destination.
pub fn check(file: &Path, force: bool) -> Result<(), BackupPathError> {
    let shown = file.display().to_string();
    if file.is_dir() || shown.ends_with('/') {
        return Err(BackupPathError::IsDirectory(
            shown.trim_end_matches('/').to_string(),
        ));
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(BackupPathError::NoDirectory {
            path: shown,
            dir: dir.display().to_string(),
        });
    }
    if file.exists() && !force {
        return Err(BackupPathError::Exists(shown));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_path_must_be_a_new_file_in_an_existing_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert_eq!(check(&d.join("snap.db"), false), Ok(()));
        assert!(matches!(
            check(&d.join("missing/snap.db"), false),
            Err(BackupPathError::NoDirectory { .. })
        ));
        assert!(matches!(
            check(d, false),
            Err(BackupPathError::IsDirectory(_))
        ));
        std::fs::write(d.join("old.db"), b"x").unwrap();
        assert!(matches!(
            check(&d.join("old.db"), false),
            Err(BackupPathError::Exists(_))
        ));
        assert_eq!(check(&d.join("old.db"), true), Ok(()));
        assert!(!d.join("missing").exists(), "nothing created");
    }
}
