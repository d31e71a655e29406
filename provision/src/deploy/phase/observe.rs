//! Observe the cluster through its client API and decide the plan (deploy::plan), printing each step.

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::plan;

/// Ask the cluster for its members and decide what to do.
pub struct Observe;

impl Phase for Observe {
    fn title(&self) -> String {
        "Plan".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        ctx.membership.observed = ctx.observe();
        match &ctx.membership.observed.members {
            Some(ms) => {
                let list: Vec<String> = ms
                    .iter()
                    .map(|m| {
                        format!(
                            "{}{}{}",
                            if m.name.is_empty() {
                                "(unstarted)"
                            } else {
                                &m.name
                            },
                            if m.is_learner { " (learner)" } else { "" },
                            if m.healthy { "" } else { " (unhealthy)" }
                        )
                    })
                    .collect();
                ctx.ui.info(&format!(
                    "cluster answers: {} members: {}",
                    ms.len(),
                    list.join(", ")
                ));
            }
            None => ctx
                .ui
                .info("no member answers on its client URL (no running cluster)"),
        }
        ctx.membership.steps = plan::plan(&ctx.wanted(), &ctx.membership.observed)?;
        if ctx.membership.steps.is_empty() {
            ctx.ui
                .info("membership and running members already match cluster.yaml");
        }
        for s in &ctx.membership.steps {
            ctx.ui.info(&format!("step: {s}"));
        }
        Ok(())
    }
}
