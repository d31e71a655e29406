//! DNS SRV bootstrap (`--discovery-srv`), as etcd's `srv.GetCluster`: the initial cluster is built from
//! `_etcd-server-ssl[-NAME]._tcp.DOMAIN` (https) then `_etcd-server[-NAME]._tcp.DOMAIN` (http); this member
//! is the SRV target that resolves to the same address as one of its advertised peer URLs. URLs keep the
//! SRV target names (so every member derives the same IDs), which is why dialing peers may need DNS.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::config::{parse_url, Config, ConfigError};
use crate::dns::Dns;

/// Build `--initial-cluster` from the SRV records of `--discovery-srv`.
pub async fn initial_cluster(cfg: &Config, dns: &Dns) -> anyhow::Result<String> {
    let domain = cfg
        .discovery_srv
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('.');
    let suffix = cfg
        .discovery_srv_name
        .as_deref()
        .map(|n| format!("-{n}"))
        .unwrap_or_default();
    // Our advertised peer addresses, with the scheme each one uses.
    let mut mine: Vec<(SocketAddr, bool)> = Vec::new();
    for u in &cfg.initial_advertise_peer_urls {
        let p = parse_url("initial-advertise-peer-urls", u)?;
        for ip in dns.lookup_ip(&p.host).await? {
            mine.push((SocketAddr::new(ip, p.port), p.tls));
        }
    }
    let mut parts = Vec::new();
    let mut found_self = false;
    let mut temp_name = 0;
    let mut queried = Vec::new();
    for (service, https) in [("_etcd-server-ssl", true), ("_etcd-server", false)] {
        let name = format!("{service}{suffix}._tcp.{domain}.");
        let records = dns.srv(&name).await?;
        queried.push(name);
        for (target, port) in records {
            let addrs: BTreeSet<SocketAddr> = dns
                .lookup_ip(&target)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect();
            let me = mine.iter().find(|(a, _)| addrs.contains(a));
            let scheme = if https { "https" } else { "http" };
            let member = match me {
                Some((_, tls)) if *tls != https => {
                    return Err(ConfigError(format!(
                        "bootstrap at {target}:{port} from DNS for {domain} has scheme mismatch with expected \
                         peer {scheme}: check --initial-advertise-peer-urls"
                    ))
                    .into())
                }
                Some(_) => {
                    found_self = true;
                    cfg.name.clone()
                }
                None => {
                    temp_name += 1;
                    format!("{}", temp_name - 1)
                }
            };
            parts.push(format!("{member}={scheme}://{target}:{port}"));
        }
    }
    if parts.is_empty() {
        return Err(ConfigError(format!(
            "no SRV records found: looked up {}",
            queried.join(" and ")
        ))
        .into());
    }
    if !found_self {
        // etcd's words first (operators search for them), then what was compared with what.
        return Err(ConfigError(format!(
            "cannot find local etcd member {:?} in SRV records: its advertised peer URL {} is not among \
             the SRV targets of {domain} ({} from {}); fix --initial-advertise-peer-urls or the DNS records",
            cfg.name,
            cfg.initial_advertise_peer_urls.join(","),
            parts.join(","),
            queried.join(" and ")
        ))
        .into());
    }
    let cluster = parts.join(",");
    tracing::info!(initial_cluster = %cluster, "got bootstrap from DNS for {domain}");
    Ok(cluster)
}
