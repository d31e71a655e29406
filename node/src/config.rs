//! The member's configuration: etcd's flag names, each with a `CAIRN_*` environment twin, checked in one
//! [`Config::validate`] pass whose messages follow etcd's (operators search for them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// etcd's `DefaultQuotaBytes`: the space quota when `--quota-backend-bytes` is 0.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd's `MaxQuotaBytes`: a larger quota is accepted with a warning.
pub const MAX_QUOTA_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// etcd's default `--bcrypt-cost` (Go's `bcrypt.DefaultCost`).
pub const DEFAULT_BCRYPT_COST: u32 = 10;

/// Whether this member founds a new cluster or joins an existing one (`--initial-cluster-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    /// Every member listed in `--initial-cluster` starts together.
    New,
    /// The member was added with `member add` and joins a running cluster.
    Existing,
}

/// How `--auto-compaction-retention` is read (`--auto-compaction-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompactionMode {
    /// Keep a time window of history: hours ("1") or a duration ("30m", "1h30m").
    Periodic,
    /// Keep the last N revisions.
    Revision,
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
    /// Specify auth token type: 'simple' (random tokens registered through Raft, expiring after
    /// --auth-token-ttl) or 'jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m' (signed tokens; a
    /// member with only pub-key checks tokens but cannot issue them).
    #[arg(long, env = "CAIRN_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// The lifetime in seconds of a simple auth token since its last use.
    #[arg(long, env = "CAIRN_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// Specify bcrypt algorithm cost factor for auth password hashing.
    #[arg(long, env = "CAIRN_BCRYPT_COST", default_value_t = DEFAULT_BCRYPT_COST)]
    pub bcrypt_cost: u32,
    /// Comma-separated white list of origins for CORS (cross-origin resource sharing) on the client
    /// port's HTTP side; empty or * allows all.
    #[arg(long, env = "CAIRN_CORS", default_value = "*", value_delimiter = ',')]
    pub cors: Vec<String>,
    /// Comma-separated acceptable host names in plain-HTTP client requests (DNS rebinding protection;
    /// HTTPS requests are always accepted); empty or * allows all.
    #[arg(
        long,
        env = "CAIRN_HOST_WHITELIST",
        default_value = "*",
        value_delimiter = ','
    )]
    pub host_whitelist: Vec<String>,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "CAIRN_MAX_REQUEST_BYTES", default_value_t = 1024 * 1024 * 3 / 2)]
    pub max_request_bytes: usize,
    /// Raise alarms when backend size exceeds the given quota. 0 means use the default quota.
    /// A negative value disables the quota (as in etcd).
    #[arg(
        long,
        env = "CAIRN_QUOTA_BACKEND_BYTES",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub quota_backend_bytes: i64,
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
    /// Interpret 'auto-compaction-retention' as 'periodic' (time) or 'revision' (count).
    #[arg(
        long,
        env = "CAIRN_AUTO_COMPACTION_MODE",
        value_enum,
        default_value = "periodic"
    )]
    pub auto_compaction_mode: CompactionMode,
    /// Discovery bootstrap (`--discovery`, `--discovery-token`/`--discovery-endpoints`, ...).
    #[command(flatten)]
    pub discovery: DiscoveryFlags,
    /// Auto compaction retention for the mvcc key value store: hours or a duration ("1", "30m") in
    /// periodic mode, a number of revisions in revision mode. 0 disables auto compaction.
    #[arg(long, env = "CAIRN_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Duration of periodic watch progress notifications (a Go duration: "10m", "500ms"). Zero or
    /// negative keeps etcd's default of 10m.
    #[arg(
        long,
        env = "CAIRN_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m0s",
        value_parser = retention::parse_flag_duration
    )]
    pub experimental_watch_progress_notify_interval: FlagDuration,
    /// Worker threads of the async runtime (cairn's own, like Go's GOMAXPROCS for etcd). Default: the
    /// CPUs this process may use, shared out among the members of --initial-cluster on this host.
    #[arg(long, env = "CAIRN_RUNTIME_THREADS")]
    pub runtime_threads: Option<usize>,
}

impl Config {
    /// How often watchers that asked for progress notifications get one (etcd applies the flag only
    /// when it is positive).
    pub fn watch_progress_interval(&self) -> Duration {
        match self.experimental_watch_progress_notify_interval {
            FlagDuration::Positive(d) => d,
            FlagDuration::ZeroOrNegative => DEFAULT_WATCH_PROGRESS_INTERVAL,
        }
    }

    /// The space quota in bytes (etcd's `NewBackendQuota`): 0 is etcd's default of 2 GiB, a
    /// negative value disables it (None).
    pub fn quota_bytes(&self) -> Option<u64> {
        match self.quota_backend_bytes {
            q if q < 0 => None,
            0 => Some(DEFAULT_QUOTA_BYTES),
            q => Some(q.unsigned_abs()),
        }
    }

    /// How auth tokens are made (`--auth-token`).
    pub fn auth_token(&self) -> Result<AuthToken, ConfigError> {
        AuthToken::parse(&self.auth_token)
    }

    /// The history the leader keeps, from `--auto-compaction-mode` and `--auto-compaction-retention`.
    pub fn auto_compaction(&self) -> Result<Retention, ConfigError> {
        let revision = self.auto_compaction_mode == CompactionMode::Revision;
        Retention::parse(revision, &self.auto_compaction_retention).map_err(|why| {
            ConfigError(format!(
                "--auto-compaction-retention: {why} (--auto-compaction-mode {})",
                if revision { "revision" } else { "periodic" }
            ))
        })
    }
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

mod auth_token;
pub mod discovery;
mod retention;
mod runtime_threads;

pub use auth_token::{AuthToken, JwtSpec, SignMethod};

pub use retention::FlagDuration;
pub use runtime_threads::RuntimeThreads;

/// etcd's `DefaultWatchProgressNotifyInterval`.
pub const DEFAULT_WATCH_PROGRESS_INTERVAL: Duration = Duration::from_secs(600);
mod validate;

pub use discovery::DiscoveryFlags;
pub use retention::Retention;

#[cfg(test)]
mod tests;
