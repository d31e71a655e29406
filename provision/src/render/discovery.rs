//! `nodes/<name>/pki/discovery-*`: the discovery cluster's CA and client certificate, copied from the
//! operator's files (`cluster.discovery.ca/cert/key`) so they travel to each host with the member's own
//! certificates; the env file points `--discovery-cacert/-cert/-key` at them.

use super::{node_path, Artifact, RenderError};
use crate::files::FileError;
use crate::spec::{Discovery, Node, Spec};

/// The env variables of the TLS files a member needs for `d`, with their names under `pki/`.
pub fn host_files(d: &Discovery) -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    if d.ca.is_some() {
        v.push(("DISCOVERY_CACERT", "discovery-ca.crt"));
    }
    if d.client.is_some() {
        v.push(("DISCOVERY_CERT", "discovery-client.crt"));
        v.push(("DISCOVERY_KEY", "discovery-client.key"));
    }
    v
}

/// The copies for one member (none without `bootstrap: discovery` or without TLS files).
pub fn render(spec: &Spec, node: &Node) -> Result<Vec<Artifact>, RenderError> {
    let Some(d) = &spec.discovery else {
        return Ok(Vec::new());
    };
    let mut sources = Vec::new();
    if let Some(ca) = &d.ca {
        sources.push((ca, "discovery-ca.crt", 0o644));
    }
    if let Some((cert, key)) = &d.client {
        sources.push((cert, "discovery-client.crt", 0o644));
        sources.push((key, "discovery-client.key", 0o600));
    }
    let mut out = Vec::new();
    for (src, name, mode) in sources {
        let content = std::fs::read_to_string(src).map_err(|source| FileError {
            path: src.clone(),
            action: "cannot read",
            source,
        })?;
        out.push(Artifact {
            path: node_path(node, &format!("pki/{name}")),
            content,
            mode,
        });
    }
    Ok(out)
}
