//! `nodes/<name>/cairn.env`: every setting as `CAIRN_<ETCD_FLAG>` (the systemd unit's EnvironmentFile).

use serde_json::json;

use super::{discovery, node_context, node_path, Artifact, RenderError};
use crate::spec::{url_host, Bootstrap, CaMode, Node, Spec};
use crate::templates::Templates;

/// The (name, value) pairs of a node's env file, in etcd's flag order.
pub fn vars(spec: &Spec, node: &Node) -> Vec<(String, String)> {
    let scheme = spec.scheme();
    let on_each = |port: u16| -> Vec<String> {
        node.addresses
            .iter()
            .map(|a| format!("{scheme}://{}:{port}", url_host(*a)))
            .collect()
    };
    let mut listen_client = on_each(node.client_port);
    // etcd's guide: also listen on loopback so local tools reach the member without the host IP.
    if !node.addresses.iter().any(|a| a.is_loopback()) {
        listen_client.push(format!("{scheme}://127.0.0.1:{}", node.client_port));
    }
    let mut v: Vec<(&str, String)> = vec![
        ("NAME", node.name.clone()),
        ("DATA_DIR", spec.data_dir(node)),
        // A dual-stack member listens on every address (the firewall admits peers on each); peers dial
        // the one peer URL it advertises, in the family every member has.
        ("LISTEN_PEER_URLS", on_each(node.peer_port).join(",")),
        ("LISTEN_CLIENT_URLS", listen_client.join(",")),
        ("INITIAL_ADVERTISE_PEER_URLS", spec.peer_url(node)),
        ("ADVERTISE_CLIENT_URLS", spec.client_urls(node).join(",")),
        ("INITIAL_CLUSTER_TOKEN", spec.token.clone()),
        ("INITIAL_CLUSTER_STATE", "new".into()),
    ];
    if let Some(t) = spec.raft_timing {
        v.push(("HEARTBEAT_INTERVAL", t.heartbeat_interval_ms.to_string()));
        v.push(("ELECTION_TIMEOUT", t.election_timeout_ms.to_string()));
    }
    match (spec.bootstrap, &spec.dns, &spec.discovery) {
        (Bootstrap::Dns, Some(d), _) => {
            v.push(("DISCOVERY_SRV", d.domain.clone()));
            if !d.srv_name.is_empty() {
                v.push(("DISCOVERY_SRV_NAME", d.srv_name.clone()));
            }
        }
        (Bootstrap::Discovery, _, Some(d)) => {
            v.push(("DISCOVERY_TOKEN", d.token.clone()));
            v.push(("DISCOVERY_ENDPOINTS", d.endpoints.join(",")));
            if d.tls() {
                // etcd 3.6's --discovery-insecure-transport defaults to true; https endpoints need it off.
                v.push(("DISCOVERY_INSECURE_TRANSPORT", "false".into()));
            }
            for (var, file) in discovery::host_files(d) {
                v.push((var, spec.host_path(node, &format!("pki/{file}"))));
            }
        }
        _ => v.push(("INITIAL_CLUSTER", spec.initial_cluster())),
    }
    if let Some(tls) = &spec.tls {
        let p = |f: &str| spec.host_path(node, &format!("pki/{f}"));
        let peer_ca = match tls.ca {
            CaMode::Shared => p("ca.crt"),
            CaMode::Separate => p("peer-ca.crt"),
        };
        v.extend([
            ("CERT_FILE", p("server.crt")),
            ("KEY_FILE", p("server.key")),
            ("TRUSTED_CA_FILE", p("ca.crt")),
            ("CLIENT_CERT_AUTH", "true".into()),
            ("PEER_CERT_FILE", p("peer.crt")),
            ("PEER_KEY_FILE", p("peer.key")),
            ("PEER_TRUSTED_CA_FILE", peer_ca),
            ("PEER_CLIENT_CERT_AUTH", "true".into()),
        ]);
    }
    v.into_iter()
        .map(|(k, val)| (format!("CAIRN_{k}"), val))
        .collect()
}

/// Render the env file.
pub fn render(spec: &Spec, node: &Node, t: &Templates) -> Result<Vec<Artifact>, RenderError> {
    let mut ctx = node_context(spec, node);
    ctx["vars"] = json!(vars(spec, node)
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect::<Vec<_>>());
    Ok(vec![Artifact::file(
        node_path(node, "cairn.env"),
        t.render("env/cairn.env", &ctx)?,
    )])
}
