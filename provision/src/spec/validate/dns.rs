//! The zone: domain, SRV name, name servers.

use std::net::IpAddr;

use super::super::raw::*;
use super::super::*;
use super::nodes::unusable;
use super::{is_dns_name, is_simple_name, Collector};

pub(super) fn check_dns(
    c: &mut Collector,
    raw: Option<RawDns>,
    bootstrap: Bootstrap,
    nodes: &[Node],
) -> Option<Dns> {
    let d = raw.unwrap_or_default();
    let domain = match d.domain {
        Some(domain) if is_dns_name(&domain) => domain.trim_end_matches('.').to_string(),
        Some(domain) => {
            c.error(
                Rule::BadDomain,
                "cluster.dns.domain",
                format!("{domain:?} is not a valid DNS domain"),
                "write a domain such as example.com",
            );
            return None;
        }
        None => {
            if bootstrap == Bootstrap::Dns {
                c.error(
                    Rule::DnsWithoutDomain,
                    "cluster.dns.domain",
                    "bootstrap: dns needs a DNS domain to look up SRV records in (--discovery-srv)".into(),
                    "add `dns: { domain: example.com }` under `cluster:`, or use `bootstrap: static`",
                );
            }
            return None;
        }
    };
    let srv_name = d.srv_name.unwrap_or_default();
    if !srv_name.is_empty() && !is_simple_name(&srv_name) {
        c.error(
            Rule::BadSrvName,
            "cluster.dns.srv_name",
            format!("srv_name {srv_name:?} is not a simple name"),
            "use letters, digits and '-' (it becomes _etcd-server-ssl-<srv_name>._tcp)",
        );
    }
    let mut name_servers = Vec::new();
    for (i, ns) in d.name_servers.into_iter().enumerate() {
        let field = format!("cluster.dns.name_servers[{i}]");
        let Some(name) = ns.name else { continue };
        let name = name.trim_end_matches('.').to_string();
        if !is_dns_name(&name) {
            c.error(
                Rule::BadNameServer,
                &field,
                format!("name server {name:?} is not a DNS name"),
                "write the name server's host name, e.g. ns1.example.net",
            );
            continue;
        }
        let address = match ns
            .address
            .map(|a| a.trim().parse::<IpAddr>().map_err(|_| a))
        {
            Some(Ok(ip)) if unusable(ip).is_none() => Some(ip),
            Some(Ok(ip)) => {
                c.error(
                    Rule::BadNameServer,
                    &format!("{field}.address"),
                    format!("{ip} cannot be a name server's address"),
                    "write the name server's IP",
                );
                continue;
            }
            Some(Err(a)) => {
                c.error(
                    Rule::BadNameServer,
                    &format!("{field}.address"),
                    format!("{a:?} is not an IPv4 or IPv6 address"),
                    "write the name server's IP",
                );
                continue;
            }
            None => None,
        };
        let in_zone = name == domain || name.ends_with(&format!(".{domain}"));
        let is_member = nodes
            .iter()
            .any(|n| n.hostname.as_deref() == Some(name.as_str()));
        if in_zone && address.is_none() && !is_member {
            c.error(
                Rule::NameServerWithoutAddress,
                &field,
                format!(
                    "name server {name} is inside {domain} but is no member's hostname, so the zone has no address \
                     for it (secondaries could not reach it)"
                ),
                &format!("write it as `{{ name: {name}, address: <its IP> }}`, or name a server outside {domain}"),
            );
            continue;
        }
        name_servers.push(NameServer { name, address });
    }
    // Without name_servers the zone names the first member inside it as its server; with none there, the
    // zone would have an NS record without an address (named refuses to load it).
    let member_inside = nodes.iter().any(|n| {
        n.hostname
            .as_deref()
            .is_some_and(|h| h.ends_with(&format!(".{domain}")))
    });
    if name_servers.is_empty()
        && !member_inside
        && c.errors.iter().all(|p| !p.field.starts_with("cluster.dns"))
    {
        c.error(
            Rule::ZoneWithoutNameServer,
            "cluster.dns",
            format!(
                "the zone {domain} would have no name server with an address: no member's hostname is inside it \
                 and name_servers is empty"
            ),
            &format!("give the members hostnames under {domain}, or list the zone's servers in `name_servers`"),
        );
    }
    Some(Dns {
        domain,
        srv_name,
        name_servers,
    })
}
