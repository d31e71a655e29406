//! What travels inside the peer protocol's byte payloads besides openraft's own messages: forwarded
//! proposals, read-index answers and membership changes, with the leader's typed error.

use openraft::LogId;
use serde::{Deserialize, Serialize};

use crate::member::MemberError;
use crate::mvcc::CommandResponse;
use crate::raft::types::NodeId;

/// Reply to `Propose`: the log id of the entry the command was committed in and its result. The id
/// (the leader's term and ID with the index) lets the follower take the commit from the reply itself
/// ([`crate::member::App`]'s `learn_commit`) rather than wait for the leader's next AppendEntries.
pub type ProposeReply = Result<(LogId<NodeId>, CommandResponse), MemberError>;

/// Reply to `ReadIndex`: the leader's read index (every write committed before the request is at or
/// below it).
pub type ReadIndexReply = Result<Option<u64>, MemberError>;

/// Reply to `Members`: what a joining member needs to find its own ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster_id: u64,
    pub members: Vec<(NodeId, crate::raft::types::PeerNode)>,
}
