//! `ansible/inventory.yml`: the members as a `cairn` group with their addresses, ports and SSH settings.

use serde_json::json;

use super::{node_vars, Artifact, RenderError};
use crate::spec::{url_host, Spec};
use crate::templates::Templates;

/// Render the inventory.
pub fn render(spec: &Spec, t: &Templates) -> Result<Vec<Artifact>, RenderError> {
    let hosts: Vec<_> = spec
        .nodes
        .iter()
        .map(|n| {
            let ssh = n.ssh.clone().unwrap_or_default();
            let mut vars = node_vars(spec, n);
            if let Some(host) = vars.as_object_mut() {
                host.insert("ssh_user".into(), json!(ssh.user.unwrap_or_default()));
                host.insert("ssh_port".into(), json!(ssh.port.unwrap_or(0)));
                host.insert("ssh_key".into(), json!(ssh.key.unwrap_or_default()));
                // Bracketed for IPv6, with the cluster's scheme: the role polls it from this machine.
                host.insert(
                    "health_url".into(),
                    json!(format!(
                        "{}://{}:{}/health",
                        spec.scheme(),
                        url_host(n.addresses[0]),
                        n.client_port
                    )),
                );
            }
            vars
        })
        .collect();
    let ctx = json!({
        "cluster": {
            "name": spec.name,
            "token": spec.token,
            "firewall": spec.firewall.backend.to_string(),
            "tls": spec.tls.is_some(),
            "bootstrap": spec.bootstrap.to_string(),
            "discovery": spec.discovery.as_ref().map(|d| json!({
                "token": d.token,
                "endpoints": d.endpoints.join(","),
                "size_key": d.size_key(),
            })),
        },
        "hosts": hosts,
    });
    Ok(vec![Artifact::file(
        "ansible/inventory.yml",
        t.render("ansible/inventory.yml", &ctx)?,
    )])
}
