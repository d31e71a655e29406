//! A follower's side of forwarding: proposals and read-index requests go to the leader's peer listener.

use crate::app::{App, ServeError, REQUEST_TIMEOUT};
use crate::raft::pb::peer_client::PeerClient;
use crate::raft::pb::{PeerReply, PeerRequest};
use crate::raft::types::{Command, CommandResponse, NodeId};
use crate::raft::wire::{ForwardError, ProposeReply, ReadIndexReply};
use crate::store::log::decode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

pub(super) fn from_forward(e: ForwardError) -> ServeError {
    match e {
        // The member we asked is not (or no longer) leader: nothing was appended, `propose` retries.
        ForwardError::NotLeader(_) => ServeError::NotLeader,
        ForwardError::Failed(m) => ServeError::Internal(m),
    }
}

/// True when the leader refused the connection: the request never left this member, so it is safe
/// to retry with the next leader (a killed leader's port refuses at once).
fn refused(s: &tonic::Status) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

fn from_status(s: tonic::Status) -> ServeError {
    if refused(&s) {
        return ServeError::NotLeader;
    }
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ServeError::NoLeader,
        _ => ServeError::Internal(format!("forwarding to the leader: {}", s.message())),
    }
}

impl App {
    /// Send `msg` to the leader's peer listener with `rpc` and decode the reply.
    pub(super) async fn call_leader<Req, Rep, F, Fut>(
        &self,
        leader: NodeId,
        msg: &Req,
        rpc: F,
    ) -> Result<Rep, ServeError>
    where
        Req: Serialize,
        Rep: DeserializeOwned,
        F: FnOnce(PeerClient<Channel>, PeerRequest) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<PeerReply>, tonic::Status>>,
    {
        let internal = |e: &dyn std::fmt::Display| ServeError::Internal(e.to_string());
        let node = self.node(leader).ok_or(ServeError::NoLeader)?;
        let client = self
            .inner
            .peers
            .client(leader, &node)
            .map_err(|e| internal(&e))?;
        let req = self.inner.peers.request(msg).map_err(|e| internal(&e))?;
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, rpc(client, req))
            .await
            .map_err(|_| ServeError::Timeout)?
            .map_err(from_status)?
            .into_inner();
        decode(&reply.payload).map_err(|e| internal(&e))
    }

    /// Have the leader replicate `cmd`; returns the log index it was committed at (the caller waits
    /// until this member has applied it, so the client's next read here sees it) and its response.
    pub(super) async fn forward_propose(
        &self,
        leader: NodeId,
        cmd: Command,
    ) -> Result<(u64, CommandResponse), ServeError> {
        let out: ProposeReply = self
            .call_leader(leader, &cmd, |mut c, r| async move { c.propose(r).await })
            .await?;
        out.map_err(from_forward)
    }

    pub(super) async fn forward_read_index(
        &self,
        leader: NodeId,
    ) -> Result<Option<u64>, ServeError> {
        let out: ReadIndexReply = self
            .call_leader(leader, &(), |mut c, r| async move { c.read_index(r).await })
            .await?;
        out.map_err(from_forward)
    }
}
