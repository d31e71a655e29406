//! manifest.json: every rendered file with its sha256 and mode, so operators can see what changed.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::files::{self, FileError};

/// The manifest's own name (not listed in itself).
pub const NAME: &str = "manifest.json";
/// `provision apply`'s own directory under the output (state, logs, snapshots): not rendered, not listed.
pub const APPLY_DIR: &str = "apply";

/// One entry of the manifest.
#[derive(Debug, serde::Serialize)]
pub struct Entry {
    /// Path relative to the output directory.
    pub path: String,
    /// Hex sha256 of the content.
    pub sha256: String,
    /// Unix mode, octal text.
    pub mode: String,
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Entry>) -> Result<(), FileError> {
    let io = |action| {
        move |source| FileError {
            path: dir.to_path_buf(),
            action,
            source,
        }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io("cannot list"))?
        .collect::<Result<_, _>>()
        .map_err(io("cannot list"))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let meta = e.metadata().map_err(io("cannot stat"))?;
        if dir == root && e.file_name() == APPLY_DIR {
            continue;
        }
        if meta.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .to_string();
        if rel == NAME {
            continue;
        }
        let data = std::fs::read(&path).map_err(|source| FileError {
            path: path.clone(),
            action: "cannot read",
            source,
        })?;
        use std::os::unix::fs::PermissionsExt;
        out.push(Entry {
            path: rel,
            sha256: hex::encode(Sha256::digest(&data)),
            mode: format!("{:o}", meta.permissions().mode() & 0o7777),
        });
    }
    Ok(())
}

/// List every file under `out` and write `out/manifest.json`.
pub fn write(out: &Path) -> Result<Vec<Entry>, FileError> {
    let mut entries = Vec::new();
    walk(out, out, &mut entries)?;
    let json = serde_json::json!({ "files": entries });
    let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
    files::write(&out.join(NAME), text.as_bytes())?;
    Ok(entries)
}
