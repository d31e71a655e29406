//! Render: the same render-to-dir as `provision render` (idempotent: certificates are kept unless they
//! must be reissued), then which files each host lacks or has with other content.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context};

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::desired::{self, Desired};
use crate::render::output::{render_dir, Format};
use crate::spec::TransportKind;

/// `remote` (a path on this machine, relative to where provision runs) as it lies in the scratch copy
/// `scratch` of `out`, when it is inside `out`; else unchanged.
fn in_scratch(remote: &str, out: &Path, scratch: &Path) -> String {
    let (Ok(abs), Ok(out)) = (std::path::absolute(remote), std::path::absolute(out)) else {
        return remote.to_string();
    };
    // `absolute` keeps `./` and `..` as written; compare normalized components.
    let norm = |p: &Path| -> std::path::PathBuf {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    };
    match norm(&abs).strip_prefix(norm(&out)) {
        Ok(rel) => scratch.join(rel).display().to_string(),
        Err(_) => remote.to_string(),
    }
}

/// Render, then compare with the hosts.
pub struct Render;

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    for e in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_tree(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

impl Phase for Render {
    fn title(&self) -> String {
        "Render".into()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        if ctx.ui.dry_run() {
            // A dry run renders into a scratch copy, so even a certificate it would reissue stays unwritten.
            let scratch = tempfile::tempdir().context("creating a scratch directory")?;
            if ctx.opts.out.is_dir() {
                copy_tree(&ctx.opts.out, scratch.path())?;
            }
            ctx.files.render_dir = scratch.path().to_path_buf();
            ctx.files.scratch = Some(scratch);
        }
        let rendered = render_dir(
            &ctx.spec,
            &ctx.files.render_dir,
            ctx.opts.templates.as_deref(),
            Format::Files,
        )?;
        for i in &rendered.issued {
            // Relative to the render directory: a dry run's scratch copy and apply's output read alike.
            let path = i
                .path
                .strip_prefix(&ctx.files.render_dir)
                .unwrap_or(&i.path);
            let what = format!("issue {} ({})", path.display(), i.reason);
            ctx.ui.gate("local", &what);
        }
        for m in &rendered.removed {
            ctx.ui.gate("local", &m.action());
        }
        ctx.ui.info(&format!(
            "rendered {} into {}{}",
            ctx.spec.file,
            ctx.opts.out.display(),
            if ctx.ui.dry_run() {
                " (scratch copy: dry run)"
            } else {
                ""
            }
        ));
        let render_dir = &ctx.files.render_dir;
        let manifest = desired::read_manifest(render_dir)?;
        let mut wanted: BTreeMap<String, Vec<Desired>> = BTreeMap::new();
        for h in ctx.fleet.members() {
            wanted.insert(
                h.name().to_string(),
                desired::for_target(
                    &h.target,
                    render_dir,
                    &manifest,
                    (ctx.opts.binary.as_path(), ctx.files.binary_sha.as_str()),
                    ctx.facts.get(h.name()).and_then(|f| f.container.as_deref()),
                ),
            );
        }
        let rotating = render_dir.join("pki/ca-bundle.crt").is_file();
        let changed = std::sync::Mutex::new(BTreeMap::new());
        let held_back = std::sync::Mutex::new(BTreeMap::new());
        let scratch = ctx.files.scratch.as_ref().map(|s| s.path());
        ctx.fleet.each(&ctx.ui, ctx.fleet.members().collect(), |h, ui| {
            let mut files = wanted.get(h.name()).cloned().unwrap_or_default();
            // A local member whose files live inside the output directory gets them from the render
            // itself (apply renders in place); a dry run rendered into a scratch copy, so it reads
            // that copy, or it would announce uploads apply then finds already done.
            let seen: Vec<String> = files
                .iter()
                .map(|d| match (h.target.transport, scratch) {
                    (TransportKind::Local, Some(s)) => in_scratch(&d.remote, &ctx.opts.out, s),
                    _ => d.remote.clone(),
                })
                .collect();
            let paths: Vec<&str> = seen.iter().map(String::as_str).collect();
            let found =
                desired::parse_hashes(&h.sh(ui, "hash files", &desired::hash_script(&paths))?);
            let have: BTreeMap<String, String> = files
                .iter()
                .zip(&seen)
                .filter_map(|(d, s)| Some((d.remote.clone(), found.get(s)?.clone())))
                .collect();
            if rotating {
                let held = desired::hold_back_new_leaves(&mut files, &have);
                if !held.is_empty() {
                    ui.host(
                        h.name(),
                        &format!(
                            "CA rotation: trust bundle first, new certificates in a second pass ({})",
                            held.join(", ")
                        ),
                    );
                    held_back
                        .lock()
                        .map_err(|_| anyhow!("lock poisoned"))?
                        .insert(h.name().to_string(), files.clone());
                }
            }
            let differ: Vec<Desired> = files
                .iter()
                .filter(|d| have.get(&d.remote) != Some(&d.sha256))
                .cloned()
                .collect();
            if differ.is_empty() {
                ui.host(h.name(), &format!("{} files up to date", files.len()));
            } else {
                let names: Vec<String> = differ
                    .iter()
                    .map(|d| {
                        format!(
                            "{}{}",
                            d.remote,
                            if have.contains_key(&d.remote) {
                                ""
                            } else {
                                " (new)"
                            }
                        )
                    })
                    .collect();
                ui.host(
                    h.name(),
                    &format!(
                        "{} of {} files differ: {}",
                        differ.len(),
                        files.len(),
                        names.join(", ")
                    ),
                );
            }
            changed
                .lock()
                .map_err(|_| anyhow!("lock poisoned"))?
                .insert(h.name().to_string(), differ);
            Ok(())
        })?;
        let held_back = held_back
            .into_inner()
            .map_err(|_| anyhow!("lock poisoned"))?;
        ctx.files.second_pass = !held_back.is_empty();
        wanted.extend(held_back);
        ctx.files.desired = wanted;
        ctx.files.changed = changed.into_inner().map_err(|_| anyhow!("lock poisoned"))?;
        Ok(())
    }
}
