//! `nodes/<name>/cairn.nix` (`provision render --format nix`): one member as the attribute set that
//! nix/module.nix's `services.cairn` takes, so one cluster.yaml drives NixOS hosts too:
//! `services.cairn = import ./nodes/infra0/cairn.nix;`. Every value comes from the same functions as the
//! env file and the firewall rules, so a NixOS member and a Debian member of one cluster agree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{env, firewall, node_path, Artifact};
use crate::spec::{FirewallBackend, Node, Spec};

/// A Nix string literal: `"`, `\` and `${` (interpolation) escaped.
fn string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "\\${")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// A Nix list of strings.
fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let inner: Vec<String> = items.into_iter().map(string).collect();
    if inner.is_empty() {
        "[ ]".into()
    } else {
        format!("[ {} ]", inner.join(" "))
    }
}

/// The comma-separated URL lists of the env file, as Nix lists.
fn urls(v: &str) -> String {
    list(v.split(',').filter(|s| !s.is_empty()))
}

/// Module option (under `tls`) for each TLS variable of the env file.
const TLS_OPTIONS: &[(&str, &str)] = &[
    ("CAIRN_CERT_FILE", "certFile"),
    ("CAIRN_KEY_FILE", "keyFile"),
    ("CAIRN_TRUSTED_CA_FILE", "trustedCaFile"),
    ("CAIRN_PEER_CERT_FILE", "peerCertFile"),
    ("CAIRN_PEER_KEY_FILE", "peerKeyFile"),
    ("CAIRN_PEER_TRUSTED_CA_FILE", "peerTrustedCaFile"),
];

/// Module option (under `discovery`) for each discovery TLS variable of the env file.
const DISCOVERY_FILES: &[(&str, &str)] = &[
    ("CAIRN_DISCOVERY_CACERT", "caFile"),
    ("CAIRN_DISCOVERY_CERT", "certFile"),
    ("CAIRN_DISCOVERY_KEY", "keyFile"),
];

/// The attribute set text for one member.
pub fn member(spec: &Spec, node: &Node) -> String {
    let vars: BTreeMap<String, String> = env::vars(spec, node).into_iter().collect();
    let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or_default();
    let mut s = String::new();
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        s,
        "# Cairn member {} of cluster {} (rendered by provision from {}; edit that file instead).",
        node.name, spec.name, spec.file
    );
    let _ = writeln!(
        s,
        "# NixOS: services.cairn = import ./cairn.nix; then copy nodes/{}/pki/ to {} (keys never go in the Nix store).",
        node.name,
        spec.host_path(node, "pki/")
    );
    s.push_str("{\n  enable = true;\n");
    let _ = writeln!(s, "  name = {};", string(&node.name));
    let _ = writeln!(s, "  dataDir = {};", string(get("CAIRN_DATA_DIR")));
    let _ = writeln!(s, "  clientPort = {};", node.client_port);
    let _ = writeln!(s, "  peerPort = {};", node.peer_port);
    for (option, var) in [
        ("listenClientUrls", "CAIRN_LISTEN_CLIENT_URLS"),
        ("advertiseClientUrls", "CAIRN_ADVERTISE_CLIENT_URLS"),
        ("listenPeerUrls", "CAIRN_LISTEN_PEER_URLS"),
        (
            "initialAdvertisePeerUrls",
            "CAIRN_INITIAL_ADVERTISE_PEER_URLS",
        ),
    ] {
        let _ = writeln!(s, "  {option} = {};", urls(get(var)));
    }
    let _ = writeln!(
        s,
        "  initialClusterToken = {};",
        string(get("CAIRN_INITIAL_CLUSTER_TOKEN"))
    );
    let _ = writeln!(
        s,
        "  initialClusterState = {};",
        string(get("CAIRN_INITIAL_CLUSTER_STATE"))
    );
    if let Some(srv) = vars.get("CAIRN_DISCOVERY_SRV") {
        let _ = writeln!(s, "  discoverySrv = {};", string(srv));
        if let Some(name) = vars.get("CAIRN_DISCOVERY_SRV_NAME") {
            let _ = writeln!(s, "  discoverySrvName = {};", string(name));
        }
    } else if let Some(token) = vars.get("CAIRN_DISCOVERY_TOKEN") {
        s.push_str("  discovery = {\n");
        let _ = writeln!(s, "    token = {};", string(token));
        let _ = writeln!(
            s,
            "    endpoints = {};",
            urls(get("CAIRN_DISCOVERY_ENDPOINTS"))
        );
        for (var, option) in DISCOVERY_FILES {
            if let Some(v) = vars.get(*var) {
                let _ = writeln!(s, "    {option} = {};", string(v));
            }
        }
        s.push_str("  };\n");
    } else {
        s.push_str("  initialCluster = {\n");
        for m in &spec.nodes {
            let _ = writeln!(
                s,
                "    {} = {};",
                string(&m.name),
                string(&spec.peer_url(m))
            );
        }
        s.push_str("  };\n");
    }
    if spec.tls.is_some() {
        s.push_str("  tls = {\n");
        for (var, option) in TLS_OPTIONS {
            if let Some(v) = vars.get(*var) {
                let _ = writeln!(s, "    {option} = {};", string(v));
            }
        }
        s.push_str("  };\n");
    }
    let src = firewall::sources(spec, node);
    let peers = src.peers_v4.iter().chain(&src.peers_v6).map(String::as_str);
    let clients = src
        .clients_v4
        .iter()
        .chain(&src.clients_v6)
        .map(String::as_str);
    let _ = writeln!(
        s,
        "  openFirewall = {};",
        spec.firewall.backend != FirewallBackend::None
    );
    let _ = writeln!(
        s,
        "  firewall = {{\n    peerSources = {};\n    clientSources = {};\n  }};",
        list(peers),
        list(clients)
    );
    let _ = writeln!(s, "  logFile = {};", string(&spec.log_file));
    s.push_str("}\n");
    s
}

/// `nodes/<name>/cairn.nix` for every member.
pub fn render(spec: &Spec) -> Vec<Artifact> {
    spec.nodes
        .iter()
        .map(|n| Artifact::file(node_path(n, "cairn.nix"), member(spec, n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::string;

    #[test]
    fn strings_cannot_interpolate_or_break_out() {
        assert_eq!(string(r#"a"b\c${d}"#), r#""a\"b\\c\${d}""#);
    }
}
