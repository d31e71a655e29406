//! Render: the same library calls as `provision render` (idempotent: certificates are kept unless they
//! must be reissued), then which files each host lacks or has with other content.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context};

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::deploy::desired::{self, Desired};
use crate::{manifest, pki, render, spec::Spec, templates::Templates};

/// Rendering failed: a template (configuration, exit 2) or anything else (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum RenderOutError {
    /// A template could not be loaded or rendered.
    #[error(transparent)]
    Template(#[from] crate::templates::TemplateError),
    /// Certificates or files.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Render everything for `spec` into `out`; returns the (re)issued certificates.
pub fn render_into(
    spec: &Spec,
    out: &Path,
    templates: Option<&Path>,
) -> Result<Vec<pki::Issued>, RenderOutError> {
    let t = Templates::load(templates)?;
    let artifacts = render::render_all(spec, &t).map_err(|e| match e {
        render::RenderError::Template(t) => RenderOutError::Template(t),
        other => RenderOutError::Other(other.into()),
    })?;
    write_rendered(spec, out, &artifacts)
}

/// Issue or keep certificates, write `artifacts` and the manifest into `out`.
pub fn write_rendered(
    spec: &Spec,
    out: &Path,
    artifacts: &[render::Artifact],
) -> Result<Vec<pki::Issued>, RenderOutError> {
    let issued = pki::ensure(spec, out).context("certificates")?;
    render::write_all(out, artifacts).context("writing artifacts")?;
    manifest::write(out).context("writing manifest.json")?;
    Ok(issued)
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
            ctx.render_dir = scratch.path().to_path_buf();
            ctx.scratch = Some(scratch);
        }
        let issued = render_into(&ctx.spec, &ctx.render_dir, ctx.opts.templates.as_deref())
            .map_err(|e| anyhow!("{e:#}"))?;
        for i in &issued {
            let what = format!("issue {} ({})", i.path.display(), i.reason);
            ctx.ui.gate("local", &what);
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
        let manifest = desired::read_manifest(&ctx.render_dir)?;
        let mut wanted: BTreeMap<String, Vec<Desired>> = BTreeMap::new();
        for h in ctx.members() {
            wanted.insert(
                h.name().to_string(),
                desired::for_target(
                    &h.target,
                    &ctx.render_dir,
                    &manifest,
                    (ctx.opts.binary.as_path(), ctx.binary_sha.as_str()),
                    ctx.facts.get(h.name()).and_then(|f| f.container.as_deref()),
                ),
            );
        }
        let rotating = ctx.render_dir.join("pki/ca-bundle.crt").is_file();
        let changed = std::sync::Mutex::new(BTreeMap::new());
        let held_back = std::sync::Mutex::new(BTreeMap::new());
        ctx.each(ctx.members().collect(), |h, ui| {
            let mut files = wanted.get(h.name()).cloned().unwrap_or_default();
            let paths: Vec<&str> = files.iter().map(|d| d.remote.as_str()).collect();
            let have =
                desired::parse_hashes(&h.sh(ui, "hash files", &desired::hash_script(&paths))?);
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
        ctx.second_pass = !held_back.is_empty();
        wanted.extend(held_back);
        ctx.desired = wanted;
        ctx.changed = changed.into_inner().map_err(|_| anyhow!("lock poisoned"))?;
        Ok(())
    }
}
