//! The peer server: receives openraft's RPCs and forwarded proposals / read-index requests from other
//! members. A caller whose cluster ID differs from ours is refused (etcd: "request cluster ID mismatch").

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::app::read_index::{leader_read_index, ReadFloor};
use crate::raft::frames::Method;
use crate::raft::pb::peer_server::{Peer, PeerServer};
use crate::raft::pb::{PeerReply, PeerRequest};
use crate::raft::types::{Command, NodeId, PeerNode, Raft};
use crate::raft::wire::{ForwardError, ProposeReply, ReadIndexReply};
use crate::store::log::{decode, encode};

/// Serves this member's Raft to the other members.
#[derive(Clone)]
pub struct PeerService {
    raft: Raft,
    cluster_id: u64,
    shared: std::sync::Arc<crate::store::state_machine::Shared>,
    read_floor: ReadFloor,
}

impl PeerService {
    /// Serves `raft` of cluster `cluster_id`; `read_floor` bounds the read indexes it answers (see
    /// app/read_index.rs).
    pub fn new(
        raft: Raft,
        cluster_id: u64,
        shared: std::sync::Arc<crate::store::state_machine::Shared>,
        read_floor: ReadFloor,
    ) -> PeerService {
        PeerService {
            raft,
            cluster_id,
            shared,
            read_floor,
        }
    }

    /// The tonic (gRPC) face of this service.
    pub fn server(&self) -> PeerServer<PeerService> {
        PeerServer::new(self.clone())
            .max_decoding_message_size(crate::raft::network::MAX_PEER_MESSAGE)
            .max_encoding_message_size(crate::raft::network::MAX_PEER_MESSAGE)
    }

    /// Refuse a caller from another cluster (etcd: "request cluster ID mismatch").
    fn check_cluster(&self, remote: u64, from: Option<std::net::SocketAddr>) -> Result<(), String> {
        if remote == self.cluster_id {
            return Ok(());
        }
        tracing::warn!(
            local = format!("{:x}", self.cluster_id),
            remote = format!("{remote:x}"),
            from = ?from,
            "request cluster ID mismatch: refusing a peer from another cluster"
        );
        Err(format!(
            "request cluster ID mismatch (local {:x}, remote {remote:x})",
            self.cluster_id
        ))
    }

    fn open<T: DeserializeOwned>(&self, req: Request<PeerRequest>) -> Result<T, Status> {
        let remote = req.remote_addr();
        let req = req.into_inner();
        self.check_cluster(req.cluster_id, remote)
            .map_err(Status::failed_precondition)?;
        crate::metrics::PEER_RECEIVED_BYTES.add(req.payload.len() as u64);
        decode(&req.payload)
            .map_err(|e| Status::invalid_argument(format!("malformed peer message: {e}")))
    }

    /// Answer one call of the frame protocol (raft/frames.rs); `Err` is the refusal, sent back as text.
    pub async fn frame(
        &self,
        method: Method,
        cluster_id: u64,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        self.check_cluster(cluster_id, None)?;
        crate::metrics::PEER_RECEIVED_BYTES.add(payload.len() as u64);
        let bad = |e: rmp_serde::decode::Error| format!("malformed peer message: {e}");
        let out = match method {
            Method::Append => encode(
                &self
                    .raft
                    .append_entries(decode(payload).map_err(bad)?)
                    .await,
            ),
            Method::Vote => encode(&self.raft.vote(decode(payload).map_err(bad)?).await),
            Method::Propose => encode(&self.propose(decode(payload).map_err(bad)?).await),
            Method::ReadIndex => encode(&self.read_index().await),
            Method::ChangeMembers => encode(
                &crate::app::membership::change_on_leader(
                    &self.raft,
                    &self.shared,
                    decode(payload).map_err(bad)?,
                )
                .await,
            ),
        }
        .map_err(|e| e.to_string())?;
        crate::metrics::PEER_SENT_BYTES.add(out.len() as u64);
        Ok(out)
    }

    /// Replicate a proposal a follower forwarded.
    async fn propose(&self, cmd: Command) -> ProposeReply {
        match self.raft.client_write(cmd).await {
            Ok(r) => Ok((r.log_id.index, r.data)),
            Err(e) => {
                let leader = match &e {
                    RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => f.leader_id,
                    _ => None,
                };
                Err(match leader {
                    Some(l) => ForwardError::NotLeader(Some(l)),
                    None if matches!(
                        e,
                        RaftError::APIError(ClientWriteError::ForwardToLeader(_))
                    ) =>
                    {
                        ForwardError::NotLeader(None)
                    }
                    None => forward_err(&e, None),
                })
            }
        }
    }

    /// The read index for a follower's linearizable read.
    async fn read_index(&self) -> ReadIndexReply {
        match leader_read_index(&self.raft, self.read_floor).await {
            Ok(read) => Ok(read),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ForwardError::NotLeader(f.leader_id))
            }
            Err(e) => Err(forward_err::<CheckIsLeaderError<NodeId, PeerNode>>(
                &e, None,
            )),
        }
    }
}

fn reply<T: Serialize>(v: &T) -> Result<Response<PeerReply>, Status> {
    let payload = encode(v).map_err(|e| Status::internal(e.to_string()))?;
    crate::metrics::PEER_SENT_BYTES.add(payload.len() as u64);
    Ok(Response::new(PeerReply { payload }))
}

fn forward_err<E: std::fmt::Display>(
    e: &RaftError<NodeId, E>,
    leader: Option<NodeId>,
) -> ForwardError {
    match leader {
        Some(l) => ForwardError::NotLeader(Some(l)),
        None => ForwardError::Failed(e.to_string()),
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        req: Request<PeerRequest>,
    ) -> Result<Response<PeerReply>, Status> {
        let rpc = self.open(req)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let rpc = self.open(req)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<PeerRequest>,
    ) -> Result<Response<PeerReply>, Status> {
        let rpc = self.open(req)?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn propose(&self, req: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let cmd: Command = self.open(req)?;
        reply(&PeerService::propose(self, cmd).await)
    }

    async fn read_index(&self, req: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let () = self.open(req)?;
        reply(&PeerService::read_index(self).await)
    }

    async fn change_members(
        &self,
        req: Request<PeerRequest>,
    ) -> Result<Response<PeerReply>, Status> {
        let change = self.open(req)?;
        let out = crate::app::membership::change_on_leader(&self.raft, &self.shared, change).await;
        reply(&out)
    }

    async fn members(&self, req: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let remote = req.get_ref().cluster_id;
        // 0 = a joining member that does not know the cluster yet; it only reads.
        if remote != 0 && remote != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "request cluster ID mismatch (local {:x}, remote {remote:x})",
                self.cluster_id
            )));
        }
        let m = self.raft.metrics().borrow().clone();
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        reply(&crate::raft::wire::ClusterInfo {
            cluster_id: self.cluster_id,
            members,
        })
    }

    async fn campaign(&self, req: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let delay_ms: u64 = self.open(req)?;
        let raft = self.raft.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            tracing::info!("starting an election: leadership is being transferred to this member");
            // A voter that heard from the leader late (messages already in flight when the
            // heartbeats stopped) rejects while its lease lasts: retry every 50 ms for up to 1 s,
            // which lands before the other members' own election timers (lease + E/3 at least).
            for _ in 0..20 {
                if let Err(e) = raft.trigger().elect().await {
                    tracing::warn!("campaign for leadership transfer: {e}");
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let m = raft.metrics().borrow().clone();
                if m.current_leader == Some(m.id) {
                    return;
                }
            }
        });
        reply(&())
    }
}
