//! Discovery bootstrap flags: etcd 3.4's v2 discovery (`--discovery URL`, `--discovery-fallback`,
//! `--discovery-proxy`) and etcd 3.6's v3 discovery (`--discovery-token`, `--discovery-endpoints` and
//! its client flags), with etcd's names, defaults and refusals.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{err, parse_url, ConfigError};

/// What to do when the v2 discovery service says the cluster is full (`--discovery-fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fallback {
    /// Exit with etcd's error.
    Exit,
    /// Become a proxy (etcd 3.4's v2 proxy; cairn has none and refuses this value).
    Proxy,
}

/// The discovery flags (flattened into [`super::Config`]).
#[derive(Debug, Clone, Args)]
pub struct DiscoveryFlags {
    /// Discovery URL used to bootstrap the cluster (etcd v2 discovery protocol).
    #[arg(long, env = "CAIRN_DISCOVERY")]
    pub discovery: Option<String>,
    /// Expected behavior ('exit' or 'proxy') when discovery services fails; cairn supports 'exit'.
    #[arg(
        long,
        env = "CAIRN_DISCOVERY_FALLBACK",
        value_enum,
        default_value = "exit"
    )]
    pub discovery_fallback: Fallback,
    /// HTTP proxy to use for traffic to the discovery service.
    #[arg(long, env = "CAIRN_DISCOVERY_PROXY")]
    pub discovery_proxy: Option<String>,
    /// V3 discovery: discovery token for the etcd cluster to be bootstrapped.
    #[arg(long, env = "CAIRN_DISCOVERY_TOKEN")]
    pub discovery_token: Option<String>,
    /// V3 discovery: List of gRPC endpoints of the discovery service.
    #[arg(long, env = "CAIRN_DISCOVERY_ENDPOINTS", value_delimiter = ',')]
    pub discovery_endpoints: Vec<String>,
    /// V3 discovery: dial timeout for client connections.
    #[arg(long, env = "CAIRN_DISCOVERY_DIAL_TIMEOUT", value_parser = parse_duration, default_value = "2s")]
    pub discovery_dial_timeout: Duration,
    /// V3 discovery: timeout for discovery requests (excluding dial timeout).
    #[arg(long, env = "CAIRN_DISCOVERY_REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "5s")]
    pub discovery_request_timeout: Duration,
    /// V3 discovery: keepalive time for client connections.
    #[arg(long, env = "CAIRN_DISCOVERY_KEEPALIVE_TIME", value_parser = parse_duration, default_value = "2s")]
    pub discovery_keepalive_time: Duration,
    /// V3 discovery: keepalive timeout for client connections.
    #[arg(long, env = "CAIRN_DISCOVERY_KEEPALIVE_TIMEOUT", value_parser = parse_duration, default_value = "6s")]
    pub discovery_keepalive_timeout: Duration,
    /// V3 discovery: disable transport security for client connections.
    #[arg(long, env = "CAIRN_DISCOVERY_INSECURE_TRANSPORT", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub discovery_insecure_transport: bool,
    /// V3 discovery: skip server certificate verification (testing only).
    #[arg(long, env = "CAIRN_DISCOVERY_INSECURE_SKIP_TLS_VERIFY")]
    pub discovery_insecure_skip_tls_verify: bool,
    /// V3 discovery: identify secure client using this TLS certificate file.
    #[arg(long, env = "CAIRN_DISCOVERY_CERT")]
    pub discovery_cert: Option<PathBuf>,
    /// V3 discovery: identify secure client using this TLS key file.
    #[arg(long, env = "CAIRN_DISCOVERY_KEY")]
    pub discovery_key: Option<PathBuf>,
    /// V3 discovery: verify certificates of TLS-enabled secure servers using this CA bundle.
    #[arg(long, env = "CAIRN_DISCOVERY_CACERT")]
    pub discovery_cacert: Option<PathBuf>,
    /// V3 discovery: username[:password] for authentication.
    #[arg(long, env = "CAIRN_DISCOVERY_USER")]
    pub discovery_user: Option<String>,
    /// V3 discovery: password for authentication.
    #[arg(long, env = "CAIRN_DISCOVERY_PASSWORD")]
    pub discovery_password: Option<String>,
}

impl DiscoveryFlags {
    /// Whether either discovery protocol is asked for.
    pub fn enabled(&self) -> bool {
        self.discovery.is_some() || self.discovery_token.is_some()
    }

    /// etcd's checks of the discovery flags; `others` counts the other bootstrap flags set
    /// (`--initial-cluster`, `--discovery-srv`).
    pub fn validate(&self, others: usize) -> Result<(), ConfigError> {
        let v3 = self.discovery_token.is_some() || !self.discovery_endpoints.is_empty();
        let set = others + usize::from(self.discovery.is_some()) + usize::from(v3);
        if set > 1 {
            return err(
                "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \
                 \"discovery\", \"discovery-endpoints\" or \"discovery-srv\"",
            );
        }
        if self.discovery_token.is_some() == self.discovery_endpoints.is_empty() {
            return err("both --discovery-token and --discovery-endpoints must be set");
        }
        if self.discovery_endpoints.iter().any(|e| e.trim().is_empty()) {
            return err("--discovery-endpoints must not contain empty endpoints");
        }
        if let Some(u) = &self.discovery {
            parse_url("discovery", base_of(u))?;
        }
        if let Some(p) = &self.discovery_proxy {
            parse_url("discovery-proxy", p)?;
        }
        if self.discovery.is_some() && self.discovery_fallback == Fallback::Proxy {
            return err(
                "--discovery-fallback proxy: cairn has no proxy mode (etcd 3.4's v2 proxy); use \
                 --discovery-fallback exit and a new discovery token",
            );
        }
        if self.discovery_cert.is_some() != self.discovery_key.is_some() {
            return err("--discovery-cert and --discovery-key must be given together");
        }
        Ok(())
    }
}

/// `scheme://host:port` of a discovery URL (its path is the token).
pub fn base_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Go-style durations as etcd's flags take them: "500ms", "2s", "1m30s".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
        let n: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map(|i| digits + i)
            .unwrap_or(rest.len());
        let secs = match &rest[digits..unit_end] {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_bases_parse_as_etcd_writes_them() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5").is_err());
        assert_eq!(
            base_of("http://127.0.0.1:2379/v2/keys/discovery/abc"),
            "http://127.0.0.1:2379"
        );
    }
}
