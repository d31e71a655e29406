//! Each command's ordered list of phases, in one place.

use std::path::Path;

use anyhow::Context;

use super::ctx::{Options, RunCtx};
use super::phase::{self, Phase};
use super::ui::Ui;
use crate::spec::Spec;

/// `apply` (and, with `opts.dry_run`, `plan`): connect → facts → check → render → plan → discovery
/// token → snapshot → upload → install → bootstrap/update → health → auth → summary.
pub fn apply_phases() -> Vec<Box<dyn Phase>> {
    vec![
        Box::new(phase::connect::Connect { installs: true }),
        Box::new(phase::facts::GatherFacts),
        Box::new(phase::facts::Check),
        Box::new(phase::render::Render),
        Box::new(phase::observe::Observe),
        Box::new(phase::discovery::DiscoveryToken),
        Box::new(phase::snapshot::Snapshot),
        Box::new(phase::upload::Upload),
        Box::new(phase::install::Install),
        Box::new(phase::converge::Converge),
        Box::new(phase::health::WaitHealthy),
        Box::new(phase::auth::Auth),
        Box::new(phase::health::Summary),
    ]
}

/// `reset`: connect → facts → reset.
pub fn reset_phases() -> Vec<Box<dyn Phase>> {
    vec![
        Box::new(phase::connect::Connect { installs: false }),
        Box::new(phase::facts::GatherFacts),
        Box::new(phase::reset::Reset),
    ]
}

/// `restore`: connect → facts → check the snapshot (ask) → render → stop → restore → start → health →
/// verify → auth → summary.
pub fn restore_phases(plan: &phase::restore::RestorePlan) -> Vec<Box<dyn Phase>> {
    use phase::restore::*;
    vec![
        Box::new(phase::connect::Connect { installs: true }),
        Box::new(phase::facts::GatherFacts),
        Box::new(CheckSnapshot(plan.clone())),
        Box::new(phase::render::Render),
        Box::new(StopMembers),
        Box::new(RestoreMembers(plan.clone())),
        Box::new(StartMembers),
        Box::new(phase::health::WaitHealthy),
        Box::new(VerifyRestore(plan.clone())),
        // A snapshot in etcd's format carries no users or roles: make them again.
        Box::new(phase::auth::Auth),
        Box::new(phase::health::Summary),
    ]
}

/// A context for `command`, logging to a new `OUT/apply/logs/<command>-<time>.log`; a dry run (plan)
/// writes nothing under OUT, so it keeps no log.
fn context(spec: Spec, opts: Options, command: &str) -> anyhow::Result<RunCtx> {
    let log = if opts.dry_run {
        None
    } else {
        let dir = super::state::dir(&opts.out).join("logs");
        Some(crate::files::create_unique(&dir, command, "log")?)
    };
    let ui = Ui::new(opts.dry_run, log);
    RunCtx::new(spec, opts, ui)
}

