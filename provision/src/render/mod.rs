//! Every artifact `provision render` writes, one module per kind. Each returns `Artifact`s (path relative
//! to the output directory + content); `write_all` puts them on disk and the manifest lists them.

pub mod ansible;
pub mod discovery;
pub mod dns;
pub mod env;
pub mod firewall;
pub mod logging;
pub mod monitoring;
pub mod nix;
pub mod output;
pub mod systemd;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::files::{self, FileError};
use crate::spec::{Node, Spec};
use crate::templates::{TemplateError, Templates};

/// One rendered file.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Path relative to the output directory.
    pub path: PathBuf,
    /// File content.
    pub content: String,
    /// Unix mode.
    pub mode: u32,
}

impl Artifact {
    /// A 0644 file.
    pub fn file(path: impl Into<PathBuf>, content: String) -> Self {
        Self {
            path: path.into(),
            content,
            mode: 0o644,
        }
    }
    /// A 0755 script.
    pub fn script(path: impl Into<PathBuf>, content: String) -> Self {
        Self {
            path: path.into(),
            content,
            mode: 0o755,
        }
    }
}

/// Rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Writing failed.
    #[error(transparent)]
    File(#[from] FileError),
}

/// `nodes/<name>/<rest>`.
pub fn node_path(node: &Node, rest: &str) -> PathBuf {
    Path::new("nodes").join(&node.name).join(rest)
}

/// One member's variables, as per-node templates and the inventory see them.
pub fn node_vars(spec: &Spec, node: &Node) -> Value {
    json!({
        "name": node.name,
        "address": node.addresses[0].to_string(),
        "addresses": node.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "ipv6": node.addresses[0].is_ipv6(),
        "hostname": node.hostname.clone().unwrap_or_default(),
        "client_port": node.client_port,
        "peer_port": node.peer_port,
        "data_dir": spec.data_dir(node),
        "config_dir": spec.host_path(node, "").trim_end_matches('/'),
        "env_file": spec.host_path(node, "cairn.env"),
    })
}

/// Template variables shared by every per-node template.
pub fn node_context(spec: &Spec, node: &Node) -> Value {
    json!({
        "cluster": {
            "name": spec.name,
            "token": spec.token,
            "scheme": spec.scheme(),
            "tls": spec.tls.is_some(),
            "log_file": spec.log_file,
            "log_dir": Path::new(&spec.log_file).parent().map(|p| p.display().to_string()).unwrap_or_default(),
        },
        "node": node_vars(spec, node),
    })
}

/// What an earlier render wrote at a path (relative to the output directory), if anything.
pub type Previous<'a> = &'a dyn Fn(&Path) -> Option<String>;

/// Every artifact for `spec`; `previous` gives the last render's files (the zone keeps its serial while
/// its records stay the same).
pub fn render_all(
    spec: &Spec,
    t: &Templates,
    previous: Previous,
) -> Result<Vec<Artifact>, RenderError> {
    let mut out = Vec::new();
    for node in &spec.nodes {
        out.extend(env::render(spec, node, t)?);
        out.extend(systemd::render(spec, node, t)?);
        out.extend(logging::render(spec, node, t)?);
        out.extend(firewall::render(spec, node, t)?);
        out.extend(discovery::render(spec, node)?);
    }
    out.extend(dns::render(spec, t, previous)?);
    out.extend(monitoring::render(spec, t)?);
    out.extend(ansible::render(spec, t)?);
    Ok(out)
}

/// Write artifacts under `out`.
pub fn write_all(out: &Path, artifacts: &[Artifact]) -> Result<(), RenderError> {
    for a in artifacts {
        files::write_with_mode(&out.join(&a.path), a.content.as_bytes(), a.mode)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
