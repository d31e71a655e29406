//! The openraft type configuration: what the log carries ([`Command`], owned by mvcc) and how members
//! are named and dialled.

use serde::{Deserialize, Serialize};

use crate::mvcc::{Command, CommandResponse};

/// A member's Raft node ID (etcd's member ID).
pub type NodeId = u64;

/// What Raft membership records about a member: enough to dial it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// The member's name from `--initial-cluster` (empty for a member added but not yet started).
    pub name: String,
    /// Peer URLs (`--initial-advertise-peer-urls`).
    pub peer_urls: Vec<String>,
}

impl std::fmt::Display for PeerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.peer_urls.join(","))
    }
}

openraft::declare_raft_types!(
    /// Cairn's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle type used across the crate.
pub type Raft = openraft::Raft<TypeConfig>;
