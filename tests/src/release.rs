//! The statically linked release `cairn` that the packages ship (container image, VM image, Ansible):
//! built once per test process with the flags scripts/container-image.sh uses, so both share one build.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result};

use crate::tools::run_ok;
use crate::workspace;

/// The target triple of the static build (an explicit target keeps it apart from the dynamic builds).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Path of the static release `cairn`, building it first (a no-op when it is up to date).
pub fn static_cairn() -> Result<PathBuf> {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !*built {
        run_ok(
            Command::new("cargo")
                .current_dir(workspace::root())
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .args(["build", "--release", "--locked", "-p", "cairn-node"])
                .args(["--bin", "cairn", "--target", TARGET]),
        )
        .context("building the static release cairn")?;
        *built = true;
    }
    Ok(workspace::target_dir()
        .join(TARGET)
        .join("release")
        .join("cairn"))
}
