//! A follower's side of forwarding: proposals and read-index requests go to the leader's peer listener.

use crate::codec::{decode, encode};
use crate::member::wire::{ProposeReply, ReadIndexReply};
use crate::member::{App, MemberError, REQUEST_TIMEOUT};
use crate::mvcc::{Command, CommandResponse};
use crate::raft::channels::FrameError;
use crate::raft::frames::Method;
use crate::raft::types::NodeId;
use openraft::raft::AppendEntriesRequest;
use openraft::{LogId, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A frame call that got no answer: refused means the request never left this member, so it is safe
/// to retry with the next leader (a killed leader's port refuses at once).
fn from_frame_error(e: FrameError) -> MemberError {
    match e {
        FrameError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            MemberError::NotLeader
        }
        FrameError::Timeout | FrameError::DialTimeout => MemberError::Timeout,
        FrameError::Io(_) | FrameError::Dial(_) => MemberError::NoLeader,
    }
}

impl App {
    /// Send `msg` to the leader's peer listener as a `method` frame and decode the reply.
    pub(super) async fn call_leader<Req, Rep>(
        &self,
        leader: NodeId,
        method: Method,
        msg: &Req,
    ) -> Result<Rep, MemberError>
    where
        Req: Serialize,
        Rep: DeserializeOwned,
    {
        let node = self.node(leader).ok_or(MemberError::NoLeader)?;
        let payload = encode(msg).map_err(MemberError::other)?;
        let reply = self
            .inner
            .peers
            .frame_call(leader, &node, method, &payload, REQUEST_TIMEOUT)
            .await
            .map_err(from_frame_error)?
            .map_err(|refused| {
                MemberError::Other(format!("forwarding to the leader: {refused}"))
            })?;
        decode(&reply).map_err(MemberError::other)
    }

    /// Have the leader replicate `cmd`; returns the log id of the entry it was committed in (the
    /// caller waits until this member has applied it, so the client's next read here sees it) and
    /// its response.
    pub(super) async fn forward_propose(
        &self,
        leader: NodeId,
        cmd: Command,
    ) -> Result<(LogId<NodeId>, CommandResponse), MemberError> {
        let out: ProposeReply = self.call_leader(leader, Method::Propose, &cmd).await?;
        out
    }

    /// Take the commit of `log_id` from the leader's answer to a forwarded proposal rather than wait
    /// for the leader's next AppendEntries to bring it: the leader commits once one follower has the
    /// entry, often the other one, and then tells this member only after this member's own answer to
    /// the append reached it (a round trip more, paid by every put through a follower).
    ///
    /// The leader answered only after it committed and applied `log_id` while leading with the
    /// vote `log_id` was written under, so an AppendEntries of that vote, empty, matching this
    /// member's log at `log_id` and committing up to it, is one the leader could have sent. It is
    /// handed to openraft only when this member's log holds that entry (else nothing is done and
    /// the caller waits for the leader as before); a vote newer than it (an election since) makes
    /// openraft refuse it, changing nothing.
    pub(super) async fn learn_commit(&self, log_id: LogId<NodeId>) {
        if self.inner.shared.applied_index.get() >= log_id.index || !self.inner.log.holds(&log_id) {
            return;
        }
        let leader = log_id.leader_id;
        let rpc = AppendEntriesRequest {
            vote: Vote::new_committed(leader.term, leader.node_id),
            prev_log_id: Some(log_id),
            entries: Vec::new(),
            leader_commit: Some(log_id),
        };
        if let Err(e) = self.inner.raft.append_entries(rpc).await {
            tracing::debug!("taking the commit of {log_id} from the leader's answer: {e}");
        }
    }

    pub(super) async fn forward_read_index(
        &self,
        leader: NodeId,
    ) -> Result<Option<u64>, MemberError> {
        let out: ReadIndexReply = self.call_leader(leader, Method::ReadIndex, &()).await?;
        out
    }
}
