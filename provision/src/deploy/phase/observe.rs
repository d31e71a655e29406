//! Observe the cluster through its client API and decide the plan (deploy::plan), printing each step.

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::plan::{self, Observed, Wanted};

/// Ask the cluster for its members and decide what to do.
pub struct Observe;

/// What cluster.yaml wants, with each host's state from its facts.
pub fn wanted(ctx: &RunCtx) -> Vec<Wanted> {
    ctx.members()
        .map(|h| {
            let f = ctx.facts.get(h.name()).cloned().unwrap_or_default();
            let fp = ctx.fingerprint(h.name());
            let running = f.pid.is_some();
            Wanted {
                name: h.name().to_string(),
                peer_url: h.target.peer_url.clone(),
                has_data: f.has_data,
                running,
                // The stamp written at (re)start covers the binary and every file cairn reads at start.
                stale: running && f.stamp.as_deref() != Some(fp.as_str()),
            }
        })
        .collect()
}

/// Read the membership from whichever known member answers.
pub fn observe(ctx: &RunCtx) -> Observed {
    let by_name = ctx.endpoints_by_name();
    let eps: Vec<String> = by_name.values().cloned().collect();
    match ctx.rt.block_on(ctx.api.members(&eps, &by_name)) {
        Ok((members, leader)) => Observed {
            members: Some(members),
            leader,
        },
        Err(e) => {
            ctx.ui.log(&format!("no member answered: {e:#}"));
            Observed::default()
        }
    }
}

impl Phase for Observe {
    fn title(&self) -> String {
        "Plan".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        ctx.observed = observe(ctx);
        match &ctx.observed.members {
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
        ctx.steps = plan::plan(&wanted(ctx), &ctx.observed)?;
        if ctx.steps.is_empty() {
            ctx.ui
                .info("membership and running members already match cluster.yaml");
        }
        for s in &ctx.steps {
            ctx.ui.info(&format!("step: {s}"));
        }
        Ok(())
    }
}
