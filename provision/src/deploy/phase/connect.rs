//! Connect: log in to every host (ssh master connection or local shell), including the hosts of members
//! the last apply left running that cluster.yaml no longer lists.

use anyhow::Context;

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::desired;

/// Connect to every host; `installs` hashes the binary too (apply needs it, reset does not).
pub struct Connect {
    /// The command installs or starts cairn.
    pub installs: bool,
}

impl Phase for Connect {
    fn title(&self) -> String {
        "Connect to hosts".into()
    }

    fn prepare(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        if self.installs {
            ctx.files.binary_sha = desired::sha256_file(&ctx.opts.binary).with_context(|| {
                format!(
                    "reading the cairn binary {} (build it with `cargo build -p cairn-node`, or pass --binary)",
                    ctx.opts.binary.display()
                )
            })?;
        }
        Ok(())
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        ctx.fleet.login(&ctx.ui)
    }

    fn cleanup(&mut self, ctx: &mut RunCtx) {
        ctx.fleet.close();
    }
}
