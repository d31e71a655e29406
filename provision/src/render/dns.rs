//! `dns/<domain>.zone` (SOA, NS, SRV for discovery, A/AAAA for every target) and `dns/nsupdate.txt`
//! for pushing the same records to a running server. Rendered whenever a DNS domain is set.

use serde_json::json;

use super::{Artifact, RenderError};
use crate::spec::Spec;
use crate::templates::Templates;

/// SRV service labels for this cluster: (`_etcd-server-ssl-<name>`, `_etcd-client-ssl-<name>`).
pub fn srv_services(spec: &Spec) -> (String, String) {
    let ssl = if spec.tls.is_some() { "-ssl" } else { "" };
    let suffix = match &spec.dns {
        Some(d) if !d.srv_name.is_empty() => format!("-{}", d.srv_name),
        _ => String::new(),
    };
    (
        format!("_etcd-server{ssl}{suffix}"),
        format!("_etcd-client{ssl}{suffix}"),
    )
}

/// A/AAAA records for `addresses`.
fn records(addresses: &[std::net::IpAddr]) -> Vec<serde_json::Value> {
    addresses
        .iter()
        .map(|a| json!({ "rtype": if a.is_ipv6() { "AAAA" } else { "A" }, "address": a.to_string() }))
        .collect()
}

/// Render the zone and the nsupdate script.
pub fn render(spec: &Spec, t: &Templates) -> Result<Vec<Artifact>, RenderError> {
    let Some(dns) = &spec.dns else {
        return Ok(Vec::new());
    };
    let domain = dns.domain.trim_end_matches('.').to_string();
    let (server, client) = srv_services(spec);
    let mut hosts = Vec::new();
    for n in &spec.nodes {
        let Some(h) = &n.hostname else { continue };
        let h = h.trim_end_matches('.');
        // Only names inside the zone can get records here; others live in their own zone.
        if !h.ends_with(&format!(".{domain}")) {
            continue;
        }
        hosts.push(json!({
            "fqdn": format!("{h}."),
            "label": h.trim_end_matches(&format!(".{domain}")),
            "records": records(&n.addresses),
            "client_port": n.client_port,
            "peer_port": n.peer_port,
        }));
    }
    // Without `name_servers` the first member's name serves as the zone's name server (it has address
    // records in the zone); given ones are used in order, the first as the SOA's primary.
    let name_servers: Vec<String> = if dns.name_servers.is_empty() {
        vec![hosts
            .first()
            .and_then(|h| h["fqdn"].as_str().map(String::from))
            .unwrap_or_else(|| format!("ns1.{domain}."))]
    } else {
        dns.name_servers
            .iter()
            .map(|n| format!("{}.", n.name))
            .collect()
    };
    // In-zone name servers that are not members need their address in the zone (glue).
    let glue: Vec<_> = dns
        .name_servers
        .iter()
        .filter_map(|n| {
            n.address
                .map(|a| json!({ "fqdn": format!("{}.", n.name), "records": records(&[a]) }))
        })
        .collect();
    let serial = time::OffsetDateTime::now_utc().date();
    let ctx = json!({
        "cluster": { "name": spec.name },
        "dns": {
            "domain": domain,
            "origin": format!("{domain}."),
            "ns": name_servers[0],
            "name_servers": name_servers,
            "glue": glue,
            "serial": format!("{:04}{:02}{:02}01", serial.year(), u8::from(serial.month()), serial.day()),
            "ttl": 300,
            "server_srv": format!("{server}._tcp.{domain}."),
            "client_srv": format!("{client}._tcp.{domain}."),
            "hosts": hosts,
        },
    });
    Ok(vec![
        Artifact::file(format!("dns/{domain}.zone"), t.render("dns/zone", &ctx)?),
        Artifact::file("dns/nsupdate.txt", t.render("dns/nsupdate.txt", &ctx)?),
    ])
}
