//! manifest.json: every file of the current render with its sha256 and mode, and the render's format.
//! It lists exactly what the cluster file produces; what an earlier render left and the spec no longer
//! produces is removed by render/output.rs (key material moved to `attic/`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::files::{self, FileError};

/// The manifest's own name (not listed in itself).
pub const NAME: &str = "manifest.json";
/// `provision apply`'s own directory under the output (state, logs, snapshots): not rendered, not listed.
pub const APPLY_DIR: &str = "apply";
/// Where render moves key material the spec no longer uses (never deleted silently): not listed.
pub const ATTIC_DIR: &str = "attic";

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

/// Write `out/manifest.json` listing `paths` (relative to `out`, each an existing file) in sorted order.
pub fn write(out: &Path, paths: &[PathBuf], format: &str) -> Result<Vec<Entry>, FileError> {
    let mut paths: Vec<&PathBuf> = paths.iter().collect();
    paths.sort();
    paths.dedup();
    let mut entries = Vec::new();
    for rel in paths {
        let path = out.join(rel);
        let io = |action| {
            let path = path.clone();
            move |source| FileError {
                path,
                action,
                source,
            }
        };
        let data = std::fs::read(&path).map_err(io("cannot read"))?;
        let meta = std::fs::metadata(&path).map_err(io("cannot stat"))?;
        entries.push(Entry {
            path: rel.to_string_lossy().to_string(),
            sha256: hex::encode(Sha256::digest(&data)),
            mode: format!("{:o}", meta.permissions().mode() & 0o7777),
        });
    }
    let json = serde_json::json!({ "format": format, "files": entries });
    let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
    files::write(&out.join(NAME), text.as_bytes())?;
    Ok(entries)
}

/// The previous manifest's paths and format (none when there is no readable manifest).
pub fn previous(out: &Path) -> (Vec<PathBuf>, Option<String>) {
    let Ok(text) = std::fs::read_to_string(out.join(NAME)) else {
        return (Vec::new(), None);
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return (Vec::new(), None);
    };
    let paths = v["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["path"].as_str())
                // Only paths inside the output directory, whatever the file says.
                .filter(|p| {
                    Path::new(p)
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                })
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    (paths, v["format"].as_str().map(String::from))
}
