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
            "rtype": if n.address.is_ipv6() { "AAAA" } else { "A" },
            "address": n.address.to_string(),
            "client_port": n.client_port,
            "peer_port": n.peer_port,
        }));
    }
    // The zone needs an in-zone name server with an address; the first member serves as that target
    // unless the operator's template says otherwise.
    let ns = hosts
        .first()
        .and_then(|h| h["fqdn"].as_str().map(String::from))
        .unwrap_or_else(|| format!("ns1.{domain}."));
    let serial = time::OffsetDateTime::now_utc().date();
    let ctx = json!({
        "cluster": { "name": spec.name },
        "dns": {
            "domain": domain,
            "origin": format!("{domain}."),
            "ns": ns,
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
