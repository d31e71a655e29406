//! The member's configuration: etcd's flag names, each with a `CAIRN_*` environment twin, checked in one
//! [`Config::validate`] pass whose messages follow etcd's (operators search for them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Whether this member founds a new cluster or joins an existing one (`--initial-cluster-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    /// Every member listed in `--initial-cluster` starts together.
    New,
    /// The member was added with `member add` and joins a running cluster.
    Existing,
}

/// Cairn member flags (names, defaults and meanings as in etcd 3.4).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: a Raft-replicated key-value server speaking the etcd v3 API"
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, env = "CAIRN_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory.
    #[arg(long, env = "CAIRN_DATA_DIR", default_value = "default.etcd")]
    pub data_dir: PathBuf,
    /// Comma-separated URLs to listen on for client traffic.
    #[arg(
        long,
        env = "CAIRN_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub listen_client_urls: Vec<String>,
    /// Comma-separated client URLs of this member, advertised to the cluster.
    #[arg(
        long,
        env = "CAIRN_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379",
        value_delimiter = ','
    )]
    pub advertise_client_urls: Vec<String>,
    /// Comma-separated URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "CAIRN_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub listen_peer_urls: Vec<String>,
    /// Comma-separated peer URLs of this member, advertised to the cluster.
    #[arg(
        long,
        env = "CAIRN_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380",
        value_delimiter = ','
    )]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Initial cluster configuration for bootstrapping: name=peer-url,...
    /// [default: default=http://localhost:2380 unless --discovery-srv is given]
    #[arg(long, env = "CAIRN_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster token, so clusters bootstrapped from the same flags get distinct IDs.
    #[arg(
        long,
        env = "CAIRN_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Initial cluster state ('new' or 'existing').
    #[arg(
        long,
        env = "CAIRN_INITIAL_CLUSTER_STATE",
        value_enum,
        default_value = "new"
    )]
    pub initial_cluster_state: ClusterState,
    /// Path to the client server TLS cert file.
    #[arg(long, env = "CAIRN_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long, env = "CAIRN_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "CAIRN_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Require client certificates signed by --trusted-ca-file.
    #[arg(long, env = "CAIRN_CLIENT_CERT_AUTH")]
    pub client_cert_auth: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long, env = "CAIRN_PEER_CERT_FILE")]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "CAIRN_PEER_KEY_FILE")]
    pub peer_key_file: Option<PathBuf>,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "CAIRN_PEER_TRUSTED_CA_FILE")]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Require peer certificates signed by --peer-trusted-ca-file.
    #[arg(long, env = "CAIRN_PEER_CLIENT_CERT_AUTH")]
    pub peer_client_cert_auth: bool,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "CAIRN_MAX_REQUEST_BYTES", default_value_t = 1024 * 1024 * 3 / 2)]
    pub max_request_bytes: usize,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "CAIRN_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "CAIRN_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, env = "CAIRN_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Additional URLs to serve /metrics and /health on (plain HTTP or HTTPS with the client certs).
    #[arg(long, env = "CAIRN_LISTEN_METRICS_URLS", value_delimiter = ',')]
    pub listen_metrics_urls: Vec<String>,
    /// Log level: debug, info, warn, error.
    #[arg(long, env = "CAIRN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Domain whose SRV records (_etcd-server-ssl._tcp / _etcd-server._tcp) list the initial members.
    #[arg(long, env = "CAIRN_DISCOVERY_SRV")]
    pub discovery_srv: Option<String>,
    /// Suffix for the SRV name queried with --discovery-srv (_etcd-server-ssl-<name>._tcp).
    #[arg(long, env = "CAIRN_DISCOVERY_SRV_NAME")]
    pub discovery_srv_name: Option<String>,
    /// DNS server (ip:port) used for --discovery-srv instead of the system resolver.
    #[arg(long, env = "CAIRN_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
}

/// A configuration the member refuses to start with; the text is what the operator sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// A parsed listen or advertise URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

/// Parse `http(s)://host:port` (etcd accepts no path) naming `flag` in errors.
pub fn parse_url(flag: &str, url: &str) -> Result<ParsedUrl, ConfigError> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return err(format!("--{flag}: URL scheme must be http or https: {url}"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => {
            return err(format!(
                "--{flag}: missing port in address {url} (e.g. https://10.0.1.10:2380)"
            ))
        }
    };
    let port: u16 = port
        .parse()
        .map_err(|_| ConfigError(format!("--{flag}: invalid port in {url}")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(ParsedUrl { tls, host, port })
}

/// Parse `--initial-cluster` into (name, peer URL) pairs, in the order given.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((name, url)) = item.split_once('=') else {
            return err(format!(
                "--initial-cluster: entry {item:?} is not name=peer-url"
            ));
        };
        parse_url("initial-cluster", url)?;
        out.push((name.to_string(), url.to_string()));
    }
    if out.is_empty() {
        return err("--initial-cluster is empty");
    }
    Ok(out)
}

