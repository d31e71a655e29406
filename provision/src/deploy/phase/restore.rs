//! `provision restore`: whole-cluster disaster recovery from one snapshot, etcd's documented procedure
//! run on every member at once. Check the snapshot (hash, then `cairn snapshot status`), ask, stop every
//! member, move each data dir aside (kept, never deleted), `cairn snapshot restore` each member as part
//! of a new cluster (new `--initial-cluster-token`, so nothing of the old cluster can join it), start,
//! wait for health, then check that every member reports the same revision and HashKV.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use super::Phase;
use crate::deploy::cluster::verify_snapshot;
use crate::deploy::ctx::RunCtx;
use crate::deploy::service;
use crate::deploy::target::ServiceMode;
use crate::deploy::transport::quote;
use crate::spec::Bootstrap;

/// What every restore phase needs to know: the snapshot, the new token, a stamp naming this restore.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// The snapshot file on this machine.
    pub file: PathBuf,
    /// `--initial-cluster-token` of the restored cluster.
    pub token: String,
    /// Suffix of the moved-aside data dirs (`DATA_DIR.before-restore-STAMP`).
    pub stamp: i64,
}

impl RestorePlan {
    /// A restore of `file` for the cluster whose token is `token`, stamped now.
    pub fn new(file: &Path, token: &str) -> RestorePlan {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        RestorePlan {
            file: file.to_path_buf(),
            token: format!("{token}-restored-{stamp}"),
            stamp,
        }
    }
}

/// What `cairn snapshot status` reports about the file.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Check the file as `cairn snapshot status` (the local binary) reads it, after its SHA-256 trailer.
pub fn snapshot_status(binary: &Path, file: &Path) -> anyhow::Result<SnapshotStatus> {
    let data = std::fs::read(file).with_context(|| format!("-f {}", file.display()))?;
    verify_snapshot(&data).with_context(|| format!("-f {}", file.display()))?;
    let out = std::process::Command::new(binary)
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .output()
        .with_context(|| format!("running {} snapshot status", binary.display()))?;
    if !out.status.success() {
        bail!(
            "-f {}: not a snapshot cairn can restore: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading `cairn snapshot status` of {}", file.display()))
}

/// Check the snapshot and the cluster file, then ask (unless --yes or a dry run).
pub struct CheckSnapshot(pub RestorePlan);

impl Phase for CheckSnapshot {
    fn title(&self) -> String {
        "Check the snapshot".into()
    }

    fn prepare(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        if ctx.spec.bootstrap != Bootstrap::Static {
            bail!(
                "provision restore supports `bootstrap: static` clusters only ({} bootstraps otherwise): \
                 restore each member by hand with `cairn snapshot restore` (README, Migrating)",
                ctx.spec.file
            );
        }
        let st = snapshot_status(&ctx.opts.binary, &self.0.file)?;
        println!(
            "snapshot {}: revision {}, {} keys, {} bytes, hash {:x}",
            self.0.file.display(),
            st.revision,
            st.total_key,
            st.total_size,
            st.hash
        );
        let names: Vec<&str> = ctx.fleet.members().map(|h| h.name()).collect();
        let question = format!(
            "This stops cluster {} ({}), moves every data dir aside (kept as DATA_DIR.before-restore-{}) \
             and restores all members from {} as a new cluster.",
            ctx.spec.name,
            names.join(", "),
            self.0.stamp,
            self.0.file.display()
        );
        super::confirm(ctx, &question)
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        ctx.ui.info(&format!(
            "restoring {} into {} members with --initial-cluster-token {}",
            self.0.file.display(),
            ctx.fleet.members().count(),
            self.0.token
        ));
        Ok(())
    }
}

/// Stop every member of the cluster file (all must be down before any data dir is replaced).
pub struct StopMembers;

impl Phase for StopMembers {
    fn title(&self) -> String {
        "Stop members".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        ctx.fleet
            .each(&ctx.ui, ctx.fleet.members().collect(), |h, ui| {
                if ui.gate(h.name(), "stop cairn") {
                    h.sh(ui, "stop cairn", &service::stop_script(&h.target))?;
                }
                Ok(())
            })
    }
}

/// On each member: upload the snapshot, move the data dir aside, `cairn snapshot restore`, keep the old
/// dir's owner.
pub struct RestoreMembers(pub RestorePlan);

