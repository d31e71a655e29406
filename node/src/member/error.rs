//! Why the member could not serve a request: one typed enum, carried as is across the peer wire (a
//! follower's forwarded call gets the leader's exact reason), mapped to etcd's gRPC code and text in
//! one place (`api::status`).

use openraft::error::{Fatal, RaftError};
use serde::{Deserialize, Serialize};

use crate::mvcc::MvccError;
use crate::raft::types::NodeId;

/// A member-level failure; the texts are etcd's (api/v3rpc/rpctypes/error.go), without the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MemberError {
    /// No leader is known right now.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request did not commit in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// This member is not the leader and the operation must run on the leader. Inside the member it
    /// also means "nothing was appended, retry with the next leader".
    #[error("etcdserver: not leader")]
    NotLeader,
    /// The member is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// MemberRemove / MemberUpdate / MemberPromote of an ID that is not a member.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// MemberAdd with a peer URL another member already has.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// MemberPromote of a voter.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// MemberPromote of a learner that is behind the leader.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// MemberAdd of a voter while a voter has not started (etcd's strict reconfiguration check).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// MemberRemove that would leave fewer started voters than a quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// MoveLeader to an ID that is not a voter.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// The state machine rejected the command deterministically.
    #[error("etcdserver: {0}")]
    Mvcc(#[from] MvccError),
    /// Anything else (storage, Raft or network failure), with the cause; etcd answers such errors as
    /// Unknown with their text.
    #[error("{0}")]
    Other(String),
}

impl MemberError {
    /// [`MemberError::Other`] from any error's text.
    pub fn other(e: impl std::fmt::Display) -> MemberError {
        MemberError::Other(e.to_string())
    }

    /// A Raft call's failure other than "forward to the leader": a stopped Raft is etcd's "server
    /// stopped" (clients retry elsewhere), anything else keeps its text.
    pub fn raft<E: std::fmt::Display>(e: RaftError<NodeId, E>) -> MemberError {
        match e {
            RaftError::Fatal(Fatal::Stopped) => MemberError::Stopped,
            other => MemberError::other(other),
        }
    }
}
