//! Where a member lives and how it runs on its host, as plain data: built from cluster.yaml, and kept in
//! the apply state file so a member later removed from cluster.yaml can still be reached and stopped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::render::systemd::EXEC_START;
use crate::spec::{url_host, FirewallBackend, Node, RawSsh, Spec, TransportKind};

/// How the member's process is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    /// The rendered `cairn.service`, started with systemctl.
    Systemd,
    /// A detached process with a pid file and a log file in the data dir (no init system needed).
    Process,
}

/// One member's host and paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Member name.
    pub name: String,
    /// Member IP this machine reaches it at (its first address).
    pub address: String,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    #[serde(default)]
    pub peer_port: u16,
    /// `--initial-advertise-peer-urls`.
    pub peer_url: String,
    /// URL this machine uses for the client API (always the IP: it is in every certificate).
    pub client_endpoint: String,
    /// ssh or local.
    pub transport: TransportKind,
    /// SSH settings (ssh transport).
    pub ssh: Option<RawSsh>,
    /// systemd or a supervised process.
    pub mode: ServiceMode,
    /// The cairn binary on the host.
    pub binary: String,
    /// Config dir (env file, pki/).
    pub config_dir: String,
    /// Data dir.
    pub data_dir: String,
    /// The env file.
    pub env_file: String,
    /// Firewall backend (systemd hosts only).
    pub firewall: FirewallBackend,
}

/// The systemd unit's installed path.
pub const UNIT_PATH: &str = "/etc/systemd/system/cairn.service";
/// A drop-in that makes a joining member start with `--initial-cluster-state existing`.
pub const JOIN_DROPIN: &str = "/etc/systemd/system/cairn.service.d/10-provision-join.conf";
/// The unit that loads the firewall rules at boot, before cairn.
pub const FIREWALL_UNIT_PATH: &str = "/etc/systemd/system/cairn-firewall.service";

impl Target {
    /// The target of a cluster.yaml member; `local_binary` is the binary a `local` member runs.
    pub fn of(spec: &Spec, node: &Node, local_binary: &Path) -> Target {
        let mode = match node.transport {
            TransportKind::Ssh => ServiceMode::Systemd,
            TransportKind::Local => ServiceMode::Process,
        };
        Target {
            name: node.name.clone(),
            address: node.addresses[0].to_string(),
            client_port: node.client_port,
            peer_port: node.peer_port,
            peer_url: spec.peer_url(node),
            client_endpoint: format!(
                "{}://{}:{}",
                spec.scheme(),
                url_host(node.addresses[0]),
                node.client_port
            ),
            transport: node.transport,
            ssh: node.ssh.clone(),
            mode,
            binary: match mode {
                ServiceMode::Systemd => EXEC_START.into(),
                ServiceMode::Process => local_binary.display().to_string(),
            },
            config_dir: spec.host_path(node, "").trim_end_matches('/').to_string(),
            data_dir: spec.data_dir(node),
            env_file: spec.host_path(node, "cairn.env"),
            firewall: spec.firewall.backend,
        }
    }

    /// Pid file of a supervised process.
    pub fn pid_file(&self) -> String {
        format!("{}/cairn.pid", self.data_dir)
    }

    /// Log file of a supervised process.
    pub fn process_log(&self) -> String {
        format!("{}/cairn.log", self.data_dir)
    }

    /// The fingerprint of what the running process was started with (written after each (re)start).
    pub fn stamp_file(&self) -> String {
        format!("{}/.provision-started", self.data_dir)
    }

    /// The env file a joining member additionally reads (`CAIRN_INITIAL_CLUSTER_STATE=existing`).
    pub fn join_env(&self) -> String {
        format!("{}/join.env", self.config_dir)
    }

    /// Where the firewall file goes (the rendered file name under config_dir/firewall/).
    pub fn firewall_file(&self, name: &str) -> String {
        format!("{}/firewall/{name}", self.config_dir)
    }
}
