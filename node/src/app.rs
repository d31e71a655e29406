//! The running member: wires config → stores → network → Raft → services, and is the handle the etcd API
//! services use to propose, read and describe the cluster.
//!
//! SKELETON: signatures are the contract between `api/`+`http.rs` (client side) and `raft/`+`store/`
//! (consensus side). Bodies are filled by the consensus side.

use std::sync::Arc;

use crate::mvcc::MvccError;
use crate::raft::types::{Command, CommandResponse, NodeId};

/// Why a proposal or read could not be served; `api` maps each to etcd's exact gRPC status and text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    /// No leader is known right now (etcd: Unavailable "etcdserver: no leader").
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request did not commit in time (etcd: Unavailable "etcdserver: request timed out").
    #[error("etcdserver: request timed out")]
    Timeout,
    /// This member is not the leader and the operation must run on the leader (etcd: "etcdserver: not leader").
    #[error("etcdserver: not leader")]
    NotLeader,
    /// The state machine rejected the command deterministically.
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    /// Anything else (storage or network failure), with the cause.
    #[error("etcdserver: {0}")]
    Internal(String),
}

/// A snapshot of cluster-level facts used in response headers and Status.
#[derive(Debug, Clone, Default)]
pub struct RaftStatus {
    pub cluster_id: u64,
    pub member_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub raft_index: u64,
    pub applied_index: u64,
}

/// One member as etcd's Cluster API describes it.
#[derive(Debug, Clone, Default)]
pub struct MemberInfo {
    pub id: NodeId,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// The handle the client-facing services hold (cheap to clone).
#[derive(Clone)]
pub struct App {
    inner: Arc<()>,
}

impl App {
    /// Replicate `cmd` and return its result once applied on THIS member (so a read that follows sees it).
    /// On a follower the command is forwarded to the leader over the peer channel.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResponse, ServeError> {
        let _ = (cmd, &self.inner);
        todo!("consensus side")
    }

    /// Wait until this member's state machine reflects every write committed before the call
    /// (Raft read-index; on a follower the read index is obtained from the leader).
    pub async fn read_barrier(&self) -> Result<(), ServeError> {
        todo!("consensus side")
    }

    /// The state machine's store, for reads and watch subscriptions (see `mvcc`).
    pub fn store(&self) -> &crate::mvcc::SharedStore {
        todo!("consensus side")
    }

    /// Current Raft facts (cheap: read from openraft metrics).
    pub fn status(&self) -> RaftStatus {
        todo!("consensus side")
    }

    /// True when this member is the leader.
    pub fn is_leader(&self) -> bool {
        todo!("consensus side")
    }

    /// Members with names and client URLs (unstarted members have an empty name and no client URLs).
    pub fn members(&self) -> Vec<MemberInfo> {
        todo!("consensus side")
    }

    /// A cached gRPC channel to the current leader's peer listener (mTLS with the peer certificate), on
    /// which the etcd Lease service is also served, so lease keep-alives can be forwarded to the leader.
    pub async fn leader_channel(&self) -> Result<tonic::transport::Channel, ServeError> {
        todo!("consensus side")
    }

    /// Size in bytes of this member's data files (Status.dbSize, `etcd_mvcc_db_total_size_in_bytes`).
    pub fn db_size(&self) -> u64 {
        todo!("consensus side")
    }
}
