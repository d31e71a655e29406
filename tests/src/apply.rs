//! `provision apply` / `reset` as the system tests drive them: the real binary, run in a chosen directory
//! (relative paths in a cluster file are relative to where provision runs), with its output kept.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::etcdctl::Etcdctl;
use crate::tools::output;
use crate::workspace;

/// What one provision run printed, how it exited and how long it took.
#[derive(Debug)]
pub struct Run {
    /// stdout + stderr.
    pub text: String,
    /// Exit code.
    pub code: Option<i32>,
    /// Wall time.
    pub secs: f64,
}

impl Run {
    /// Fail with the output unless it exited 0.
    pub fn ok(self) -> Result<Run> {
        if self.code != Some(0) {
            anyhow::bail!("provision exited {:?}:\n{}", self.code, self.text);
        }
        Ok(self)
    }
}

/// `provision ARGS…` in `cwd` with the workspace's cairn binary.
pub fn provision(cwd: &Path, args: &[&str]) -> Result<Run> {
    let bin = workspace::binary("provision")?;
    let cairn = workspace::binary("cairn")?;
    let start = Instant::now();
    let o = output(
        Command::new(&bin)
            .current_dir(cwd)
            .env("CAIRN_BINARY", &cairn)
            .args(args),
    )
    .with_context(|| format!("provision {}", args.join(" ")))?;
    Ok(Run {
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        code: o.status.code(),
        secs: start.elapsed().as_secs_f64(),
    })
}

/// etcdctl with the `admin` client certificate of the rendered directory `out`.
pub fn admin_etcdctl(out: &Path, endpoints: String) -> Etcdctl {
    Etcdctl {
        endpoints,
        cacert: Some(out.join("pki/ca.crt")),
        cert: Some((
            out.join("pki/clients/admin.crt"),
            out.join("pki/clients/admin.key"),
        )),
    }
}
