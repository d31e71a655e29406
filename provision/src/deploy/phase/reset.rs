//! Reset: ask (unless --yes), then stop and disable every member, remove what apply installed and the data
//! dirs, and forget the members in the state file.

use std::io::{BufRead, Write};

use anyhow::anyhow;

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::service;
use crate::deploy::state::{self, State};
use crate::deploy::target::ServiceMode;

/// Tear the cluster down.
pub struct Reset;

impl Phase for Reset {
    fn title(&self) -> String {
        "Reset".into()
    }

    fn prepare(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        if ctx.opts.yes || ctx.ui.dry_run() {
            return Ok(());
        }
        let names: Vec<&str> = ctx.fleet.all().map(|h| h.name()).collect();
        print!(
            "This stops cluster {} and DELETES the data of {} ({}). Type the cluster name to go on: ",
            ctx.spec.name,
            names.len(),
            names.join(", ")
        );
        std::io::stdout().flush().ok();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| anyhow!("reading the confirmation: {e}"))?;
        if line.trim() != ctx.spec.name {
            anyhow::bail!("not confirmed; nothing changed (pass --yes to skip the question)");
        }
        Ok(())
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        ctx.fleet.each(&ctx.ui, ctx.fleet.all().collect(), |h, ui| {
            let what = match h.target.mode {
                ServiceMode::Systemd => format!(
                    "stop and disable cairn, remove its unit, config {}, rsyslog/logrotate/firewall drop-ins, \
                     binary and data dir {}",
                    h.target.config_dir, h.target.data_dir
                ),
                ServiceMode::Process => format!("stop cairn, delete data dir {}", h.target.data_dir),
            };
            if ui.gate(h.name(), &what) {
                h.sh(ui, "reset", &service::remove_script(&h.target, true))?;
            }
            Ok(())
        })?;
        if !ctx.ui.dry_run() {
            state::save(&ctx.opts.out, &State::default())?;
        }
        Ok(())
    }
}
