//! A follower's side of forwarding: proposals and read-index requests go to the leader's peer listener.

use crate::codec::{decode, encode};
use crate::member::wire::{ForwardError, ProposeReply, ReadIndexReply};
use crate::member::{App, ServeError, REQUEST_TIMEOUT};
use crate::mvcc::{Command, CommandResponse};
use crate::raft::channels::FrameError;
use crate::raft::frames::Method;
use crate::raft::types::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(super) fn from_forward(e: ForwardError) -> ServeError {
    match e {
        // The member we asked is not (or no longer) leader: nothing was appended, `propose` retries.
        ForwardError::NotLeader(_) => ServeError::NotLeader,
        ForwardError::Failed(m) => ServeError::Internal(m),
    }
}

/// A frame call that got no answer: refused means the request never left this member, so it is safe
/// to retry with the next leader (a killed leader's port refuses at once).
fn from_frame_error(e: FrameError) -> ServeError {
    match e {
        FrameError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            ServeError::NotLeader
        }
        FrameError::Timeout => ServeError::Timeout,
        FrameError::Io(_) | FrameError::Dial(_) => ServeError::NoLeader,
    }
}

impl App {
    /// Send `msg` to the leader's peer listener as a `method` frame and decode the reply.
    pub(super) async fn call_leader<Req, Rep>(
        &self,
        leader: NodeId,
        method: Method,
        msg: &Req,
    ) -> Result<Rep, ServeError>
    where
        Req: Serialize,
        Rep: DeserializeOwned,
    {
        let internal = |e: &dyn std::fmt::Display| ServeError::Internal(e.to_string());
        let node = self.node(leader).ok_or(ServeError::NoLeader)?;
        let payload = encode(msg).map_err(|e| internal(&e))?;
        let reply = self
            .inner
            .peers
            .frame_call(leader, &node, method, &payload, REQUEST_TIMEOUT)
            .await
            .map_err(from_frame_error)?
            .map_err(|refused| {
                ServeError::Internal(format!("forwarding to the leader: {refused}"))
            })?;
        decode(&reply).map_err(|e| internal(&e))
    }

    /// Have the leader replicate `cmd`; returns the log index it was committed at (the caller waits
    /// until this member has applied it, so the client's next read here sees it) and its response.
    pub(super) async fn forward_propose(
        &self,
        leader: NodeId,
        cmd: Command,
    ) -> Result<(u64, CommandResponse), ServeError> {
        let out: ProposeReply = self.call_leader(leader, Method::Propose, &cmd).await?;
        out.map_err(from_forward)
    }

    pub(super) async fn forward_read_index(
        &self,
        leader: NodeId,
    ) -> Result<Option<u64>, ServeError> {
        let out: ReadIndexReply = self.call_leader(leader, Method::ReadIndex, &()).await?;
        out.map_err(from_forward)
    }
}
