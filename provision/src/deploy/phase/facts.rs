//! Gather facts (OS, init system, clock, member process, binary, data dir) and check them: systemd where
//! the member runs as a unit, same CPU architecture as the binary, clocks within the allowed skew (the
//! certificates carry validity times), one member per ssh host.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::facts;
use crate::deploy::target::ServiceMode;
use crate::spec::{FirewallBackend, TransportKind};

/// Gather facts from every host.
pub struct GatherFacts;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Phase for GatherFacts {
    fn title(&self) -> String {
        "Gather facts".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let found = std::sync::Mutex::new(BTreeMap::new());
        ctx.fleet
            .each(&ctx.ui, ctx.fleet.all().collect(), |h, ui| {
                let before = now();
                let clock = h.sh(ui, "read the clock", "date +%s.%N")?;
                let after = now();
                let mut f = facts::parse(&h.sh(ui, "gather facts", &facts::script(&h.target))?);
                // The host's clock minus ours, taken at the midpoint of a round trip that does nothing else.
                f.clock = clock.trim().parse::<f64>().unwrap_or(0.0) - (before + after) / 2.0;
                let running = match (f.pid, &f.version) {
                    (Some(pid), Some(v)) => format!("{v} running (pid {pid})"),
                    (Some(pid), None) => format!("cairn running (pid {pid})"),
                    (None, Some(v)) => format!("{v} installed, not running"),
                    (None, None) => "no cairn".into(),
                };
                ui.host(
                    h.name(),
                    &format!(
                        "{} {}{}, {}; {running}; data dir {}; clock {:+.2} s",
                        f.os,
                        f.arch,
                        f.container
                            .as_deref()
                            .map(|c| format!(" ({c} container)"))
                            .unwrap_or_default(),
                        if f.systemd { "systemd" } else { "no systemd" },
                        if f.has_data { "initialized" } else { "empty" },
                        f.clock
                    ),
                );
                found
                    .lock()
                    .map_err(|_| anyhow!("facts lock poisoned"))?
                    .insert(h.name().to_string(), f);
                Ok(())
            })?;
        ctx.facts = found
            .into_inner()
            .map_err(|_| anyhow!("facts lock poisoned"))?;
        Ok(())
    }
}

/// Refuse to go on when a host cannot run its member correctly.
pub struct Check;

impl Phase for Check {
    fn title(&self) -> String {
        "Check hosts".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let max = f64::from(ctx.spec.apply.max_clock_skew_seconds);
        let local_arch = std::env::consts::ARCH;
        let mut ssh_hosts: BTreeMap<String, String> = BTreeMap::new();
        for h in ctx.fleet.members() {
            let Some(f) = ctx.facts.get(h.name()) else {
                continue;
            };
            if h.target.mode == ServiceMode::Systemd && !f.systemd {
                problems.push(format!(
                    "{}: systemd is not running on this host; cairn is installed as a systemd unit (use \
                     `transport: local` for this machine)",
                    h.name()
                ));
            }
            if h.target.mode == ServiceMode::Systemd && !f.arch.is_empty() && f.arch != local_arch {
                problems.push(format!(
                    "{}: host is {} but {} is built for {local_arch}; pass --binary with a {} build",
                    h.name(),
                    f.arch,
                    ctx.opts.binary.display(),
                    f.arch
                ));
            }
            if f.pid.is_none() {
                for port in [h.target.client_port, h.target.peer_port] {
                    if f.listening.contains(&port) {
                        problems.push(format!(
                            "{}: port {port} is taken by another program while the member is stopped \
                             (`ss -ltnp 'sport = :{port}'` on the host shows which); stop it or choose other ports",
                            h.name()
                        ));
                    }
                }
            }
            if f.clock.abs() > max {
                problems.push(format!(
                    "{}: clock differs from this machine's by {:+.1} s (limit {max} s): certificates may be \
                     \"not yet valid\" there; sync the clocks (chrony/systemd-timesyncd)",
                    h.name(),
                    f.clock
                ));
            }
            let needs = match h.target.firewall {
                FirewallBackend::Nftables => Some("nft"),
                FirewallBackend::Iptables => Some("iptables-restore"),
                FirewallBackend::Firewalld => Some("firewall-cmd"),
                FirewallBackend::None => None,
            };
            if let Some(tool) = needs.filter(|_| h.target.mode == ServiceMode::Systemd) {
                if !f.tools.iter().any(|t| t == tool) {
                    problems.push(format!(
                        "{}: firewall backend needs `{tool}`, which is not installed on the host",
                        h.name()
                    ));
                }
            }
            if h.target.transport == TransportKind::Ssh {
                let dest = h.describe();
                if let Some(other) = ssh_hosts.insert(dest.clone(), h.name().to_string()) {
                    problems.push(format!(
                        "{} and {other} both log in to {dest}: one systemd unit per host; give them separate \
                         machines or use `transport: local`",
                        h.name()
                    ));
                }
            }
        }
        // Skew between hosts matters too: a certificate issued on one is checked by the others.
        let clocks: Vec<f64> = ctx.facts.values().map(|f| f.clock).collect();
        if let (Some(lo), Some(hi)) = (
            clocks.iter().cloned().reduce(f64::min),
            clocks.iter().cloned().reduce(f64::max),
        ) {
            if hi - lo > max {
                problems.push(format!(
                    "clocks of the hosts differ by {:.1} s (limit {max} s); sync them",
                    hi - lo
                ));
            } else {
                ctx.ui.info(&format!(
                    "clocks within {:.2} s of each other and of this machine",
                    hi - lo
                ));
            }
        }
        if problems.is_empty() {
            ctx.ui.info("every host can run its member");
            return Ok(());
        }
        for p in &problems {
            ctx.ui.info(&format!("problem: {p}"));
        }
        Err(anyhow!(
            "{} problem(s): {}",
            problems.len(),
            problems.join("; ")
        ))
    }
}
