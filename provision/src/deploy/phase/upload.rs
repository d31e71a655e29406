//! Prepare hosts (the `cairn` user and directories, on systemd hosts) and upload the files that differ,
//! each atomically with its owner and mode.

use anyhow::Context;

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::host::Host;
use crate::deploy::target::ServiceMode;
use crate::deploy::transport::quote;
use crate::deploy::ui::Ui;

/// Create what the files need, then upload them.
pub struct Upload;

/// Prints one word per missing piece: `user`, `dirs`.
fn missing_script(h: &Host) -> String {
    let t = &h.target;
    format!(
        "id -u cairn >/dev/null 2>&1 || echo user\n\
         [ -d {cfg}/pki ] && [ -d {data} ] && [ \"$(stat -c %U {data})\" = cairn ] || echo dirs\ntrue",
        cfg = quote(&t.config_dir),
        data = quote(&t.data_dir),
    )
}

fn prepare(h: &Host, ui: &Ui) -> anyhow::Result<()> {
    if h.target.mode != ServiceMode::Systemd {
        return Ok(());
    }
    let t = &h.target;
    let missing = h.sh(ui, "check user and directories", &missing_script(h))?;
    if missing.contains("user")
        && ui.gate(
            h.name(),
            "create system user cairn (no login, home = data dir)",
        )
    {
        h.sh(
            ui,
            "create user cairn",
            &format!(
                "useradd --system --user-group --no-create-home --home-dir {} --shell /usr/sbin/nologin cairn",
                quote(&t.data_dir)
            ),
        )?;
    }
    if missing.contains("dirs")
        && ui.gate(
            h.name(),
            &format!(
                "create {} (root:cairn 0750), its pki/ and {} (cairn 0700)",
                t.config_dir, t.data_dir
            ),
        )
    {
        h.sh(
            ui,
            "create directories",
            &format!(
                "set -e\ninstall -d -o root -g cairn -m 0750 {cfg}\ninstall -d -o cairn -g cairn -m 0700 {cfg}/pki\n\
                 install -d -o cairn -g cairn -m 0700 {data}",
                cfg = quote(&t.config_dir),
                data = quote(&t.data_dir),
            ),
        )?;
    }
    Ok(())
}

impl Phase for Upload {
    fn title(&self) -> String {
        "Upload files".into()
    }

    fn should_run(&self, ctx: &RunCtx) -> bool {
        ctx.files.changed.values().any(|c| !c.is_empty())
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let hosts: Vec<&Host> = ctx
            .fleet
            .members()
            .filter(|h| ctx.files.changes(h.name()))
            .collect();
        ctx.fleet.each(&ctx.ui, hosts, |h, ui| {
            prepare(h, ui)?;
            for d in ctx
                .files
                .changed
                .get(h.name())
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let what = format!(
                    "upload {} (mode {:o}{})",
                    d.remote,
                    d.mode,
                    d.owner
                        .as_deref()
                        .map(|o| format!(", owner {o}"))
                        .unwrap_or_default()
                );
                if !ui.gate(h.name(), &what) {
                    continue;
                }
                let bytes = d
                    .bytes()
                    .with_context(|| format!("reading the source of {}", d.remote))?;
                h.upload(ui, &d.remote, &bytes, d.mode, d.owner.as_deref())?;
            }
            Ok(())
        })
    }
}
