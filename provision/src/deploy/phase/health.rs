//! Wait for health, then the summary table (member, address, version, leader, raft index, health) and the
//! state file for the next apply.

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::state::{self, State};
use crate::deploy::target::ServiceMode;
use crate::deploy::transport::quote;

/// Wait until every member of cluster.yaml is a healthy voter.
pub struct WaitHealthy;

impl Phase for WaitHealthy {
    fn title(&self) -> String {
        "Wait for health".into()
    }

    fn should_run(&self, ctx: &RunCtx) -> bool {
        !ctx.ui.dry_run()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let took = match ctx.wait_all_healthy() {
            Ok(t) => t,
            Err(e) => {
                show_logs(ctx);
                return Err(e);
            }
        };
        ctx.ui.info(&format!(
            "cluster healthy {:.1} s after the command started",
            took.as_secs_f64()
        ));
        Ok(())
    }
}

/// The last lines each member logged, so a failed wait says why without another login.
fn show_logs(ctx: &RunCtx) {
    for h in ctx.members() {
        let script = match h.target.mode {
            ServiceMode::Systemd => {
                "journalctl -u cairn.service -n 6 --no-pager -o cat 2>&1; systemctl is-failed cairn.service".into()
            }
            ServiceMode::Process => format!("tail -n 6 {} 2>&1", quote(&h.target.process_log())),
        };
        if let Ok(text) = h.sh(&ctx.ui, "read the member's log", &script) {
            for line in text.lines() {
                ctx.ui.host(h.name(), &format!("log: {line}"));
            }
        }
    }
}

/// One row per member of the summary table.
pub fn table(ctx: &RunCtx) -> String {
    let mut rows = vec![[
        "MEMBER".to_string(),
        "ADDRESS".into(),
        "ID".into(),
        "VERSION".into(),
        "LEADER".into(),
        "RAFT INDEX".into(),
        "HEALTH".into(),
    ]];
    for h in ctx.members() {
        let ep = &h.target.client_endpoint;
        let (status, health) = ctx.rt.block_on(async {
            let s = ctx.api.status(ep).await;
            let ok = ctx.api.healthy(ep).await;
            (s, ok)
        });
        let row = match status {
            Ok(s) => [
                h.name().to_string(),
                ep.clone(),
                format!("{:x}", s.id),
                s.version,
                if s.leader == s.id {
                    "yes".into()
                } else {
                    "no".into()
                },
                s.raft_index.to_string(),
                match health {
                    Ok(()) => "healthy".into(),
                    Err(e) => format!("unhealthy: {e:#}"),
                },
            ],
            Err(e) => [
                h.name().to_string(),
                ep.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("unreachable: {e:#}"),
            ],
        };
        rows.push(row);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Print the table; record the members for the next apply; say "no changes" when nothing changed.
pub struct Summary;

impl Phase for Summary {
    fn title(&self) -> String {
        "Summary".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        for line in table(ctx).lines() {
            ctx.ui.info(line);
        }
        let st = State {
            members: ctx
                .members()
                .map(|h| (h.name().to_string(), h.target.clone()))
                .collect(),
        };
        state::save(&ctx.opts.out, &st)?;
        Ok(())
    }

    fn dry_run(&mut self, _ctx: &mut RunCtx) -> anyhow::Result<()> {
        Ok(())
    }
}
