//! Activate what the uploaded files changed: daemon-reload for units, rsyslog restart for its rule, the
//! firewall rules loaded (and, for nftables, a oneshot unit that loads them at boot).

use std::collections::BTreeSet;

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::desired::Effect;
use crate::deploy::host::Host;
use crate::deploy::target::ServiceMode;
use crate::deploy::transport::quote;
use crate::spec::FirewallBackend;

/// Reload what changed.
pub struct Install;

fn effects(ctx: &RunCtx, h: &Host) -> BTreeSet<Effect> {
    ctx.files
        .changed
        .get(h.name())
        .map(|c| c.iter().map(|d| d.effect).collect())
        .unwrap_or_default()
}

fn firewall_script(h: &Host) -> Option<String> {
    let t = &h.target;
    match t.firewall {
        FirewallBackend::Nftables => Some(
            "systemctl daemon-reload\nsystemctl enable --quiet cairn-firewall.service\n\
             systemctl restart cairn-firewall.service"
                .into(),
        ),
        // --noflush keeps every other chain; hooking CAIRN-INPUT once makes a reload idempotent.
        FirewallBackend::Iptables => Some(format!(
            "set -e\niptables-restore --noflush < {v4}\n\
             iptables -C INPUT -j CAIRN-INPUT 2>/dev/null || iptables -I INPUT -j CAIRN-INPUT\n\
             if [ -f {v6} ]; then ip6tables-restore --noflush < {v6}; \
             ip6tables -C INPUT -j CAIRN-INPUT 2>/dev/null || ip6tables -I INPUT -j CAIRN-INPUT; fi",
            v4 = quote(&t.firewall_file("cairn.iptables")),
            v6 = quote(&t.firewall_file("cairn.ip6tables")),
        )),
        FirewallBackend::Firewalld => Some(format!("sh {}", quote(&t.firewall_file("cairn-firewalld.sh")))),
        FirewallBackend::None => None,
    }
}

impl Phase for Install {
    fn title(&self) -> String {
        "Install".into()
    }

    fn should_run(&self, ctx: &RunCtx) -> bool {
        ctx.fleet.members().any(|h| {
            h.target.mode == ServiceMode::Systemd
                && effects(ctx, h)
                    .iter()
                    .any(|e| matches!(e, Effect::Unit | Effect::Rsyslog | Effect::Firewall))
        })
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let hosts: Vec<&Host> = ctx
            .fleet
            .members()
            .filter(|h| h.target.mode == ServiceMode::Systemd)
            .collect();
        ctx.fleet.each(&ctx.ui, hosts, |h, ui| {
            let e = effects(ctx, h);
            if e.contains(&Effect::Unit)
                && ui.gate(h.name(), "systemctl daemon-reload (unit changed)")
            {
                h.sh(ui, "daemon-reload", "systemctl daemon-reload")?;
            }
            if e.contains(&Effect::Rsyslog)
                && ui.gate(
                    h.name(),
                    "restart rsyslog (cairn's lines go to their own file)",
                )
            {
                let dir = std::path::Path::new(&ctx.spec.log_file)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "/var/log".into());
                h.sh(
                    ui,
                    "restart rsyslog",
                    &format!(
                        "mkdir -p {}\nsystemctl restart rsyslog.service",
                        quote(&dir)
                    ),
                )?;
            }
            if e.contains(&Effect::Firewall) {
                if let Some(script) = firewall_script(h) {
                    if ui.gate(
                        h.name(),
                        &format!("load {:?} firewall rules", h.target.firewall).to_lowercase(),
                    ) {
                        h.sh(ui, "load firewall rules", &script)?;
                    }
                }
            }
            Ok(())
        })
    }
}
