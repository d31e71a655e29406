//! `ansible/inventory.yml`: the members as a `cairn` group with their addresses, ports and SSH settings.

use serde_json::json;

use super::{Artifact, RenderError};
use crate::spec::Spec;
use crate::templates::Templates;

/// Render the inventory.
pub fn render(spec: &Spec, t: &Templates) -> Result<Vec<Artifact>, RenderError> {
    let hosts: Vec<_> = spec
        .nodes
        .iter()
        .map(|n| {
            let ssh = n.ssh.clone().unwrap_or(crate::spec::RawSsh {
                user: None,
                port: None,
                key: None,
            });
            json!({
                "name": n.name,
                "address": n.address.to_string(),
                "hostname": n.hostname.clone().unwrap_or_default(),
                "client_port": n.client_port,
                "peer_port": n.peer_port,
                "data_dir": spec.data_dir(n),
                "config_dir": spec.host_path(n, "").trim_end_matches('/'),
                "ssh_user": ssh.user.unwrap_or_default(),
                "ssh_port": ssh.port.unwrap_or(0),
                "ssh_key": ssh.key.unwrap_or_default(),
            })
        })
        .collect();
    let ctx = json!({ "cluster": { "name": spec.name, "token": spec.token }, "hosts": hosts });
    Ok(vec![Artifact::file(
        "ansible/inventory.yml",
        t.render("ansible/inventory.yml", &ctx)?,
    )])
}
