//! cluster.yaml: a located YAML tree (`yaml`), read field by field into raw types (`read`, `raw`), checked
//! into the model every renderer works from (`validate`); every refusal is a rule of `rules`.

pub mod error;
pub mod raw;
mod read;
pub mod rules;
mod validate;
pub mod yaml;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use error::{Pos, Problem, Rule, SpecError};
pub use raw::{
    Access, Bootstrap, CaMode, Choice, FirewallBackend, KeyAlgorithm, RawSsh, TransportKind,
};
pub use read::{NODE_FIELDS, SECTIONS};

/// The checked cluster model every renderer works from.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The cluster file as given (used in messages).
    pub file: String,
    /// Directory of the cluster file (relative paths in it are resolved against this).
    pub base_dir: PathBuf,
    /// Cluster name.
    pub name: String,
    /// `--initial-cluster-token`.
    pub token: String,
    /// static or dns.
    pub bootstrap: Bootstrap,
    /// DNS domain and SRV name suffix, if any.
    pub dns: Option<Dns>,
    /// The discovery cluster and token (`bootstrap: discovery`).
    pub discovery: Option<Discovery>,
    /// Where certificates and env files live on the host.
    pub config_dir: String,
    /// `--heartbeat-interval` and `--election-timeout` in ms when given (else cairn's 100 and 1000).
    pub raft_timing: Option<RaftTiming>,
    /// TLS settings; None = plain http.
    pub tls: Option<Tls>,
    /// Firewall backend and allowed client networks.
    pub firewall: Firewall,
    /// Log file written by rsyslog.
    pub log_file: String,
    /// Monitoring artifacts to render.
    pub monitoring: Monitoring,
    /// Options of `provision apply`.
    pub apply: Apply,
    /// Roles and the client certificates holding them (`auth:`); None leaves the cluster's auth alone.
    pub auth: Option<Auth>,
    /// Members, in file order.
    pub nodes: Vec<Node>,
    /// Non-fatal findings (e.g. an even member count).
    pub warnings: Vec<Problem>,
}

/// Raft timing for slow hosts or links (etcd's tuning guide: heartbeat about the round trip, election
/// timeout at least 5 heartbeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    /// `--heartbeat-interval` (ms).
    pub heartbeat_interval_ms: u32,
    /// `--election-timeout` (ms).
    pub election_timeout_ms: u32,
}

/// DNS discovery settings.
#[derive(Debug, Clone)]
pub struct Dns {
    /// `--discovery-srv` domain.
    pub domain: String,
    /// `--discovery-srv-name` suffix ("" for none).
    pub srv_name: String,
    /// The zone's NS records (the first is the SOA's primary); empty: the first member serves.
    pub name_servers: Vec<NameServer>,
}

/// v3 discovery settings (etcd 3.6's `--discovery-token`, `--discovery-endpoints`).
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Client URLs of the discovery cluster (all `http://` or all `https://`).
    pub endpoints: Vec<String>,
    /// The token members register under (`/_etcd/registry/<token>/…`).
    pub token: String,
    /// CA bundle of the discovery cluster's server certificates (absolute path on this machine).
    pub ca: Option<PathBuf>,
    /// Client certificate and key for the discovery cluster (absolute paths on this machine).
    pub client: Option<(PathBuf, PathBuf)>,
}

impl Discovery {
    /// Whether the discovery cluster is reached over TLS.
    pub fn tls(&self) -> bool {
        self.endpoints.iter().any(|e| e.starts_with("https://"))
    }

    /// The key holding the expected cluster size (etcd 3.6's v3discovery layout, read by cairn's
    /// bootstrap/discovery_v3.rs).
    pub fn size_key(&self) -> String {
        format!("/_etcd/registry/{}/_config/size", self.token)
    }
}

/// One name server of the rendered zone.
#[derive(Debug, Clone)]
pub struct NameServer {
    /// Its host name.
    pub name: String,
    /// Its address, for a name inside the zone that is not a member's hostname (glue).
    pub address: Option<IpAddr>,
}

/// Checked TLS settings.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Key type for generated keys.
    pub key_algorithm: KeyAlgorithm,
    /// CA lifetime.
    pub ca_validity_days: u32,
    /// Leaf lifetime.
    pub validity_days: u32,
    /// Reissue a leaf when it expires within this many days.
    pub renew_before_days: u32,
    /// Shared or separate CAs.
    pub ca: CaMode,
    /// An existing CA to sign with (absolute paths).
    pub import_ca: Option<ImportCa>,
    /// Client identities (CN).
    pub clients: Vec<String>,
}

/// Paths of an imported CA.
#[derive(Debug, Clone)]
pub struct ImportCa {
    /// CA certificate (PEM).
    pub cert: PathBuf,
    /// CA private key (PEM).
    pub key: PathBuf,
}

/// Checked firewall settings.
#[derive(Debug, Clone)]
pub struct Firewall {
    /// Backend.
    pub backend: FirewallBackend,
    /// Networks allowed to reach the client port.
    pub client_sources: Vec<ipnet::IpNet>,
}

/// Checked monitoring settings.
#[derive(Debug, Clone)]
pub struct Monitoring {
    /// Render a Prometheus scrape config.
    pub prometheus: bool,
    /// Render a ServiceMonitor + Service/Endpoints.
    pub kubernetes: bool,
    /// Kubernetes namespace.
    pub namespace: String,
}

/// One member.
#[derive(Debug, Clone)]
pub struct Node {
    /// `--name`.
    pub name: String,
    /// The IP in its peer URL: its first address of a family every member has.
    pub address: IpAddr,
    /// Every address, in file order (one per family for dual stack); the first is how this machine
    /// reaches the member (ssh, the client API, monitoring).
    pub addresses: Vec<IpAddr>,
    /// Optional FQDN (SAN, SRV target).
    pub hostname: Option<String>,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// `--data-dir`.
    pub data_dir: String,
    /// How `provision apply` reaches the member's machine.
    pub transport: TransportKind,
    /// SSH settings for `apply`.
    pub ssh: Option<RawSsh>,
}

