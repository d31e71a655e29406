//! Connect: one transport per member (ssh master connection or local shell), plus the hosts of members
//! the last apply left running that cluster.yaml no longer lists.

use std::path::PathBuf;

use anyhow::Context;

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::host::Host;
use crate::deploy::target::{ServiceMode, Target};
use crate::deploy::transport::local::Local;
use crate::deploy::transport::ssh::{Ssh, SshTarget};
use crate::deploy::transport::Transport;
use crate::deploy::{desired, state};
use crate::spec::TransportKind;

/// Connect to every host; `installs` hashes the binary too (apply needs it, reset does not).
pub struct Connect {
    /// The command installs or starts cairn.
    pub installs: bool,
}

fn transport(ctx: &RunCtx, t: &Target) -> Box<dyn Transport> {
    match t.transport {
        TransportKind::Local => Box::new(Local),
        TransportKind::Ssh => {
            let ssh = t.ssh.clone().unwrap_or_default();
            let key = ssh.key.map(|k| {
                let p = PathBuf::from(k);
                if p.is_relative() {
                    ctx.spec.base_dir.join(p)
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
                ctx.control_dir.path(),
                ctx.spec.apply.known_hosts.clone(),
            ))
        }
    }
}

impl Phase for Connect {
    fn title(&self) -> String {
        "Connect to hosts".into()
    }

    fn prepare(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        if self.installs {
            ctx.binary_sha = desired::sha256_file(&ctx.opts.binary).with_context(|| {
                format!(
                    "reading the cairn binary {} (build it with `cargo build -p cairn-node`, or pass --binary)",
                    ctx.opts.binary.display()
                )
            })?;
        }
        let mut targets: Vec<Target> = ctx
            .spec
            .nodes
            .iter()
            .map(|n| Target::of(&ctx.spec, n, &ctx.opts.binary))
            .collect();
        for (name, t) in state::load(&ctx.opts.out)?.members {
            if !targets.iter().any(|x| x.name == name) {
                ctx.removed.push(name);
                targets.push(t);
            }
        }
        ctx.hosts = targets
            .into_iter()
            .map(|t| {
                let tr = transport(ctx, &t);
                Host::new(t, tr)
            })
            .collect();
        Ok(())
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let removed = ctx.removed.clone();
        let results: Vec<(usize, anyhow::Result<String>)> = std::thread::scope(|s| {
            let hs: Vec<_> = ctx
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
            let h = &ctx.hosts[i];
            match r {
                Ok(user) => ctx.ui.host(
                    h.name(),
                    &format!(
                        "connected: {} as {user}{}{}",
                        h.describe(),
                        if h.sudo { " (sudo)" } else { "" },
                        if removed.contains(&h.target.name) {
                            " — no longer in cluster.yaml"
                        } else {
                            ""
                        }
                    ),
                ),
                Err(e) if removed.contains(&h.target.name) => {
                    // A removed member's machine may be gone for good; its membership is still removed.
                    ctx.ui.host(h.name(), &format!("warning: not reachable ({e:#}); it will only be removed from the membership"));
                    unreachable_removed.push(i);
                }
                Err(e) => failed.push(format!("{}: {e:#}", h.name())),
            }
        }
        for i in unreachable_removed.into_iter().rev() {
            ctx.hosts.remove(i);
        }
        if !failed.is_empty() {
            anyhow::bail!("failed on {} host(s): {}", failed.len(), failed.join("; "));
        }
        Ok(())
    }

    fn cleanup(&mut self, ctx: &mut RunCtx) {
        for h in &ctx.hosts {
            h.close();
        }
    }
}
