//! A follower's side of forwarding: proposals and read-index requests go to the leader's peer listener.

use crate::codec::{decode, encode};
use crate::member::wire::{ProposeReply, ReadIndexReply};
use crate::member::{App, MemberError, REQUEST_TIMEOUT};
use crate::mvcc::{Command, CommandResponse};
use crate::raft::channels::FrameError;
use crate::raft::frames::Method;
use crate::raft::types::NodeId;
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

    /// Have the leader replicate `cmd`; returns the log index it was committed at (the caller waits
    /// until this member has applied it, so the client's next read here sees it) and its response.
    pub(super) async fn forward_propose(
        &self,
        leader: NodeId,
        cmd: Command,
    ) -> Result<(u64, CommandResponse), MemberError> {
        let out: ProposeReply = self.call_leader(leader, Method::Propose, &cmd).await?;
        out
    }

    pub(super) async fn forward_read_index(
        &self,
        leader: NodeId,
    ) -> Result<Option<u64>, MemberError> {
        let out: ReadIndexReply = self.call_leader(leader, Method::ReadIndex, &()).await?;
        out
    }
}
