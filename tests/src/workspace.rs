//! Where the workspace's built binaries are.

use anyhow::{bail, Result};
use std::path::PathBuf;

/// The workspace root (parent of this crate's directory).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        }
        None => root().join("target"),
    }
}

/// Path of a workspace binary in the debug profile, or `None` if it has not been built.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = target_dir().join("debug").join(name);
    path.is_file().then_some(path)
}

/// Path of a workspace binary, or an error telling how to build it.
pub fn binary(name: &str) -> Result<PathBuf> {
    match find_binary(name) {
        Some(p) => Ok(p),
        None => bail!(
            "{} not found; run cargo build --workspace --bins first",
            target_dir().join("debug").join(name).display()
        ),
    }
}
