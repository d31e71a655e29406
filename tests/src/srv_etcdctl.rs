//! The real etcdctl run inside a network namespace (so it resolves names with that namespace's
//! resolv.conf), either finding the members by SRV records (`--discovery-srv`) or with fixed endpoints.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::etcdctl::{Etcdctl, Output};

/// etcdctl run inside a namespace, either with `--discovery-srv` or with fixed endpoints.
#[derive(Debug, Clone)]
pub struct SrvEtcdctl {
    /// Namespace to run in.
    pub netns: String,
    /// `--discovery-srv` (replaces the endpoints when set).
    pub domain: Option<String>,
    /// `--discovery-srv-name` (with `domain` only).
    pub srv_name: Option<String>,
    /// Endpoints and TLS files.
    pub ctl: Etcdctl,
}

impl SrvEtcdctl {
    /// The arguments after `etcdctl`.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = self.ctl.argv(args);
        if let Some(d) = &self.domain {
            // etcdctl 3.4 takes the endpoints from the SRV records when --discovery-srv is given.
            v.retain(|a| !a.starts_with("--endpoints="));
            v.insert(0, format!("--discovery-srv={d}"));
            if let Some(n) = &self.srv_name {
                v.insert(1, format!("--discovery-srv-name={n}"));
            }
        }
        v
    }

    /// Runs etcdctl, whatever its exit code.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "etcdctl"])
            .args(self.argv(args))
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::null())
            .output()
            .context("starting etcdctl (Debian package etcd-client)")?;
        Ok(Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        })
    }

    /// Runs etcdctl and returns stdout; a non-zero exit is an error with the command line and outputs.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.success() {
            bail!(
                "`ip netns exec {} etcdctl {}` exited {:?}\nstdout: {}\nstderr: {}",
                self.netns,
                self.argv(args).join(" "),
                out.code,
                out.stdout,
                out.stderr
            );
        }
        Ok(out.stdout)
    }
}
