//! Bootstrap or update: carry out the plan. Stopped members are started first and the plan is made again
//! once the cluster answers; then members are added (learner → start `existing` → promote) one at a time,
//! replaced, removed, and restarted one at a time with the leader last, each waiting for health.

use anyhow::{anyhow, Context};

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::host::Host;
use crate::deploy::plan::{self, Step};
use crate::deploy::service;
use crate::deploy::transport::quote;
use crate::deploy::ui::Ui;
use crate::spec::Bootstrap;

/// Execute the plan.
pub struct Converge;

/// Start `h` (state `existing` when `join`) and record what it was started with.
fn start(ctx: &RunCtx, h: &Host, ui: &Ui, join: bool) -> anyhow::Result<()> {
    let fp = ctx.files.fingerprint(h.name());
    let join = join.then(|| service::Join {
        initial_cluster: (ctx.spec.bootstrap == Bootstrap::Discovery)
            .then(|| ctx.spec.initial_cluster()),
    });
    h.sh(
        ui,
        "start cairn",
        &service::start_script(&h.target, join.as_ref()),
    )?;
    h.sh(
        ui,
        "record the start fingerprint",
        &format!(
            "printf '%s\\n' {} > {}",
            quote(&fp),
            quote(&h.target.stamp_file())
        ),
    )?;
    Ok(())
}

/// Move a data dir left by an earlier membership aside (never deleted without --purge).
fn move_data_aside(h: &Host, ui: &Ui) -> anyhow::Result<()> {
    let d = &h.target.data_dir;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let aside = format!("{d}.old-{stamp}");
    if ui.gate(
        h.name(),
        &format!("move the old data dir {d} aside to {aside}"),
    ) {
        h.sh(
            ui,
            "move old data aside",
            &format!(
                "[ -d {d} ] && mv {d} {a}; true",
                d = quote(d),
                a = quote(&aside)
            ),
        )?;
    }
    Ok(())
}

impl Converge {
    /// MemberRemove, retried: an answer lost while leadership changes does not mean the removal failed, so
    /// the membership is read again before trying once more.
    fn remove_member(&self, ctx: &RunCtx, name: &str, id: u64) -> anyhow::Result<()> {
        let eps = ctx.fleet.endpoints();
        let mut last = None;
        for _ in 0..5 {
            match ctx.session.block_on(ctx.session.api().remove(&eps, id)) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    ctx.ui.log(&format!("[{name}] member remove: {e:#}"));
                    last = Some(e);
                }
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
            let now = ctx.observe();
            if now
                .members
                .as_ref()
                .is_some_and(|ms| !ms.iter().any(|m| m.id == id))
            {
                return Ok(());
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no answer"))
            .context(format!("member remove {name} ({id:x})")))
    }

    fn add(&self, ctx: &RunCtx, name: &str, existing_id: Option<u64>) -> anyhow::Result<()> {
        let h = ctx.fleet.host(name)?;
        let id = match existing_id {
            Some(id) => id,
            None => {
                if !ctx.ui.gate(
                    name,
                    &format!(
                        "member add {name} --learner --peer-urls={}",
                        h.target.peer_url
                    ),
                ) {
                    return Ok(());
                }
                let id = ctx
                    .session
                    .block_on(
                        ctx.session
                            .api()
                            .add_learner(&ctx.fleet.endpoints(), &h.target.peer_url),
                    )
                    .with_context(|| format!("member add {name}"))?;
                ctx.ui.host(name, &format!("added as learner {id:x}"));
                id
            }
        };
        if !ctx
            .ui
            .gate(name, "start with --initial-cluster-state existing")
        {
            return Ok(());
        }
        let mark = ctx.leader_index().unwrap_or(0);
        start(ctx, h, &ctx.ui, true)?;
        ctx.wait_member(name, mark, true)?;
        ctx.ui
            .host(name, &format!("caught up (applied ≥ {mark}); promoting"));
        ctx.session
            .promote(&ctx.ui, name, &ctx.fleet.endpoints(), id)?;
        ctx.wait_member(name, 0, false)?;
        ctx.ui.host(name, "voting member, healthy");
        Ok(())
    }

    fn remove(&self, ctx: &RunCtx, name: &str, id: u64) -> anyhow::Result<()> {
        // A leader removing itself steps down mid-change; hand leadership to a remaining member first.
        let now = ctx.observe();
        if now.leader == Some(id) {
            let next = now
                .members
                .iter()
                .flatten()
                .find(|m| m.id != id && m.healthy && !m.is_learner)
                .map(|m| (m.id, m.name.clone()));
            if let Some((to, to_name)) = next {
                if ctx.ui.gate(
                    name,
                    &format!("move leadership to {to_name} before removing the leader"),
                ) {
                    let all: Vec<String> = ctx.fleet.endpoints_by_name().into_values().collect();
                    let asked = ctx
                        .session
                        .block_on(ctx.session.api().move_leader(&all, to));
                    if let Err(e) = asked {
                        // The call can fail after the move happened (a connection lost as the
                        // old leader steps down): what counts is who leads now.
                        let Some(now) = led_by_another(ctx, id) else {
                            return Err(e)
                                .with_context(|| format!("move-leader {name} → {to_name}"));
                        };
                        ctx.ui.log(&format!(
                            "move-leader {name} → {to_name} answered {e:#}, but {now:x} leads now"
                        ));
                    }
                }
            }
        }
        if !ctx.ui.gate(name, &format!("member remove {id:x}")) {
            return Ok(());
        }
        self.remove_member(ctx, name, id)?;
        if let Ok(h) = ctx.fleet.host(name) {
            let what = if ctx.opts.purge {
                format!("stop and disable cairn, delete {}", h.target.data_dir)
            } else {
                format!(
                    "stop and disable cairn (data dir {} kept; --purge deletes it)",
                    h.target.data_dir
                )
            };
            if ctx.ui.gate(name, &what) {
                let mut s = service::disable_script(&h.target);
                if ctx.opts.purge {
                    s.push_str(&format!("\nrm -rf {}", quote(&h.target.data_dir)));
                } else {
                    s.push_str(&format!("\nrm -f {}", quote(&h.target.stamp_file())));
                }
                h.sh(&ctx.ui, "stop and disable", &s)?;
            }
        }
        Ok(())
    }

