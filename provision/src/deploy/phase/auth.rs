//! `auth:`: once the cluster is healthy, its users, roles and permissions are made what cluster.yaml says
//! (deploy::auth decides, deploy::auth_api talks), each change through the gate, and auth is enabled.
//! provision's own `admin` user gets the root role before AuthEnable, so the next apply, status and backup
//! (which log in with the admin certificate and no token) keep every right.

use super::Phase;
use crate::deploy::auth::{self, AuthState, Managed};
use crate::deploy::auth_api;
use crate::deploy::ctx::RunCtx;
use crate::deploy::session::short;

/// Users, roles, grants and AuthEnable.
pub struct Auth;

impl Phase for Auth {
    fn title(&self) -> String {
        "Auth".into()
    }

    fn should_run(&self, ctx: &RunCtx) -> bool {
        ctx.spec.auth.is_some()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let Some(want) = ctx.spec.auth.clone() else {
            return Ok(());
        };
        let eps = ctx.fleet.endpoints();
        let managed = Managed::load(&ctx.opts.out)?;
        let have = if ctx.ui.dry_run() && ctx.membership.observed.members.is_none() {
            // A plan before the first apply has no cluster to ask: everything would be created.
            ctx.ui
                .info("no running cluster: the changes below start from no users and roles");
            AuthState::default()
        } else {
            read_or_assume_none(ctx, &eps)?
        };
        let changes = auth::changes(&want, &have, &managed);
        if changes.is_empty() {
            ctx.ui
                .info("users, roles and permissions match cluster.yaml; authentication is enabled");
        }
        for change in &changes {
            if ctx.ui.gate("auth", &change.to_string()) {
                ctx.session
                    .block_on(auth_api::make(ctx.session.api(), &eps, change))?;
            }
        }
        for role in have.roles.keys() {
            if role != auth::ROOT
                && !want.roles.iter().any(|r| &r.name == role)
                && !managed.roles.contains(role)
            {
                ctx.ui.info(&format!(
                    "role {role} is not in cluster.yaml and was not made by provision: left as it is"
                ));
            }
        }
        if !ctx.ui.dry_run() {
            Managed::of(&want).save(&ctx.opts.out)?;
        }
        Ok(())
    }
}

/// The cluster's users and roles; in a plan a cluster that does not answer is taken to have none.
fn read_or_assume_none(ctx: &RunCtx, eps: &[String]) -> anyhow::Result<AuthState> {
    match ctx
        .session
        .block_on(auth_api::read_state(ctx.session.api(), eps))
    {
        Ok(have) => Ok(have),
        Err(e) if ctx.ui.dry_run() => {
            ctx.ui.info(&format!(
                "cannot read the cluster's users and roles ({}): the changes below start from none",
                short(&e)
            ));
            Ok(AuthState::default())
        }
        Err(e) => Err(e),
    }
}