impl Config {
    /// Check every flag together; the first refusal is returned with etcd's wording.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return err("--name must not be empty");
        }
        for (flag, urls) in [
            ("listen-client-urls", &self.listen_client_urls),
            ("listen-peer-urls", &self.listen_peer_urls),
        ] {
            if urls.is_empty() {
                return err(format!("--{flag} must list at least one URL"));
            }
            for u in urls {
                let p = parse_url(flag, u)?;
                // etcd binds to literal IPs only ("localhost" is allowed for convenience, as etcd does).
                if p.host != "localhost" && p.host.parse::<std::net::IpAddr>().is_err() {
                    return err(format!("expected IP in URL for binding ({u})"));
                }
            }
        }
        for u in self
            .advertise_client_urls
            .iter()
            .chain(&self.listen_metrics_urls)
        {
            parse_url("advertise-client-urls", u)?;
        }
        for u in &self.initial_advertise_peer_urls {
            parse_url("initial-advertise-peer-urls", u)?;
        }
        match (&self.discovery_srv, &self.initial_cluster) {
            (Some(_), Some(_)) => {
                return err("--discovery-srv and --initial-cluster cannot both be set: \
                            bootstrap either from DNS SRV records or from a static member list")
            }
            (None, _) => self.validate_membership()?,
            // Checked once the SRV records are resolved (bootstrap::srv).
            (Some(_), None) => {}
        }
        if self.heartbeat_interval == 0 || self.election_timeout < 5 * self.heartbeat_interval {
            return err(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            ));
        }
        if self.max_request_bytes == 0 {
            return err("--max-request-bytes must be greater than 0");
        }
        self.validate_tls()
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let sides = [
            (
                "",
                &self.cert_file,
                &self.key_file,
                &self.trusted_ca_file,
                self.client_cert_auth,
                &self.listen_client_urls,
            ),
            (
                "peer-",
                &self.peer_cert_file,
                &self.peer_key_file,
                &self.peer_trusted_ca_file,
                self.peer_client_cert_auth,
                &self.listen_peer_urls,
            ),
        ];
        for (p, cert, key, ca, auth, urls) in sides {
            if cert.is_some() != key.is_some() {
                return err(format!(
                    "--{p}cert-file and --{p}key-file must be given together"
                ));
            }
            if auth && ca.is_none() {
                return err(format!(
                    "--{p}client-cert-auth requires --{p}trusted-ca-file"
                ));
            }
            let any_https = urls.iter().any(|u| u.starts_with("https://"));
            if any_https && cert.is_none() {
                let flag = if p.is_empty() {
                    "listen-client-urls"
                } else {
                    "listen-peer-urls"
                };
                return err(format!(
                    "--{flag} uses https but no TLS certificate was given: set --{p}cert-file and --{p}key-file"
                ));
            }
            if auth && !any_https {
                return err(format!(
                    "--{p}client-cert-auth needs https:// URLs in the listen URLs"
                ));
            }
        }
        Ok(())
    }

    /// The static member list (etcd's default when neither it nor --discovery-srv is given).
    pub fn initial_cluster_or_default(&self) -> String {
        self.initial_cluster.clone().unwrap_or_else(|| {
            let urls = self.initial_advertise_peer_urls.iter();
            urls.map(|u| format!("{}={u}", self.name))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// This member must be listed in the initial cluster, with exactly its advertised peer URLs.
    pub fn validate_membership(&self) -> Result<(), ConfigError> {
        let members = parse_initial_cluster(&self.initial_cluster_or_default())?;
        let mine: Vec<&String> = members
            .iter()
            .filter(|(n, _)| n == &self.name)
            .map(|(_, u)| u)
            .collect();
        if mine.is_empty() {
            return err(format!(
                "{} not listed in the initial cluster config",
                self.name
            ));
        }
        let mut a: Vec<&String> = mine;
        let mut b: Vec<&String> = self.initial_advertise_peer_urls.iter().collect();
        a.sort();
        b.sort();
        if a != b {
            return err(format!(
                "{} has different advertised URLs in the cluster and advertised peer URLs list",
                self.name
            ));
        }
        Ok(())
    }

    /// This member's entries from `--initial-cluster`, or all members (name, peer URLs) grouped by name.
    pub fn initial_members(&self) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (n, u) in parse_initial_cluster(&self.initial_cluster_or_default())? {
            match out.iter_mut().find(|(m, _)| *m == n) {
                Some((_, urls)) => urls.push(u),
                None => out.push((n, vec![u])),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<&'static str> {
        vec![
            "cairn",
            "--name=infra0",
            "--initial-cluster=infra0=http://127.0.0.1:2380,infra1=http://127.0.0.1:3380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--listen-client-urls=http://127.0.0.1:2379",
        ]
    }

    fn check(extra: &[&str]) -> Result<(), ConfigError> {
        let flag = |a: &str| a.split('=').next().unwrap_or_default().to_string();
        let mut args: Vec<&str> = base()
            .into_iter()
            .filter(|b| !extra.iter().any(|e| flag(e) == flag(b)))
            .collect();
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
            .map_err(|e| ConfigError(e.to_string()))?
            .validate()
    }

    #[test]
    fn valid_static_config_is_accepted() {
        assert_eq!(check(&[]), Ok(()));
    }

    #[test]
    fn name_missing_from_initial_cluster_is_refused() {
        let e = check(&["--name=infra9"]).unwrap_err();
        assert_eq!(e.0, "infra9 not listed in the initial cluster config");
    }

    #[test]
    fn advertised_peer_urls_must_match_the_members_entry() {
        let e = check(&["--initial-advertise-peer-urls=http://127.0.0.1:9999"]).unwrap_err();
        assert_eq!(
            e.0,
            "infra0 has different advertised URLs in the cluster and advertised peer URLs list"
        );
    }

    #[test]
    fn listen_url_with_hostname_is_refused() {
        let e = check(&["--listen-peer-urls=https://hketcd:2380"]).unwrap_err();
        assert_eq!(e.0, "expected IP in URL for binding (https://hketcd:2380)");
    }

    #[test]
    fn https_without_cert_files_is_refused() {
        let e = check(&["--listen-client-urls=https://127.0.0.1:2379"]).unwrap_err();
        assert!(e.0.contains("--cert-file and --key-file"), "{}", e.0);
    }

    #[test]
    fn cert_without_key_is_refused() {
        let e = check(&["--peer-cert-file=/x.pem"]).unwrap_err();
        assert_eq!(
            e.0,
            "--peer-cert-file and --peer-key-file must be given together"
        );
    }

    #[test]
    fn client_cert_auth_without_ca_is_refused() {
        let e = check(&[
            "--listen-client-urls=https://127.0.0.1:2379",
            "--cert-file=/c.pem",
            "--key-file=/k.pem",
            "--client-cert-auth",
        ])
        .unwrap_err();
        assert_eq!(e.0, "--client-cert-auth requires --trusted-ca-file");
    }

    #[test]
    fn election_timeout_must_exceed_five_heartbeats() {
        let e = check(&["--heartbeat-interval=300", "--election-timeout=1000"]).unwrap_err();
        assert!(e.0.contains("at least as 5 times"), "{}", e.0);
    }

    #[test]
    fn bad_url_scheme_names_the_flag() {
        let e = check(&["--advertise-client-urls=ftp://127.0.0.1:1"]).unwrap_err();
        assert!(e.0.starts_with("--advertise-client-urls"), "{}", e.0);
    }

    #[test]
    fn discovery_srv_with_initial_cluster_is_refused() {
        let e = check(&["--discovery-srv=example.com"]).unwrap_err();
        assert!(
            e.0.starts_with("--discovery-srv and --initial-cluster cannot both be set"),
            "{}",
            e.0
        );
    }

    #[test]
    fn without_initial_cluster_the_member_lists_itself() {
        let c = Config::try_parse_from(["cairn", "--name=solo"]).unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.initial_cluster_or_default(), "solo=http://localhost:2380");
        let c = Config::try_parse_from([
            "cairn",
            "--name=solo",
            "--initial-advertise-peer-urls=http://127.0.0.1:5",
            "--listen-peer-urls=http://127.0.0.1:5",
        ])
        .unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.initial_cluster_or_default(), "solo=http://127.0.0.1:5");
    }

    #[test]
    fn unknown_cluster_state_is_a_usage_error() {
        assert!(check(&["--initial-cluster-state=maybe"]).is_err());
    }

    #[test]
    fn defaults_match_etcd() {
        let c = Config::try_parse_from(base()).unwrap();
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!((c.heartbeat_interval, c.election_timeout), (100, 1000));
        assert_eq!(c.initial_cluster_state, ClusterState::New);
    }
}