    fn restart(&self, ctx: &RunCtx, name: &str) -> anyhow::Result<()> {
        let h = ctx.fleet.host(name)?;
        if !ctx
            .ui
            .gate(name, "restart cairn, then wait until healthy and caught up")
        {
            return Ok(());
        }
        let mark = ctx.leader_index().unwrap_or(0);
        h.sh(&ctx.ui, "stop cairn", &service::stop_script(&h.target))?;
        start(ctx, h, &ctx.ui, false)?;
        ctx.wait_member(name, mark, false)?;
        ctx.ui
            .host(name, &format!("healthy again, applied ≥ {mark}"));
        Ok(())
    }

    fn start_all(&self, ctx: &RunCtx, names: &[String], what: &str) -> anyhow::Result<()> {
        let hosts: Vec<&Host> = ctx
            .fleet
            .members()
            .filter(|h| names.iter().any(|n| n == h.name()))
            .collect();
        ctx.fleet.each(&ctx.ui, hosts, |h, ui| {
            if ui.gate(h.name(), what) {
                start(ctx, h, ui, false)?;
            }
            Ok(())
        })
    }
}

impl Phase for Converge {
    fn title(&self) -> String {
        "Bootstrap or update the cluster".into()
    }

    fn should_run(&self, ctx: &RunCtx) -> bool {
        !ctx.membership.steps.is_empty()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let starts: Vec<String> = ctx
            .membership
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Start(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        if let Some(Step::Bootstrap(names)) = ctx.membership.steps.first() {
            let names = names.clone();
            self.start_all(ctx, &names, "start with --initial-cluster-state new")?;
            return Ok(());
        }
        if !starts.is_empty() {
            self.start_all(ctx, &starts, "start (initialized, not running)")?;
            if ctx.ui.dry_run() {
                ctx.ui
                    .info("(dry run: the rest of the plan is decided once these members run)");
                return Ok(());
            }
            // Started members answer status once up (a quorum of them elects a leader).
            for n in &starts {
                ctx.wait_member(n, 0, true)?;
            }
            // Facts changed (they run now): observe again and plan what is left.
            for n in &starts {
                let fp = ctx.files.fingerprint(n);
                if let Some(f) = ctx.facts.get_mut(n) {
                    f.pid = Some(0);
                    f.stamp = Some(fp);
                }
            }
            ctx.membership.observed = ctx.observe();
            ctx.membership.steps = plan::plan(&ctx.wanted(), &ctx.membership.observed)?;
            for s in &ctx.membership.steps {
                ctx.ui.info(&format!("step: {s}"));
            }
        }
        let steps = ctx.membership.steps.clone();
        for step in &steps {
            match step {
                Step::Bootstrap(_) => {
                    return Err(anyhow!("bootstrap planned for a running cluster"))
                }
                Step::Start(n) => return Err(anyhow!("{n} still not running after its start")),
                Step::Add { name, stale_data } => {
                    if *stale_data {
                        move_data_aside(ctx.fleet.host(name)?, &ctx.ui)?;
                    }
                    self.add(ctx, name, None)?;
                }
                Step::Join(name) => {
                    let peer = &ctx.fleet.host(name)?.target.peer_url;
                    let id = ctx
                        .membership
                        .observed
                        .members
                        .iter()
                        .flatten()
                        .find(|m| m.peer_urls.contains(peer))
                        .map(|m| m.id)
                        .ok_or_else(|| anyhow!("{name}: no member with peer URL {peer}"))?;
                    self.add(ctx, name, Some(id))?;
                }
                Step::Replace { name, id } => {
                    if ctx.ui.gate(
                        name,
                        &format!("member remove {id:x} (its data dir is gone)"),
                    ) {
                        let h = ctx.fleet.host(name)?;
                        h.sh(&ctx.ui, "stop cairn", &service::stop_script(&h.target))?;
                        self.remove_member(ctx, name, *id)?;
                    }
                    move_data_aside(ctx.fleet.host(name)?, &ctx.ui)?;
                    self.add(ctx, name, None)?;
                }
                Step::Remove { name, id } => self.remove(ctx, name, *id)?,
                Step::Restart { name, .. } => self.restart(ctx, name)?,
            }
        }
        Ok(())
    }
}

/// The leader, once one other than `id` is seen within 5 s (None: `id` still leads, or none does).
fn led_by_another(ctx: &RunCtx, id: u64) -> Option<u64> {
    for _ in 0..10 {
        match ctx.observe().leader {
            Some(l) if l != id => return Some(l),
            _ => std::thread::sleep(std::time::Duration::from_millis(500)),
        }
    }
    None
}
