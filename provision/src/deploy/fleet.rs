//! The hosts of one command: a transport per member of cluster.yaml, plus the hosts of members the last
//! apply left running that cluster.yaml no longer lists. Opening a fleet connects nothing; `login` does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::anyhow;

use super::host::Host;
use super::state;
use super::target::{ServiceMode, Target};
use super::transport::local::Local;
use super::transport::ssh::{Ssh, SshTarget};
use super::transport::Transport;
use super::ui::Ui;
use crate::spec::{Spec, TransportKind};

/// Every host a command works on.
pub struct Fleet {
    /// Private directory for ssh control sockets, kept until the fleet is dropped (then removed).
    _control_dir: tempfile::TempDir,
    /// Members of cluster.yaml in file order, then removed ones.
    hosts: Vec<Host>,
    /// Names of hosts that are no longer in cluster.yaml.
    removed: Vec<String>,
}

fn transport(spec: &Spec, control_dir: &std::path::Path, t: &Target) -> Box<dyn Transport> {
    match t.transport {
        TransportKind::Local => Box::new(Local),
        TransportKind::Ssh => {
            let ssh = t.ssh.clone().unwrap_or_default();
            let key = ssh.key.map(|k| {
                let p = PathBuf::from(k);
                if p.is_relative() {
                    spec.base_dir.join(p)
                } else {
                    p
                }
            });
            Box::new(Ssh::new(
                SshTarget {
                    host: ssh.host.unwrap_or_else(|| t.address.clone()),
                    user: ssh.user,
                    port: ssh.port,
                    key,
                },
                control_dir,
                spec.apply.known_hosts.clone(),
            ))
        }
    }
}

impl Fleet {
    /// The hosts of `spec` and of the members the state file in `out` remembers; `binary` is what local
    /// members run.
    pub fn open(
        spec: &Spec,
        out: &std::path::Path,
        binary: &std::path::Path,
    ) -> anyhow::Result<Fleet> {
        // Socket paths are limited to ~100 bytes: a short private directory under /tmp.
        let control_dir = tempfile::Builder::new()
            .prefix("prov-")
            .tempdir_in("/tmp")
            .map_err(|e| anyhow!("creating a directory for ssh control sockets in /tmp: {e}"))?;
        let mut targets: Vec<Target> = spec
            .nodes
            .iter()
            .map(|n| Target::of(spec, n, binary))
            .collect();
        let mut removed = Vec::new();
        for (name, t) in state::load(out)?.members {
            if !targets.iter().any(|x| x.name == name) {
                removed.push(name);
                targets.push(t);
            }
        }
        let hosts = targets
            .into_iter()
            .map(|t| {
                let tr = transport(spec, control_dir.path(), &t);
                Host::new(t, tr)
            })
            .collect();
        Ok(Fleet {
            _control_dir: control_dir,
            hosts,
            removed,
        })
    }

    /// Every host, members first.
    pub fn all(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter()
    }

    /// Hosts that are members of cluster.yaml.
    pub fn members(&self) -> impl Iterator<Item = &Host> {
        self.hosts
            .iter()
            .filter(|h| !self.removed.contains(&h.target.name))
    }

    /// Whether `name` was a member that cluster.yaml no longer lists.
    pub fn is_removed(&self, name: &str) -> bool {
        self.removed.iter().any(|r| r == name)
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> anyhow::Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.target.name == name)
            .ok_or_else(|| anyhow!("no connected host for member {name}"))
    }

    /// Client endpoints (IPs) of the members of cluster.yaml.
    pub fn endpoints(&self) -> Vec<String> {
        self.members()
            .map(|h| h.target.client_endpoint.clone())
            .collect()
    }

    /// Client endpoints of every known host (cluster.yaml members first), by name.
    pub fn endpoints_by_name(&self) -> BTreeMap<String, String> {
        self.hosts
            .iter()
            .map(|h| (h.target.name.clone(), h.target.client_endpoint.clone()))
            .collect()
    }

    /// Log in to every host in parallel. A removed member's host that cannot be reached is dropped with a
    /// warning (its machine may be gone for good; its membership is still removed); any other failure
    /// fails the whole call, listing every host that failed.
    pub fn login(&mut self, ui: &Ui) -> anyhow::Result<()> {
        let results: Vec<(usize, anyhow::Result<String>)> = std::thread::scope(|s| {
            let hs: Vec<_> = self
                .hosts
                .iter_mut()
                .enumerate()
                .map(|(i, h)| {
                    s.spawn(move || {
                        let root = h.target.mode == ServiceMode::Systemd;
                        (i, h.login(root).map_err(anyhow::Error::from))
                    })
                })
                .collect();
            hs.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut failed = Vec::new();
        let mut unreachable_removed = Vec::new();
        for (i, r) in results {
            let h = &self.hosts[i];
            let removed = self.is_removed(h.name());
            match r {
                Ok(user) => ui.host(
                    h.name(),
                    &format!(
                        "connected: {} as {user}{}{}",
                        h.describe(),
                        if h.sudo { " (sudo)" } else { "" },
                        if removed {
                            " — no longer in cluster.yaml"
                        } else {
                            ""
                        }
                    ),
                ),
                Err(e) if removed => {
                    ui.host(
                        h.name(),
                        &format!("warning: not reachable ({e:#}); it will only be removed from the membership"),
                    );
                    unreachable_removed.push(i);
                }
                Err(e) => failed.push(format!("{}: {e:#}", h.name())),
            }
        }
        for i in unreachable_removed.into_iter().rev() {
            self.hosts.remove(i);
        }
        if !failed.is_empty() {
            anyhow::bail!("failed on {} host(s): {}", failed.len(), failed.join("; "));
        }
        Ok(())
    }

    /// Run `f` on every host of `hosts` in parallel; failures are collected per host and reported together.
    pub fn each<'a, F>(&'a self, ui: &'a Ui, hosts: Vec<&'a Host>, f: F) -> anyhow::Result<()>
    where
        F: Fn(&Host, &Ui) -> anyhow::Result<()> + Sync,
    {
        let errors: Vec<(String, anyhow::Error)> = std::thread::scope(|s| {
            let handles: Vec<_> = hosts
                .iter()
                .map(|h| {
                    let f = &f;
                    (h.name().to_string(), s.spawn(move || f(h, ui)))
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|(name, h)| match h.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((name, e)),
                    Err(_) => Some((name, anyhow!("worker panicked"))),
                })
                .collect()
        });
        if errors.is_empty() {
            return Ok(());
        }
        for (name, e) in &errors {
            ui.host(name, &format!("error: {e:#}"));
        }
        let list: Vec<String> = errors.iter().map(|(n, e)| format!("{n}: {e:#}")).collect();
        Err(anyhow!(
            "failed on {} host(s): {}",
            errors.len(),
            list.join("; ")
        ))
    }

    /// Close every shared connection.
    pub fn close(&self) {
        for h in &self.hosts {
            h.close();
        }
    }
}
