//! Pausing member processes (SIGSTOP) to cut them off without killing them: a paused follower
//! answers nothing, so the rest of the cluster sees it partitioned away.

use anyhow::{bail, Context, Result};

use crate::cluster::Cluster;
use crate::fixture::must;

/// Processes stopped with SIGSTOP; continued (SIGCONT) when dropped, also when a test fails.
pub struct Paused(Vec<u32>);

impl Paused {
    /// Stops every process of `pids` (panics if one cannot be stopped, continuing those already stopped).
    pub fn stop(pids: Vec<u32>) -> Paused {
        for &p in &pids {
            must(signal("STOP", p));
        }
        Paused(pids)
    }

    /// Stops every running member of `c` but member `keep` (a leader so cut off from its quorum).
    pub fn all_but(c: &Cluster, keep: usize) -> Paused {
        let others = (0..c.members.len())
            .filter(|&i| i != keep)
            .filter_map(|i| c.members[i].pid())
            .collect();
        Paused::stop(others)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        for &p in &self.0 {
            let _ = signal("CONT", p);
        }
    }
}

/// Sends `sig` (a name such as STOP) to process `pid` with kill(1).
pub fn signal(sig: &str, pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{sig} {pid}: {status}");
    }
    Ok(())
}