impl Phase for RestoreMembers {
    fn title(&self) -> String {
        "Restore members".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let data = if ctx.ui.dry_run() {
            Vec::new()
        } else {
            std::fs::read(&self.0.file).with_context(|| self.0.file.display().to_string())?
        };
        let initial_cluster = ctx.spec.initial_cluster();
        let plan = &self.0;
        ctx.fleet.each(&ctx.ui, ctx.fleet.members().collect(), |h, ui| {
            let t = &h.target;
            let aside = format!("{}.before-restore-{}", t.data_dir, plan.stamp);
            let what = format!(
                "move data dir {} aside to {aside} (kept) and restore {} into it",
                t.data_dir,
                plan.file.display()
            );
            if !ui.gate(h.name(), &what) {
                return Ok(());
            }
            let upload = format!("{}.restore-{}.db", t.data_dir, plan.stamp);
            h.upload(ui, &upload, &data, 0o600, None)?;
            let owner_fallback = match t.mode {
                ServiceMode::Systemd => "elif id cairn >/dev/null 2>&1; then chown -R cairn:cairn \"$d\"\n",
                ServiceMode::Process => "",
            };
            let script = format!(
                "set -e\nd={d}\na={a}\nf={f}\nif [ -e \"$d\" ]; then mv \"$d\" \"$a\"; fi\n\
                 {bin} snapshot restore \"$f\" --name={name} --initial-cluster={ic} \
                 --initial-cluster-token={token} --initial-advertise-peer-urls={peer} --data-dir=\"$d\"\n\
                 if [ -d \"$a\" ]; then chown -R --reference=\"$a\" \"$d\"\n{owner_fallback}fi\n\
                 rm -f \"$f\"",
                d = quote(&t.data_dir),
                a = quote(&aside),
                f = quote(&upload),
                bin = quote(&t.binary),
                name = quote(&t.name),
                ic = quote(&initial_cluster),
                token = quote(&plan.token),
                peer = quote(&t.peer_url),
            );
            let out = h.sh(ui, "cairn snapshot restore", &script)?;
            for line in out.lines() {
                ui.host(h.name(), line);
            }
            Ok(())
        })
    }
}

/// Start every member (they find each other from the restored membership). A member whose installed
/// files are what apply would install gets apply's start fingerprint, so the next apply changes nothing;
/// one whose files differ gets none, so the next apply rolls it.
pub struct StartMembers;

impl Phase for StartMembers {
    fn title(&self) -> String {
        "Start members".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        ctx.fleet
            .each(&ctx.ui, ctx.fleet.members().collect(), |h, ui| {
                if !ui.gate(h.name(), "start cairn") {
                    return Ok(());
                }
                h.sh(ui, "start cairn", &service::start_script(&h.target, None))?;
                if ctx
                    .files
                    .changed
                    .get(h.name())
                    .is_some_and(|c| c.is_empty())
                {
                    let record = format!(
                        "printf '%s\\n' {} > {}",
                        quote(&ctx.files.fingerprint(h.name())),
                        quote(&h.target.stamp_file())
                    );
                    h.sh(ui, "record the start fingerprint", &record)?;
                }
                Ok(())
            })
    }
}

/// Every member must report the same revision and HashKV, at least the snapshot's revision.
pub struct VerifyRestore(pub RestorePlan);

impl Phase for VerifyRestore {
    fn title(&self) -> String {
        "Verify revision and HashKV".into()
    }

    fn should_run(&self, ctx: &RunCtx) -> bool {
        !ctx.ui.dry_run()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let want = snapshot_status(&ctx.opts.binary, &self.0.file)?.revision;
        let eps: Vec<(String, String)> = ctx
            .fleet
            .members()
            .map(|h| (h.name().to_string(), h.target.client_endpoint.clone()))
            .collect();
        let seen = ctx.session.block_on(async {
            let mut seen = Vec::new();
            for (name, ep) in &eps {
                let mut c = ctx.session.api().connect(ep).await?;
                let r = c
                    .hash_kv(0)
                    .await
                    .with_context(|| format!("{name}: HashKV"))?;
                let rev = r.header().map(|h| h.revision()).unwrap_or_default();
                seen.push((name.clone(), rev, r.hash(), r.compact_version()));
            }
            anyhow::Ok(seen)
        })?;
        for (name, rev, hash, compacted) in &seen {
            ctx.ui.host(
                name,
                &format!("revision {rev}, compacted at {compacted}, HashKV {hash}"),
            );
        }
        let first = seen.first().ok_or_else(|| anyhow!("no member to verify"))?;
        if seen.iter().any(|s| (s.1, s.2) != (first.1, first.2)) {
            bail!("the restored members disagree on revision or HashKV (see above)");
        }
        if first.1 < want {
            bail!(
                "restored members are at revision {} but the snapshot holds revision {want}",
                first.1
            );
        }
        ctx.ui.info(&format!(
            "restored: {} members agree at revision {} (HashKV {}); old data dirs kept as *.before-restore-{}",
            seen.len(),
            first.1,
            first.2,
            self.0.stamp
        ));
        Ok(())
    }
}
