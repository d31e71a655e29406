//! cluster.yaml as written, field by field (`spec::read` fills it from the YAML tree). Everything here is
//! unchecked; `spec::validate` turns it into the checked model. A field that is missing or was refused
//! while reading is `None`, so validation goes on with the rest of the file.

use serde::{Deserialize, Serialize};

/// A field whose value is one of a fixed set of words.
pub trait Choice: Sized + Copy + PartialEq + 'static {
    /// Every value with its spelling in cluster.yaml.
    const ALL: &'static [(&'static str, Self)];

    /// The spelling in cluster.yaml (also how messages name the value).
    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

macro_rules! choice_display {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    )*};
}

/// The whole cluster file.
#[derive(Debug, Default)]
pub struct RawSpec {
    pub cluster: RawCluster,
    pub tls: Option<RawTls>,
    pub firewall: Option<RawFirewall>,
    pub logging: Option<RawLogging>,
    pub monitoring: Option<RawMonitoring>,
    pub apply: Option<RawApply>,
    pub auth: Option<RawAuth>,
    pub nodes: Vec<RawNode>,
}

/// `cluster:` section.
#[derive(Debug, Default)]
pub struct RawCluster {
    pub name: Option<String>,
    pub token: Option<String>,
    pub bootstrap: Option<Bootstrap>,
    pub dns: Option<RawDns>,
    pub discovery: Option<RawDiscovery>,
    pub client_port: Option<u16>,
    pub peer_port: Option<u16>,
    pub data_dir: Option<String>,
    pub config_dir: Option<String>,
    pub transport: Option<TransportKind>,
    pub heartbeat_interval_ms: Option<u32>,
    pub election_timeout_ms: Option<u32>,
}

/// How members find each other at first start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// Every member gets the full `--initial-cluster`.
    Static,
    /// Members find each other through DNS SRV records (`--discovery-srv`).
    Dns,
    /// Members register under a token in another etcd/cairn cluster (etcd 3.6's v3 discovery:
    /// `--discovery-token`, `--discovery-endpoints`).
    Discovery,
}

impl Choice for Bootstrap {
    const ALL: &'static [(&'static str, Self)] = &[
        ("static", Self::Static),
        ("dns", Self::Dns),
        ("discovery", Self::Discovery),
    ];
}

/// `cluster.discovery:` (the discovery cluster: another etcd or cairn cluster the members register in).
#[derive(Debug, Default)]
pub struct RawDiscovery {
    /// Its client URLs, each with its field path.
    pub endpoints: Vec<(String, String)>,
    pub token: Option<String>,
    /// CA bundle that signed the discovery cluster's server certificates.
    pub ca: Option<String>,
    /// Client certificate and key, when the discovery cluster checks client certificates.
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `cluster.dns:`.
#[derive(Debug, Default)]
pub struct RawDns {
    pub domain: Option<String>,
    pub srv_name: Option<String>,
    pub name_servers: Vec<RawNameServer>,
}

/// One entry of `cluster.dns.name_servers`: a name, and an address when the name is inside the zone.
#[derive(Debug, Default)]
pub struct RawNameServer {
    pub name: Option<String>,
    pub address: Option<String>,
}

/// `tls:` section.
#[derive(Debug, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (default).
    EcdsaP256,
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
}

impl Choice for KeyAlgorithm {
    const ALL: &'static [(&'static str, Self)] = &[
        ("ecdsa-p256", Self::EcdsaP256),
        ("rsa-2048", Self::Rsa2048),
        ("rsa-3072", Self::Rsa3072),
        ("rsa-4096", Self::Rsa4096),
    ];
}

/// One CA for everything, or a peer CA and a client CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaMode {
    /// One CA signs peer, server and client certificates.
    Shared,
    /// A peer CA signs peer certificates; a client CA signs server and client certificates.
    Separate,
}

impl Choice for CaMode {
    const ALL: &'static [(&'static str, Self)] =
        &[("shared", Self::Shared), ("separate", Self::Separate)];
}