fn finish(ctx: &RunCtx, result: anyhow::Result<()>, done: &str) -> anyhow::Result<()> {
    let log = ctx
        .ui
        .log_path()
        .map(|p| format!("; full log: {}", p.display()))
        .unwrap_or_default();
    match result {
        Ok(()) => {
            let n = ctx.ui.changes();
            if n == 0 {
                println!("no changes{log}");
            } else if ctx.ui.dry_run() {
                println!("{n} change(s) would be made{log}");
            } else {
                println!(
                    "{done}: {n} change(s) in {:.1} s{log}",
                    ctx.started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Err(e) => Err(match ctx.ui.log_path() {
            Some(p) => e.context(format!("full log: {}", p.display())),
            None => e,
        }),
    }
}

/// Run `apply` (or its dry run).
pub fn apply(spec: Spec, opts: Options) -> anyhow::Result<()> {
    let name = if opts.dry_run { "plan" } else { "apply" };
    let mut ctx = context(spec.clone(), opts.clone(), name)?;
    let r = phase::run_all(&mut ctx, apply_phases());
    let again = r.is_ok() && ctx.files.second_pass;
    finish(&ctx, r, "applied")?;
    if !again {
        return Ok(());
    }
    if opts.dry_run {
        println!("CA rotation: a second pass then rolls the certificates signed by the new CA");
        return Ok(());
    }
    println!("==> CA rotation, second pass: every member trusts both CAs now; rolling the new certificates");
    let mut ctx = context(spec, opts, name)?;
    let r = phase::run_all(&mut ctx, apply_phases());
    finish(&ctx, r, "applied")
}

/// Run `reset`.
pub fn reset(spec: Spec, opts: Options) -> anyhow::Result<()> {
    let mut ctx = context(spec, opts, "reset")?;
    let r = phase::run_all(&mut ctx, reset_phases());
    finish(&ctx, r, "reset")
}

/// Run `restore` of `file` (or its dry run).
pub fn restore(spec: Spec, opts: Options, file: &Path) -> anyhow::Result<()> {
    let plan = phase::restore::RestorePlan::new(file, &spec.token);
    let mut ctx = context(spec, opts, "restore")?;
    let r = phase::run_all(&mut ctx, restore_phases(&plan));
    finish(&ctx, r, "restored")
}

/// `status`: the members table plus each member's certificate expiry (from the rendered files).
pub fn status(spec: Spec, opts: Options) -> anyhow::Result<()> {
    let ctx = context(spec, opts, "status")?;
    let observed = ctx.observe();
    match &observed.members {
        Some(ms) => println!(
            "cluster {}: {} members, leader {}",
            ctx.spec.name,
            ms.len(),
            observed
                .leader
                .map(|l| format!("{l:x}"))
                .unwrap_or_else(|| "none".into())
        ),
        None => println!("cluster {}: no member answers", ctx.spec.name),
    }
    println!("{}", ctx.session.table(&ctx.member_endpoints()));
    let listed: Vec<&str> = ctx
        .fleet
        .members()
        .map(|h| h.target.peer_url.as_str())
        .collect();
    for m in observed.members.iter().flatten() {
        if !m.peer_urls.iter().any(|u| listed.contains(&u.as_str())) {
            println!(
                "also a member, not in {}: {} ({:x}, {})",
                ctx.spec.file,
                if m.name.is_empty() {
                    "(unstarted)"
                } else {
                    &m.name
                },
                m.id,
                m.peer_urls.join(",")
            );
        }
    }
    for n in &ctx.spec.nodes {
        let cert = ctx
            .opts
            .out
            .join("nodes")
            .join(&n.name)
            .join("pki/server.crt");
        match std::fs::read_to_string(&cert).map(|t| crate::pki::inspect_pem(&t)) {
            Ok(Ok(info)) => {
                let left = (info.not_after - time::OffsetDateTime::now_utc()).whole_days();
                println!(
                    "{}: server certificate expires {} ({left} days)",
                    n.name,
                    info.not_after.date()
                );
            }
            _ => println!("{}: no server certificate at {}", n.name, cert.display()),
        }
    }
    if ctx
        .session
        .block_on(async {
            for h in ctx.fleet.members() {
                ctx.session.api().healthy(&h.target.client_endpoint).await?;
            }
            anyhow::Ok(())
        })
        .is_err()
    {
        anyhow::bail!("not every member is healthy");
    }
    Ok(())
}

/// `backup`: a verified snapshot into `file`.
pub fn backup(spec: Spec, opts: Options, file: &Path) -> anyhow::Result<()> {
    let ctx = context(spec, opts, "backup")?;
    let eps = ctx.fleet.endpoints();
    let (size, sum) = ctx
        .session
        .block_on(ctx.session.api().snapshot(&eps, file))
        .with_context(|| format!("snapshot to {}", file.display()))?;
    println!(
        "snapshot {} verified: {size} bytes, sha256 {sum}",
        file.display()
    );
    Ok(())
}
