//! Per-node firewall for the chosen backend: the peer port only from members, the client port only from
//! client_sources, members and loopback. Every backend touches only its own table/chain/zone.

use std::net::IpAddr;

use serde_json::json;

use super::{node_context, node_path, Artifact, RenderError};
use crate::spec::{FirewallBackend, Node, Spec};
use crate::templates::Templates;

/// Source lists split by family, as the templates need them.
#[derive(Debug, Default, serde::Serialize)]
pub struct Sources {
    /// Members allowed on the peer port (IPv4).
    pub peers_v4: Vec<String>,
    /// Members allowed on the peer port (IPv6).
    pub peers_v6: Vec<String>,
    /// Networks allowed on the client port (IPv4).
    pub clients_v4: Vec<String>,
    /// Networks allowed on the client port (IPv6).
    pub clients_v6: Vec<String>,
}

fn push(v4: &mut Vec<String>, v6: &mut Vec<String>, is_v6: bool, s: String) {
    let list = if is_v6 { v6 } else { v4 };
    if !list.contains(&s) {
        list.push(s);
    }
}

/// Allowed sources for `node`'s ports.
pub fn sources(spec: &Spec, node: &Node) -> Sources {
    let mut s = Sources::default();
    // Every address of every other member: a dual-stack member may dial from either family.
    for m in &spec.nodes {
        if m.name == node.name && spec.nodes.len() > 1 {
            continue;
        }
        for a in &m.addresses {
            let v6 = matches!(a, IpAddr::V6(_));
            push(&mut s.peers_v4, &mut s.peers_v6, v6, a.to_string());
        }
    }
    for net in &spec.firewall.client_sources {
        let v6 = matches!(net, ipnet::IpNet::V6(_));
        push(&mut s.clients_v4, &mut s.clients_v6, v6, net.to_string());
    }
    for a in spec.nodes.iter().flat_map(|m| &m.addresses) {
        let v6 = matches!(a, IpAddr::V6(_));
        push(&mut s.clients_v4, &mut s.clients_v6, v6, a.to_string());
    }
    s
}

/// Render the firewall files of the configured backend (none for `backend: none`).
pub fn render(spec: &Spec, node: &Node, t: &Templates) -> Result<Vec<Artifact>, RenderError> {
    let mut ctx = node_context(spec, node);
    ctx["fw"] = json!(sources(spec, node));
    let p = |f: &str| node_path(node, &format!("firewall/{f}"));
    Ok(match spec.firewall.backend {
        FirewallBackend::None => Vec::new(),
        FirewallBackend::Nftables => vec![Artifact::file(
            p("cairn.nft"),
            t.render("firewall/cairn.nft", &ctx)?,
        )],
        FirewallBackend::Iptables => {
            let mut v4 = ctx.clone();
            v4["family"] = json!({"v6": false, "peers": ctx["fw"]["peers_v4"], "clients": ctx["fw"]["clients_v4"], "loopback": "127.0.0.0/8"});
            let mut v6 = ctx.clone();
            v6["family"] = json!({"v6": true, "peers": ctx["fw"]["peers_v6"], "clients": ctx["fw"]["clients_v6"], "loopback": "::1/128"});
            vec![
                Artifact::file(
                    p("cairn.iptables"),
                    t.render("firewall/cairn.iptables", &v4)?,
                ),
                Artifact::file(
                    p("cairn.ip6tables"),
                    t.render("firewall/cairn.iptables", &v6)?,
                ),
            ]
        }
        // Rich rules in the zone the host's interface is in (a zone of our own would need interfaces or
        // sources bound to it, and would then also decide the host's other traffic).
        FirewallBackend::Firewalld => vec![Artifact::script(
            p("cairn-firewalld.sh"),
            t.render("firewall/cairn-firewalld.sh", &ctx)?,
        )],
    })
}
