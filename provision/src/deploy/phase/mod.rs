//! The phase machinery (k0sctl's shape): a phase has a title and `run`, plus optional hooks. Each command's
//! ordered list of phases is written once, in `deploy::commands`.

pub mod auth;
pub mod connect;
pub mod converge;
pub mod discovery;
pub mod facts;
pub mod health;
pub mod install;
pub mod observe;
pub mod render;
pub mod reset;
pub mod restore;
pub mod snapshot;
pub mod upload;

use super::ctx::RunCtx;

/// One step of a command over all hosts.
pub trait Phase {
    /// The heading printed before it runs.
    fn title(&self) -> String;
    /// Called for every phase before the first one runs (cheap checks of options).
    fn prepare(&mut self, _ctx: &mut RunCtx) -> anyhow::Result<()> {
        Ok(())
    }
    /// False skips the phase (nothing to do), silently.
    fn should_run(&self, _ctx: &RunCtx) -> bool {
        true
    }
    /// Do the work. Every change goes through `ctx.ui.gate`, which refuses in a dry run.
    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()>;
    /// What a dry run does; by default the same code, whose gates then only print.
    fn dry_run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        self.run(ctx)
    }
    /// Called for every phase that was prepared, after the run, whether it succeeded or not.
    fn cleanup(&mut self, _ctx: &mut RunCtx) {}
}

/// Ask `question` and go on only if the operator types the cluster name (skipped with --yes or in a
/// dry run).
pub fn confirm(ctx: &RunCtx, question: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    if ctx.opts.yes || ctx.ui.dry_run() {
        return Ok(());
    }
    print!("{question} Type the cluster name to go on: ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("reading the confirmation: {e}"))?;
    if line.trim() != ctx.spec.name {
        anyhow::bail!("not confirmed; nothing changed (pass --yes to skip the question)");
    }
    Ok(())
}

/// Run `phases` in order; stop at the first failure (after every phase's cleanup).
pub fn run_all(ctx: &mut RunCtx, mut phases: Vec<Box<dyn Phase>>) -> anyhow::Result<()> {
    let mut result = Ok(());
    for p in phases.iter_mut() {
        if let Err(e) = p.prepare(ctx) {
            result = Err(e.context(format!("preparing {}", p.title())));
            break;
        }
    }
    if result.is_ok() {
        for p in phases.iter_mut() {
            if !p.should_run(ctx) {
                continue;
            }
            ctx.ui.heading(&format!(
                "{} (+{:.1} s)",
                p.title(),
                ctx.started.elapsed().as_secs_f64()
            ));
            let r = if ctx.ui.dry_run() {
                p.dry_run(ctx)
            } else {
                p.run(ctx)
            };
            if let Err(e) = r {
                result = Err(e.context(format!("phase \"{}\"", p.title())));
                break;
            }
        }
    }
    for p in phases.iter_mut().rev() {
        p.cleanup(ctx);
    }
    result
}
