//! The resolver members use for SRV bootstrap and for dialling peers by host name: the system's
//! (/etc/resolv.conf) or `--dns-server`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// How long lookups are retried when the DNS server does not answer.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// A resolver: the system's (/etc/resolv.conf) or `--dns-server`.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// A resolver for `server`, or the system configuration when None.
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Dns> {
        let resolver = match server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                let cfg = ResolverConfig::from_name_servers(vec![ns]);
                TokioResolver::builder_with_config(cfg, TokioRuntimeProvider::default()).build()
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| anyhow::anyhow!("reading /etc/resolv.conf: {e}"))?
                .build(),
        }
        .map_err(|e| anyhow::anyhow!("DNS resolver: {e}"))?;
        Ok(Dns { resolver })
    }

    /// Addresses of `host` (an IP literal is returned as is).
    pub async fn lookup_ip(&self, host: &str) -> anyhow::Result<Vec<IpAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let fqdn = if host.ends_with('.') {
            host.to_string()
        } else {
            format!("{host}.")
        };
        let found = self.resolver.lookup_ip(fqdn.as_str()).await;
        let ips: Vec<IpAddr> = found
            .map_err(|e| anyhow::anyhow!("resolving {host}: {e}"))?
            .iter()
            .collect();
        Ok(ips)
    }

    /// SRV records of `name` as (target without trailing dot, port); empty when there are none.
    pub async fn srv(&self, name: &str) -> anyhow::Result<Vec<(String, u16)>> {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut delay = Duration::from_millis(200);
        loop {
            match self.resolver.srv_lookup(name).await {
                Ok(l) => {
                    let recs = l.answers().iter().filter_map(|r| match &r.data {
                        RData::SRV(s) => {
                            Some((s.target.to_utf8().trim_end_matches('.').to_string(), s.port))
                        }
                        _ => None,
                    });
                    return Ok(recs.collect());
                }
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(Vec::new()),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!("SRV lookup {name}: {e}; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => anyhow::bail!("SRV lookup {name} failed for {RETRY_FOR:?}: {e}"),
            }
        }
    }
}
