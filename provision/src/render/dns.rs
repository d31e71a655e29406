//! `dns/<domain>.zone` (SOA, NS, SRV for discovery, A/AAAA for every target) and `dns/nsupdate.txt`
//! for pushing the same records to a running server. Rendered whenever a DNS domain is set.

use serde_json::json;

use super::{Artifact, Previous, RenderError};
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

/// The SOA serial of a zone file's text: the first number after `SOA`, its two names and an optional
/// `(` (comments stripped).
pub fn soa_serial(zone: &str) -> Option<u32> {
    let tokens: Vec<&str> = zone
        .lines()
        .map(|l| l.split(';').next().unwrap_or(""))
        .flat_map(|l| l.split_whitespace())
        .flat_map(|w| w.split(['(', ')']))
        .filter(|w| !w.is_empty())
        .collect();
    let soa = tokens.iter().position(|t| t.eq_ignore_ascii_case("SOA"))?;
    tokens.get(soa + 3)?.parse().ok()
}

/// The serial for a zone whose last version (if any) had `old` (serial and text); `render` makes the
/// text for a serial. The serial stays while the records stay (secondaries transfer nothing), and
/// otherwise goes up: to today's `YYYYMMDD01`, or past the old serial if that is higher (never back).
fn settle_serial(
    old: Option<(u32, &str)>,
    today: u32,
    render: &dyn Fn(u32) -> Result<String, RenderError>,
) -> Result<(u32, String), RenderError> {
    if let Some((serial, text)) = old {
        let same = render(serial)?;
        if same == text {
            return Ok((serial, same));
        }
        let next = today.max(serial.saturating_add(1));
        return Ok((next, render(next)?));
    }
    Ok((today, render(today)?))
}

/// Render the zone and the nsupdate script.
pub fn render(
    spec: &Spec,
    t: &Templates,
    previous: Previous,
) -> Result<Vec<Artifact>, RenderError> {
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
    let date = time::OffsetDateTime::now_utc().date();
    let today = (date.year().max(0) as u32) * 1_000_000
        + u32::from(u8::from(date.month())) * 10_000
        + u32::from(date.day()) * 100
        + 1;
    let mut ctx = json!({
        "cluster": { "name": spec.name },
        "dns": {
            "domain": domain,
            "origin": format!("{domain}."),
            "ns": name_servers[0],
            "name_servers": name_servers,
            "glue": glue,
            "serial": 0,
            "ttl": 300,
            "server_srv": format!("{server}._tcp.{domain}."),
            "client_srv": format!("{client}._tcp.{domain}."),
            "hosts": hosts,
        },
    });
    let zone_path = format!("dns/{domain}.zone");
    let old = previous(std::path::Path::new(&zone_path));
    let old = old
        .as_deref()
        .and_then(|text| Some((soa_serial(text)?, text)));
    let zone = |serial: u32| {
        let mut c = ctx.clone();
        c["dns"]["serial"] = json!(serial);
        t.render("dns/zone", &c).map_err(RenderError::from)
    };
    let (serial, zone_text) = settle_serial(old, today, &zone)?;
    ctx["dns"]["serial"] = json!(serial);
    Ok(vec![
        Artifact::file(zone_path, zone_text),
        Artifact::file("dns/nsupdate.txt", t.render("dns/nsupdate.txt", &ctx)?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zone text whose records are `records`.
    fn zone(serial: u32, records: &str) -> String {
        format!("@ IN SOA ns1.example.com. hostmaster.example.com. (\n {serial} ; serial\n 3600 600 604800 300 )\n{records}")
    }

    fn settle(old: Option<(u32, &str)>, today: u32, records: &'static str) -> (u32, String) {
        settle_serial(old, today, &|s| Ok(zone(s, records))).expect("renders")
    }

    #[test]
    fn the_serial_is_read_back_from_the_soa() {
        assert_eq!(soa_serial(&zone(2026120203, "")), Some(2026120203));
        assert_eq!(soa_serial("@ IN SOA a. b. 7 1 2 3 4\n"), Some(7));
        assert_eq!(soa_serial("no soa here"), None);
    }

    #[test]
    fn the_serial_changes_exactly_when_the_records_change_and_never_goes_back() {
        let first = settle(None, 2026120201, "a A 10.0.0.1\n");
        assert_eq!(first.0, 2026120201);
        // Same records later the same day, or on a later day: the serial (and file) stay.
        let again = settle(Some((first.0, &first.1)), 2026120301, "a A 10.0.0.1\n");
        assert_eq!(again, first);
        // Records change twice on one day: the serial goes up each time.
        let second = settle(Some((first.0, &first.1)), 2026120201, "a A 10.0.0.2\n");
        assert_eq!(second.0, 2026120202);
        let third = settle(Some((second.0, &second.1)), 2026120201, "a A 10.0.0.3\n");
        assert_eq!(third.0, 2026120203);
        // A serial ahead of the date (many changes, or a clock set back) still only goes up.
        let ahead = settle(Some((2030010105, &third.1)), 2026120201, "a A 10.0.0.4\n");
        assert_eq!(ahead.0, 2030010106);
        // A new day with a change: today's first serial.
        let next_day = settle(Some((third.0, &third.1)), 2026120401, "a A 10.0.0.5\n");
        assert_eq!(next_day.0, 2026120401);
    }
}
