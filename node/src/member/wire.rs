//! What travels inside the peer protocol's byte payloads besides openraft's own messages: forwarded
//! proposals and read-index answers, with errors a follower can act on.

use serde::{Deserialize, Serialize};

use crate::mvcc::CommandResponse;
use crate::raft::types::NodeId;

/// Why the leader could not serve a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardError {
    /// The receiver is not the leader (it names the leader it knows, if any).
    NotLeader(Option<NodeId>),
    /// Anything else, with the leader's description.
    Failed(String),
}

/// Reply to `Propose`: the log index the command was committed at and its result.
pub type ProposeReply = Result<(u64, CommandResponse), ForwardError>;

/// Reply to `ReadIndex`: the leader's read index (every write committed before the request is at or
/// below it).
pub type ReadIndexReply = Result<Option<u64>, ForwardError>;

/// Reply to `Members`: what a joining member needs to find its own ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster_id: u64,
    pub members: Vec<(NodeId, crate::raft::types::PeerNode)>,
}
