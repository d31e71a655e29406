//! Before any change to a running cluster: a snapshot through the Maintenance API, kept under
//! `OUT/apply/backups/` and verified (non-empty, its trailing sha256 matches, read back from disk).

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::state;

/// Snapshot a running cluster that is about to change.
pub struct Snapshot;

impl Phase for Snapshot {
    fn title(&self) -> String {
        "Snapshot".into()
    }

    fn should_run(&self, ctx: &RunCtx) -> bool {
        let running_changes = ctx.fleet.members().any(|h| {
            ctx.facts.get(h.name()).is_some_and(|f| f.pid.is_some()) && ctx.files.changes(h.name())
        });
        ctx.membership.observed.members.is_some()
            && (!ctx.membership.steps.is_empty() || running_changes)
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let path = state::dir(&ctx.opts.out)
            .join("backups")
            .join(format!("{}-{stamp}.db", ctx.spec.name));
        if !ctx
            .ui
            .gate("cluster", &format!("save a snapshot to {}", path.display()))
        {
            return Ok(());
        }
        let eps = ctx.fleet.endpoints();
        let (size, sum) = ctx
            .session
            .block_on(ctx.session.api().snapshot(&eps, &path))?;
        ctx.ui.info(&format!(
            "snapshot {} verified: {size} bytes, sha256 {}",
            path.display(),
            &sum[..16]
        ));
        ctx.membership.snapshot = Some(path);
        Ok(())
    }
}
