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
        if let Err(e) = ctx
            .session
            .wait_all_healthy(&ctx.ui, &ctx.member_endpoints())
        {
            show_logs(ctx);
            return Err(e);
        }
        ctx.ui.info(&format!(
            "cluster healthy {:.1} s after the command started",
            ctx.started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

/// The last lines each member logged, so a failed wait says why without another login.
fn show_logs(ctx: &RunCtx) {
    for h in ctx.fleet.members() {
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

/// Print the table; record the members for the next apply; say "no changes" when nothing changed.
pub struct Summary;

impl Phase for Summary {
    fn title(&self) -> String {
        "Summary".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        for line in ctx.session.table(&ctx.member_endpoints()).lines() {
            ctx.ui.info(line);
        }
        let st = State {
            members: ctx
                .fleet
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
