//! `provision render` as the packaging tests use it: a cluster file in, a rendered directory out.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::tools::run_ok;
use crate::workspace;

/// `examples/<name>.yaml`.
pub fn example(name: &str) -> PathBuf {
    workspace::root()
        .join("examples")
        .join(format!("{name}.yaml"))
}

/// `provision render CLUSTER -o OUT EXTRA…`; fails with provision's output unless it exits 0.
pub fn render(cluster: &Path, out: &Path, extra: &[&str]) -> Result<()> {
    let bin = workspace::binary("provision")?;
    run_ok(
        Command::new(&bin)
            .arg("render")
            .arg(cluster)
            .arg("-o")
            .arg(out)
            .args(extra),
    )
    .with_context(|| format!("provision render {}", cluster.display()))?;
    Ok(())
}

/// The `KEY=VALUE` lines of a rendered env file, comments skipped.
pub fn env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}
