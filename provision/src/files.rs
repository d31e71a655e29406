//! Small file helpers: read if present, write creating parents, secrets written 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {action}: {source}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What was attempted.
    pub action: &'static str,
    /// The I/O error.
    pub source: std::io::Error,
}

fn err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The file's text, or None when it does not exist.
pub fn read_opt(path: &Path) -> Result<Option<String>, FileError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(path, "cannot read")(e)),
    }
}

fn write_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), FileError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err(dir, "cannot create directory"))?;
    }
    // Skip identical content so re-rendering leaves mtimes alone (idempotent, rsync-friendly).
    if fs::read(path).ok().as_deref() == Some(data) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(err(path, "cannot set permissions"))?;
        return Ok(());
    }
    // Write a sibling then rename, so a crash never leaves a half-written key or unit.
    let tmp = path.with_extension("provision-tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err(&tmp, "cannot create"))?;
    f.write_all(data).map_err(err(&tmp, "cannot write"))?;
    f.sync_all().map_err(err(&tmp, "cannot sync"))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .map_err(err(&tmp, "cannot set permissions"))?;
    fs::rename(&tmp, path).map_err(err(path, "cannot rename into place"))?;
    Ok(())
}

/// Write a public file (0644).
pub fn write(path: &Path, data: &[u8]) -> Result<(), FileError> {
    write_mode(path, data, 0o644)
}

/// Write a secret (0600).
pub fn write_secret(path: &Path, data: &[u8]) -> Result<(), FileError> {
    write_mode(path, data, 0o600)
}

/// Write with an explicit mode (scripts are 0755).
pub fn write_with_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), FileError> {
    write_mode(path, data, mode)
}

fn taken(dir: &Path) -> FileError {
    FileError {
        path: dir.to_path_buf(),
        action: "cannot find a free name (1000 taken this second)",
        source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    }
}

/// `YYYYMMDDTHHMMSSZ` of now (UTC), for names of logs and attic directories.
pub fn stamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A new file `dir/<prefix>-<stamp>.<ext>` that did not exist before (a `-2`, `-3`… suffix when two
/// commands start within one second), created with its parent directories.
pub fn create_unique(
    dir: &Path,
    prefix: &str,
    ext: &str,
) -> Result<(PathBuf, fs::File), FileError> {
    fs::create_dir_all(dir).map_err(err(dir, "cannot create directory"))?;
    let base = format!("{prefix}-{}", stamp());
    for n in 1..=1000u32 {
        let name = if n == 1 {
            format!("{base}.{ext}")
        } else {
            format!("{base}-{n}.{ext}")
        };
        let path = dir.join(name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(&path, "cannot create")(e)),
        }
    }
    Err(taken(dir))
}

/// A new directory `dir/<stamp>` that did not exist before (suffixed like `create_unique`).
pub fn create_unique_dir(dir: &Path) -> Result<PathBuf, FileError> {
    fs::create_dir_all(dir).map_err(err(dir, "cannot create directory"))?;
    let base = stamp();
    for n in 1..=1000u32 {
        let path = if n == 1 {
            dir.join(&base)
        } else {
            dir.join(format!("{base}-{n}"))
        };
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(&path, "cannot create directory")(e)),
        }
    }
    Err(taken(dir))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_made_within_one_second_never_collide() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, _) = super::create_unique(dir.path(), "apply", "log").expect("first");
        let (b, _) = super::create_unique(dir.path(), "apply", "log").expect("second");
        let (c, _) = super::create_unique(dir.path(), "apply", "log").expect("third");
        assert!(a != b && b != c && a != c, "{a:?} {b:?} {c:?}");
        let d1 = super::create_unique_dir(dir.path()).expect("dir");
        let d2 = super::create_unique_dir(dir.path()).expect("dir");
        assert_ne!(d1, d2);
    }
}
