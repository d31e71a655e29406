//! cluster.yaml exactly as written: serde types that refuse unknown fields.
//! Everything here is unchecked; `spec::validate` turns it into the checked model.

use serde::Deserialize;

/// The whole cluster file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub cluster: RawCluster,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub firewall: Option<RawFirewall>,
    #[serde(default)]
    pub logging: Option<RawLogging>,
    #[serde(default)]
    pub monitoring: Option<RawMonitoring>,
    #[serde(default)]
    pub apply: Option<RawApply>,
    pub nodes: Vec<RawNode>,
}

/// `cluster:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: String,
    pub token: Option<String>,
    pub bootstrap: Option<Bootstrap>,
    pub dns: Option<RawDns>,
    pub client_port: Option<u16>,
    pub peer_port: Option<u16>,
    pub data_dir: Option<String>,
    pub config_dir: Option<String>,
    pub transport: Option<TransportKind>,
}

/// How members find each other at first start.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Bootstrap {
    /// Every member gets the full `--initial-cluster`.
    Static,
    /// Members find each other through DNS SRV records (`--discovery-srv`).
    Dns,
}

/// `cluster.dns:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub domain: Option<String>,
    #[serde(default)]
    pub srv_name: String,
}

/// `tls:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub enabled: Option<bool>,
    pub key_algorithm: Option<KeyAlgorithm>,
    pub ca_validity_days: Option<u32>,
    pub validity_days: Option<u32>,
    pub renew_before_days: Option<u32>,
    pub ca: Option<CaMode>,
    pub import_ca: Option<RawImportCa>,
    pub clients: Option<Vec<String>>,
}

/// Key type for every generated key.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (default).
    EcdsaP256,
    /// RSA 2048.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 3072.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA 4096.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

/// One CA for everything, or a peer CA and a client CA.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CaMode {
    /// One CA signs peer, server and client certificates.
    Shared,
    /// A peer CA signs peer certificates; a client CA signs server and client certificates.
    Separate,
}

/// `tls.import_ca:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImportCa {
    pub cert: String,
    pub key: String,
}

/// `firewall:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {
    pub backend: Option<FirewallBackend>,
    pub client_sources: Option<Vec<String>>,
}

/// Which firewall the hosts use.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallBackend {
    /// Our own `table inet cairn`.
    Nftables,
    /// A firewalld zone.
    Firewalld,
    /// An iptables-restore file with our own chain.
    Iptables,
    /// No firewall artifact.
    None,
}

/// `logging:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub file: Option<String>,
}

/// `monitoring:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitoring {
    pub prometheus: Option<bool>,
    pub kubernetes: Option<bool>,
    pub namespace: Option<String>,
}

/// One entry of `nodes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: String,
    pub address: String,
    pub hostname: Option<String>,
    pub client_port: Option<u16>,
    pub peer_port: Option<u16>,
    pub data_dir: Option<String>,
    pub transport: Option<TransportKind>,
    pub ssh: Option<RawSsh>,
}

/// `nodes[].ssh:` (used by `provision apply`).
#[derive(Debug, Deserialize, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    /// Login user (root, or a user with passwordless sudo); default: ~/.ssh/config, else the local user.
    pub user: Option<String>,
    /// SSH port; default: ~/.ssh/config, else 22.
    pub port: Option<u16>,
    /// Private key file; default: ~/.ssh/config and the agent.
    pub key: Option<String>,
    /// Host name or address to connect to; default: the member's `address`.
    pub host: Option<String>,
}

/// How `provision apply` reaches a member's machine.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// The system `ssh` client; the member runs as a systemd service.
    Ssh,
    /// This machine, no login; the member runs as a supervised process (pid + log file in its data dir).
    Local,
}

/// `apply:` section (options of `provision apply`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApply {
    pub known_hosts: Option<String>,
    pub max_clock_skew_seconds: Option<u32>,
    pub health_timeout_seconds: Option<u32>,
}