/// `tls.import_ca:`.
#[derive(Debug, Default)]
pub struct RawImportCa {
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `firewall:` section.
#[derive(Debug, Default)]
pub struct RawFirewall {
    pub backend: Option<FirewallBackend>,
    pub client_sources: Vec<String>,
}

/// Which firewall the hosts use.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallBackend {
    /// Our own `table inet cairn`.
    Nftables,
    /// Rich rules in the host's firewalld zone.
    Firewalld,
    /// An iptables-restore file with our own chain.
    Iptables,
    /// No firewall artifact.
    None,
}

impl Choice for FirewallBackend {
    const ALL: &'static [(&'static str, Self)] = &[
        ("nftables", Self::Nftables),
        ("firewalld", Self::Firewalld),
        ("iptables", Self::Iptables),
        ("none", Self::None),
    ];
}

/// `logging:` section.
#[derive(Debug, Default)]
pub struct RawLogging {
    pub file: Option<String>,
}

/// `monitoring:` section.
#[derive(Debug, Default)]
pub struct RawMonitoring {
    pub prometheus: Option<bool>,
    pub kubernetes: Option<bool>,
    pub namespace: Option<String>,
}

/// One entry of `nodes:`.
#[derive(Debug, Default)]
pub struct RawNode {
    pub name: Option<String>,
    /// `address:` as one value or a list (dual stack), each with its field path; empty when missing.
    pub addresses: Vec<(String, String)>,
    pub hostname: Option<String>,
    pub client_port: Option<u16>,
    pub peer_port: Option<u16>,
    pub data_dir: Option<String>,
    pub transport: Option<TransportKind>,
    pub ssh: Option<RawSsh>,
}

/// `nodes[].ssh:` (used by `provision apply`).
#[derive(Debug, Deserialize, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RawSsh {
    /// Login user (root, or a user with passwordless sudo); default: ~/.ssh/config, else the local user.
    pub user: Option<String>,
    /// SSH port; default: ~/.ssh/config, else 22.
    pub port: Option<u16>,
    /// Private key file; default: ~/.ssh/config and the agent.
    pub key: Option<String>,
    /// Host name or address to connect to; default: the member's first address.
    pub host: Option<String>,
}

/// How `provision apply` reaches a member's machine.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// The system `ssh` client; the member runs as a systemd service.
    Ssh,
    /// This machine, no login; the member runs as a supervised process (pid + log file in its data dir).
    Local,
}

impl Choice for TransportKind {
    const ALL: &'static [(&'static str, Self)] = &[("ssh", Self::Ssh), ("local", Self::Local)];
}

/// What a permission allows (etcd's permission types, as `etcdctl role grant-permission` spells them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Range and Watch.
    Read,
    /// Put and DeleteRange.
    Write,
    /// Both.
    ReadWrite,
}

impl Choice for Access {
    const ALL: &'static [(&'static str, Self)] = &[
        ("read", Self::Read),
        ("write", Self::Write),
        ("readwrite", Self::ReadWrite),
    ];
}

choice_display!(
    Access,
    Bootstrap,
    KeyAlgorithm,
    CaMode,
    FirewallBackend,
    TransportKind
);

/// `apply:` section (options of `provision apply`).
#[derive(Debug, Default)]
pub struct RawApply {
    pub known_hosts: Option<String>,
    pub max_clock_skew_seconds: Option<u32>,
    pub health_timeout_seconds: Option<u32>,
}

/// `auth:` section: roles with their permissions and the client certificates holding them.
#[derive(Debug, Default)]
pub struct RawAuth {
    pub roles: Vec<RawRole>,
}

/// One entry of `auth.roles`.
#[derive(Debug, Default)]
pub struct RawRole {
    /// Its field path (`auth.roles[1]`).
    pub path: String,
    pub name: Option<String>,
    /// Client identities (`tls.clients` names), each with its field path.
    pub clients: Vec<(String, String)>,
    pub permissions: Vec<RawPermission>,
}

/// One entry of `auth.roles[].permissions`: an access and exactly one of key, prefix, or from (+ to).
#[derive(Debug, Default)]
pub struct RawPermission {
    /// Its field path (`auth.roles[1].permissions[0]`).
    pub path: String,
    pub access: Option<Access>,
    pub key: Option<String>,
    pub prefix: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}
