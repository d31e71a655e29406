//! cluster.yaml: raw serde types (`raw`), problems (`error`), and the checked model built by `load`.

pub mod error;
pub mod raw;
mod validate;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use error::{Problem, SpecError};
pub use raw::{Bootstrap, CaMode, FirewallBackend, KeyAlgorithm, RawSsh, TransportKind};

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
    /// Where certificates and env files live on the host.
    pub config_dir: String,
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
    /// Members, in file order.
    pub nodes: Vec<Node>,
    /// Non-fatal findings (e.g. an even member count).
    pub warnings: Vec<Problem>,
}

/// DNS discovery settings.
#[derive(Debug, Clone)]
pub struct Dns {
    /// `--discovery-srv` domain.
    pub domain: String,
    /// `--discovery-srv-name` suffix ("" for none).
    pub srv_name: String,
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
    /// Bind and advertise IP.
    pub address: IpAddr,
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

    /// `--advertise-client-urls` of a node.
    pub fn client_url(&self, node: &Node) -> String {
        format!(
            "{}://{}:{}",
            self.scheme(),
            self.advertise_host(node),
            node.client_port
        )
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
    let raw: raw::RawSpec =
        serde_yaml::from_str(text).map_err(|e| SpecError::Invalid(vec![yaml_problem(file, &e)]))?;
    validate::validate(file, base_dir, raw)
}

/// Turn a serde_yaml error into a problem at line:column, with "did you mean" for unknown fields.
fn yaml_problem(file: &str, e: &serde_yaml::Error) -> Problem {
    let at = e
        .location()
        .map(|l| format!("{}:{}", l.line(), l.column()))
        .unwrap_or_else(|| "?".into());
    let full = e.to_string();
    // serde_yaml appends " at line L column C"; the location is already in `at`.
    let message = match full.find(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    let fix = did_you_mean(&message).unwrap_or_else(|| {
        "see the cluster.yaml reference in README.md (examples/ has complete files)".into()
    });
    Problem {
        file: file.into(),
        at,
        message,
        fix,
    }
}

/// For "unknown field `x`, expected one of `a`, `b`" (or unknown variant), suggest the closest name.
fn did_you_mean(message: &str) -> Option<String> {
    let kind = if message.contains("unknown field") {
        "field"
    } else if message.contains("unknown variant") {
        "value"
    } else {
        return None;
    };
    let mut ticks = message.split('`').skip(1).step_by(2);
    let given = ticks.next()?;
    let expected: Vec<&str> = ticks.collect();
    let best = expected
        .iter()
        .map(|c| (strsim::jaro_winkler(given, c), *c))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((score, cand)) if score >= 0.8 => Some(format!(
            "did you mean `{cand}`? (allowed {kind}s: {})",
            expected.join(", ")
        )),
        _ => Some(format!(
            "remove `{given}`; allowed {kind}s here: {}",
            expected.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests;
