//! Render-to-dir, what `provision render` and apply's Render phase both do: certificates kept or issued,
//! the artifacts written, and manifest.json listing every file.

use std::path::Path;

use super::{render_all, write_all, Artifact, RenderError};
use crate::pki::{self, Issued, PkiError};
use crate::spec::Spec;
use crate::templates::{TemplateError, Templates};
use crate::{files::FileError, manifest};

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

/// What one render into a directory did.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Certificates (re)issued, with the reason.
    pub issued: Vec<Issued>,
}

/// The artifacts of `format` for `spec` (templates from `templates`, else built in).
pub fn artifacts(
    spec: &Spec,
    templates: Option<&Path>,
    format: Format,
) -> Result<Vec<Artifact>, OutputError> {
    Ok(match format {
        Format::Files => render_all(spec, &Templates::load(templates)?)?,
        Format::Nix => super::nix::render(spec),
    })
}

/// Render everything for `spec` into `out`: certificates, artifacts, manifest.json.
pub fn render_dir(
    spec: &Spec,
    out: &Path,
    templates: Option<&Path>,
    format: Format,
) -> Result<Rendered, OutputError> {
    let artifacts = artifacts(spec, templates, format)?;
    let issued = pki::ensure(spec, out)?;
    write_all(out, &artifacts)?;
    manifest::write(out)?;
    Ok(Rendered { issued })
}
