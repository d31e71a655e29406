//! Render-to-dir, what `provision render` and apply's Render phase both do: certificates kept or issued,
//! the artifacts written, whatever an earlier render left that the spec no longer produces removed (key
//! material moved to `attic/`, never deleted), and manifest.json listing exactly the current files.

use std::path::{Path, PathBuf};

use super::{render_all, write_all, Artifact, RenderError};
use crate::files::{self, FileError};
use crate::manifest;
use crate::pki::{self, Issued, PkiError};
use crate::spec::Spec;
use crate::templates::{TemplateError, Templates};

/// What `render` writes besides the certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Every artifact for Debian-style hosts.
    Files,
    /// `nodes/<name>/cairn.nix` for NixOS's `services.cairn`.
    Nix,
}

/// Rendering into a directory failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A template could not be loaded or rendered (a configuration error).
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Certificates could not be made or read.
    #[error("certificates: {0}")]
    Pki(#[from] PkiError),
    /// A file could not be written.
    #[error(transparent)]
    File(#[from] FileError),
}

impl Format {
    /// Its name in manifest.json and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Files => "files",
            Format::Nix => "nix",
        }
    }

    /// The format called `name`.
    pub fn from_name(name: &str) -> Option<Format> {
        [Format::Files, Format::Nix]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

impl From<RenderError> for OutputError {
    fn from(e: RenderError) -> Self {
        match e {
            RenderError::Template(t) => OutputError::Template(t),
            RenderError::File(f) => OutputError::File(f),
        }
    }
}

impl OutputError {
    /// True when the operator must change an input (exit 2), not retry or fix the machine (exit 1).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            OutputError::Template(_) | OutputError::Pki(PkiError::CaUnusable { .. })
        )
    }
}

/// A file of an earlier render that the spec no longer produces.
#[derive(Debug, Clone)]
pub struct Removed {
    /// Its path relative to the output directory.
    pub path: PathBuf,
    /// Where it was moved (key material and certificates), relative to the output directory; None:
    /// deleted.
    pub attic: Option<PathBuf>,
    /// Why it is no longer rendered.
    pub reason: String,
}

/// What one render into a directory did.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Certificates (re)issued, with the reason.
    pub issued: Vec<Issued>,
    /// Files of an earlier render removed.
    pub removed: Vec<Removed>,
}

/// The artifacts of `format` for `spec` (templates from `templates`, else built in); files that depend
/// on their earlier version (the zone's serial) read it from `out`.
pub fn artifacts(
    spec: &Spec,
    templates: Option<&Path>,
    format: Format,
    out: &Path,
) -> Result<Vec<Artifact>, OutputError> {
    let previous = |rel: &Path| std::fs::read_to_string(out.join(rel)).ok();
    Ok(match format {
        Format::Files => render_all(spec, &Templates::load(templates)?, &previous)?,
        Format::Nix => super::nix::render(spec),
    })
}

/// Render everything for `spec` into `out`: certificates, artifacts, stale files out, manifest.json.
pub fn render_dir(
    spec: &Spec,
    out: &Path,
    templates: Option<&Path>,
    format: Format,
) -> Result<Rendered, OutputError> {
    let (before, _) = manifest::previous(out);
    let artifacts = artifacts(spec, templates, format, out)?;
    let issued = pki::ensure(spec, out)?;
    write_all(out, &artifacts)?;
    let mut current: Vec<PathBuf> = artifacts.iter().map(|a| a.path.clone()).collect();
    current.extend(pki::current_files(spec, out));
    let removed = remove_stale(spec, out, &before, &current)?;
    manifest::write(out, &current, format.name())?;
    Ok(Rendered { issued, removed })
}

/// Keep or issue the certificates of `spec` in `out` and nothing else (`certs --rotate-ca`): the other
/// files of the last render stay as they are, and the manifest lists them with the certificates.
pub fn refresh_certs(spec: &Spec, out: &Path) -> Result<Rendered, OutputError> {
    let (before, format) = manifest::previous(out);
    let issued = pki::ensure(spec, out)?;
    let mut current: Vec<PathBuf> = before
        .iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "pki") && out.join(p).is_file())
        .cloned()
        .collect();
    current.extend(pki::current_files(spec, out));
    let removed = remove_stale(spec, out, &before, &current)?;
    let format = format.unwrap_or_else(|| Format::Files.name().to_string());
    manifest::write(out, &current, &format)?;
    Ok(Rendered { issued, removed })
}

/// Why `rel`, rendered before, is not rendered now.
fn reason(spec: &Spec, rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let part = |i: usize| parts.get(i).map(String::as_str).unwrap_or("");
    match (part(0), part(2)) {
        ("nodes", _) if !spec.nodes.iter().any(|n| n.name == part(1)) => {
            format!("member {} is no longer in {}", part(1), spec.file)
        }
        ("nodes", "firewall") => format!("the firewall backend is now {}", spec.firewall.backend),
        ("pki", _) if part(1) == "clients" => {
            "that client identity is no longer in tls.clients".into()
        }
        _ => format!("no longer rendered from {}", spec.file),
    }
}

/// Remove what the previous manifest listed and the current render does not produce. Anything under a
/// `pki/` directory (keys, and the certificates that go with them) moves to `attic/<time>/` instead.
fn remove_stale(
    spec: &Spec,
    out: &Path,
    before: &[PathBuf],
    current: &[PathBuf],
) -> Result<Vec<Removed>, FileError> {
    let stale: Vec<&PathBuf> = before
        .iter()
        .filter(|p| !current.contains(p) && out.join(p).is_file())
        .collect();
    let mut attic: Option<PathBuf> = None;
    let mut removed = Vec::new();
    for rel in stale {
        let from = out.join(rel);
        let secret = rel.components().any(|c| c.as_os_str() == "pki");
        let moved = if secret {
            let dir = match &attic {
                Some(d) => d.clone(),
                None => {
                    let d = files::create_unique_dir(&out.join(manifest::ATTIC_DIR))?;
                    attic = Some(d.clone());
                    d
                }
            };
            let to = dir.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|source| FileError {
                    path: parent.to_path_buf(),
                    action: "cannot create directory",
                    source,
                })?;
            }
            std::fs::rename(&from, &to).map_err(|source| FileError {
                path: from.clone(),
                action: "cannot move to the attic",
                source,
            })?;
            Some(to.strip_prefix(out).unwrap_or(&to).to_path_buf())
        } else {
            std::fs::remove_file(&from).map_err(|source| FileError {
                path: from.clone(),
                action: "cannot remove",
                source,
            })?;
            None
        };
        // Directories the removal emptied go too (nodes/<removed member>/…), up to the output itself.
        let mut dir = from.parent();
        while let Some(d) = dir.filter(|d| *d != out && d.starts_with(out)) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        removed.push(Removed {
            path: rel.clone(),
            attic: moved,
            reason: reason(spec, rel),
        });
    }
    Ok(removed)
}

impl Removed {
    /// What was done, in the present tense (`move …`, `remove …`): apply's gate says it that way.
    pub fn action(&self) -> String {
        match &self.attic {
            Some(to) => format!(
                "move {} to {} ({})",
                self.path.display(),
                to.display(),
                self.reason
            ),
            None => format!("remove {} ({})", self.path.display(), self.reason),
        }
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = self.action();
        match action.split_once(' ') {
            Some((verb, rest)) => write!(f, "{verb}d {rest}"),
            None => f.write_str(&action),
        }
    }
}
