//! openraft's network over the peer port: AppendEntries and Vote as frame calls (raft/frames.rs),
//! each carrying MessagePack and our cluster ID, and whole snapshots as one gRPC stream
//! (raft/snapshot_send.rs); unreachable peers are logged once.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{Snapshot, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, encode};
use crate::raft::channels::FrameError;
pub use crate::raft::channels::{peer_dial_timeout, CommitCeiling, PeerChannels};
use crate::raft::frames::Method;
use crate::raft::snapshot_send::{self, SendError};
use crate::raft::types::{NodeId, PeerNode, TypeConfig};

impl RaftNetworkFactory<TypeConfig> for PeerChannels {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerConnection {
        PeerConnection {
            target,
            node: node.clone(),
            peers: self.clone(),
        }
    }
}

/// openraft's view of one member.
pub struct PeerConnection {
    target: NodeId,
    node: PeerNode,
    peers: PeerChannels,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, PeerNode, RaftError<NodeId, E>>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl PeerConnection {
    /// One RPC, logging when the peer becomes unreachable or active again (etcd's "peer … became
    /// inactive/active" lines).
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut why = None;
        let res = self.call_once(method, req, option, &mut why).await;
        self.record(why);
        res
    }

    /// Log a change between reachable and not (`why` is the failure of the last call, if it failed).
    fn record(&self, why: Option<String>) {
        let url = self.node.peer_urls.join(",");
        let peer = format!("{:x}", self.target);
        let mut failing = self.peers.failing.lock();
        match why {
            Some(msg) => {
                let stale = match failing.get(&self.target) {
                    Some((m, at)) => *m != msg || at.elapsed() > Duration::from_secs(30),
                    None => true,
                };
                if stale {
                    tracing::warn!(%peer, %url, "peer became inactive: {msg}");
                    failing.insert(self.target, (msg, std::time::Instant::now()));
                }
            }
            None => {
                if failing.remove(&self.target).is_some() {
                    tracing::info!(%peer, %url, "peer became active");
                }
            }
        }
    }

    async fn call_once<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        option: &RPCOption,
        why: &mut Option<String>,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable = |why: &mut Option<String>, msg: String| {
            let msg = Msg(msg);
            *why = Some(msg.0.clone());
            RPCError::Unreachable(Unreachable::new(&msg))
        };
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let sent = payload.len();
        let reply = match self
            .peers
            .frame_call(self.target, &self.node, method, &payload, option.hard_ttl())
            .await
        {
            Ok(Ok(reply)) => reply,
            Ok(Err(refused)) => {
                let msg = Msg(refused);
                *why = Some(msg.0.clone());
                return Err(RPCError::Network(NetworkError::new(&msg)));
            }
            // A slow answer is not an unreachable member: openraft backs off 500 ms after
            // Unreachable, and a heartbeat interval's delay on a busy machine (or behind a
            // follower's fsync) then stopped commits for half a second. Retried at once instead.
            Err(FrameError::Timeout) => {
                let msg = Msg("peer RPC timed out".into());
                *why = Some(msg.0.clone());
                return Err(RPCError::Network(NetworkError::new(&msg)));
            }
            Err(FrameError::DialTimeout) => {
                return Err(unreachable(
                    why,
                    "peer RPC timed out while connecting".into(),
                ))
            }
            Err(e) => return Err(unreachable(why, e.to_string())),
        };
        crate::metrics::PEER_SENT_BYTES.add(sent as u64);
        crate::metrics::PEER_RECEIVED_BYTES.add(reply.len() as u64);
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        if let Some(ceiling) = &self.peers.commit_ceiling {
            // Our own copy may not be on disk yet (storage/log.rs): a commit index past it could let
            // a follower apply an entry that a crash of this member takes from the majority.
            rpc.leader_commit = ceiling.cap(rpc.leader_commit);
        }
        self.call(Method::Append, &rpc, &option).await
    }

    /// Never called: `full_snapshot` streams the whole snapshot instead of openraft's chunks.
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let msg = Msg("snapshots are streamed whole (SendSnapshot), not sent in chunks".into());
        Err(RPCError::Network(NetworkError::new(&msg)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SendError> {
        let (peers, target, node) = (&self.peers, self.target, &self.node);
        let res = snapshot_send::send(peers, target, node, vote, snapshot, cancel, &option).await;
        self.record(match &res {
            Err(StreamingError::Unreachable(e)) => Some(e.to_string()),
            Err(StreamingError::Network(e)) => Some(e.to_string()),
            _ => None,
        });
        res
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