/// Checked `auth:` section: what `provision apply` makes the cluster's users and roles.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Roles, in file order (never `root`).
    pub roles: Vec<Role>,
}

/// One role of `auth.roles`.
#[derive(Debug, Clone)]
pub struct Role {
    /// Role name.
    pub name: String,
    /// Its permissions, sorted by key range.
    pub permissions: Vec<Permission>,
    /// Client identities (certificate CNs, so user names) that hold it.
    pub clients: Vec<String>,
}

/// One permission as etcd stores it: a key (`range_end` empty), a range, or from `key` on (`range_end`
/// "\0"); every key is `"\0"`..`"\0"`, as etcdctl sends `--prefix ''`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// First key.
    pub key: Vec<u8>,
    /// End of the range (exclusive); empty for one key, "\0" for no end.
    pub range_end: Vec<u8>,
    /// What it allows.
    pub access: Access,
}

impl Permission {
    /// How the permission names its keys, for messages: `prefix "/registry/"`, `every key`, ….
    pub fn describe(&self) -> String {
        let text = |b: &[u8]| format!("{:?}", String::from_utf8_lossy(b));
        match (self.key.as_slice(), self.range_end.as_slice()) {
            ([0], [0]) => "every key".into(),
            (k, []) => format!("key {}", text(k)),
            (k, [0]) => format!("keys from {} on", text(k)),
            (k, e) if prefix_end(k) == e => format!("prefix {}", text(k)),
            (k, e) => format!("range [{}, {})", text(k), text(e)),
        }
    }
}

impl Auth {
    /// The user names the file gives roles to (one per client certificate), each with its roles.
    pub fn client_roles(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for r in &self.roles {
            for c in &r.clients {
                let roles = out.entry(c.clone()).or_default();
                if !roles.contains(&r.name) {
                    roles.push(r.name.clone());
                }
            }
        }
        out
    }
}

/// Checked `apply:` settings.
#[derive(Debug, Clone)]
pub struct Apply {
    /// `UserKnownHostsFile` for ssh (None: the user's own known_hosts).
    pub known_hosts: Option<PathBuf>,
    /// Largest clock difference allowed between hosts and this machine (certificates carry validity times).
    pub max_clock_skew_seconds: u32,
    /// How long to wait for a member or the whole cluster to become healthy.
    pub health_timeout_seconds: u32,
}

impl Spec {
    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Host part used in advertised URLs: the hostname in DNS mode (SRV targets are names), else the IP.
    pub fn advertise_host(&self, node: &Node) -> String {
        match (&self.bootstrap, &node.hostname) {
            (Bootstrap::Dns, Some(h)) => h.clone(),
            _ => url_host(node.address),
        }
    }

    /// `--initial-advertise-peer-urls` of a node.
    pub fn peer_url(&self, node: &Node) -> String {
        format!(
            "{}://{}:{}",
            self.scheme(),
            self.advertise_host(node),
            node.peer_port
        )
    }

    /// `--advertise-client-urls` of a node: one per address (in DNS mode the hostname).
    pub fn client_urls(&self, node: &Node) -> Vec<String> {
        let hosts = match (&self.bootstrap, &node.hostname) {
            (Bootstrap::Dns, Some(h)) => vec![h.clone()],
            _ => node.addresses.iter().map(|a| url_host(*a)).collect(),
        };
        hosts
            .into_iter()
            .map(|h| format!("{}://{h}:{}", self.scheme(), node.client_port))
            .collect()
    }

    /// `--initial-cluster` value (static bootstrap).
    pub fn initial_cluster(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}={}", n.name, self.peer_url(n)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A path under a node's config dir on its host (`{name}` in config_dir is the member name,
    /// so members sharing one machine keep separate files).
    pub fn host_path(&self, node: &Node, rel: &str) -> String {
        let dir = self.config_dir.replace("{name}", &node.name);
        format!("{}/{}", dir.trim_end_matches('/'), rel)
    }

    /// A node's data dir (`{name}` replaced by the member name).
    pub fn data_dir(&self, node: &Node) -> String {
        node.data_dir.replace("{name}", &node.name)
    }
}

/// An IP as it appears in a URL (IPv6 in brackets).
pub fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The range end that covers every key starting with `prefix` (etcd's `GetPrefixRangeEnd`): the prefix
/// with its last byte below 0xff incremented and the rest dropped; "\0" (no end) when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Read, parse and validate a cluster file.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        file: file.clone(),
        source,
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&file, &base_dir, &text)
}

/// Parse and validate cluster-file text (`file` is only used in messages).
pub fn parse(file: &str, base_dir: &Path, text: &str) -> Result<Spec, SpecError> {
    let problem = |rule: Rule, pos: Pos, message: String, fix: String| Problem {
        file: file.into(),
        pos,
        field: String::new(),
        rule,
        message,
        fix,
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(SpecError::Invalid(vec![problem(
                Rule::EmptyFile,
                Pos { line: 1, column: 1 },
                "the file is empty (or only comments): there is no cluster in it".into(),
                "start from one of examples/*.yaml (static3.yaml shows every section)".into(),
            )]))
        }
        Err(e) => {
            return Err(SpecError::Invalid(vec![problem(
                e.rule, e.pos, e.message, e.fix,
            )]))
        }
    };
    let mut reader = read::Reader::new(file);
    let raw = reader.spec(&root);
    validate::validate(file, base_dir, raw, reader.problems, &reader.positions)
}

#[cfg(test)]
mod tests;
