//! The peer server: receives openraft's RPCs and forwarded proposals / read-index requests from other
//! members. A caller whose cluster ID differs from ours is refused (etcd: "request cluster ID mismatch").

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

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
}

impl PeerService {
    /// The tonic service for `raft` in cluster `cluster_id`.
    pub fn server(
        raft: Raft,
        cluster_id: u64,
        shared: std::sync::Arc<crate::store::state_machine::Shared>,
    ) -> PeerServer<PeerService> {
        PeerServer::new(PeerService {
            raft,
            cluster_id,
            shared,
        })
        .max_decoding_message_size(crate::raft::network::MAX_PEER_MESSAGE)
        .max_encoding_message_size(crate::raft::network::MAX_PEER_MESSAGE)
    }

    fn open<T: DeserializeOwned>(&self, req: Request<PeerRequest>) -> Result<T, Status> {
        let remote = req.remote_addr();
        let req = req.into_inner();
        if req.cluster_id != self.cluster_id {
            tracing::warn!(
                local = format!("{:x}", self.cluster_id),
                remote = format!("{:x}", req.cluster_id),
                from = ?remote,
                "request cluster ID mismatch: refusing a peer from another cluster"
            );
            return Err(Status::failed_precondition(format!(
                "request cluster ID mismatch (local {:x}, remote {:x})",
                self.cluster_id, req.cluster_id
            )));
        }
        crate::metrics::PEER_RECEIVED_BYTES.add(req.payload.len() as u64);
        decode(&req.payload)
            .map_err(|e| Status::invalid_argument(format!("malformed peer message: {e}")))
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
        let out: ProposeReply = match self.raft.client_write(cmd).await {
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
        };
        reply(&out)
    }

    async fn read_index(&self, req: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let () = self.open(req)?;
        let out: ReadIndexReply = match self.raft.get_read_log_id().await {
            Ok((read, _applied)) => Ok(read.map(|l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ForwardError::NotLeader(f.leader_id))
            }
            Err(e) => Err(forward_err::<CheckIsLeaderError<NodeId, PeerNode>>(
                &e, None,
            )),
        };
        reply(&out)
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
