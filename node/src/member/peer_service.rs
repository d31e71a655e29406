//! The peer server: receives openraft's RPCs and forwarded proposals / read-index requests / membership
//! changes from other members, as frames (raft/frames.rs) and, for snapshots (one stream each),
//! joiners and leadership transfer, as gRPC. A caller whose cluster ID differs from ours is refused (etcd: "request cluster ID mismatch").

use openraft::error::RaftError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status, Streaming};

use crate::codec::{decode, encode};
use crate::member::read_index::leader_read_index;
use crate::member::snapshot_receive::receive;
use crate::member::wire::{ProposeReply, ReadIndexReply};
use crate::member::{App, MemberError};
use crate::mvcc::Command;
use crate::raft::frames::{FrameHandler, Method, MAX_PEER_MESSAGE};
use crate::raft::pb::peer_server::{Peer, PeerServer};
use crate::raft::pb::{PeerReply, PeerRequest};
use crate::raft::types::Raft;
use crate::storage::snapshot::SnapshotDir;

/// Serves this member's Raft to the other members.
#[derive(Clone)]
pub struct PeerService {
    raft: Raft,
    cluster_id: u64,
    shared: std::sync::Arc<crate::storage::state_machine::Shared>,
    /// Forwarded proposals join this member's proposal queue (`propose`).
    app: App,
    /// Where streamed snapshots are received.
    snaps: SnapshotDir,
}

impl PeerService {
    /// Serves the Raft of `app`'s member, of cluster `cluster_id`, receiving snapshots into `snaps`.
    pub fn new(app: App, cluster_id: u64, snaps: SnapshotDir) -> PeerService {
        PeerService {
            raft: app.inner.raft.clone(),
            cluster_id,
            shared: app.inner.shared.clone(),
            app,
            snaps,
        }
    }

    /// The tonic (gRPC) face of this service.
    pub fn server(&self) -> PeerServer<PeerService> {
        PeerServer::new(self.clone())
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE)
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

    async fn answer(
        &self,
        method: Method,
        cluster_id: u64,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        self.check_cluster(cluster_id, None)?;
        crate::metrics::PEER_RECEIVED_BYTES.add(payload.len() as u64);
        let bad = |e: rmp_serde::decode::Error| format!("malformed peer message: {e}");
        let out = match method {
            Method::Append => {
                let resp = self
                    .raft
                    .append_entries(decode(payload).map_err(bad)?)
                    .await;
                // openraft was told the entries were flushed when they were queued (storage/log.rs):
                // the leader may count them as ours only once they are on disk.
                if resp.is_ok() {
                    self.app
                        .log_durable()
                        .await
                        .map_err(|why| format!("the Raft log could not be written: {why}"))?;
                }
                encode(&resp)
            }
            Method::Vote => encode(&self.raft.vote(decode(payload).map_err(bad)?).await),
            Method::Propose => encode(&self.propose(decode(payload).map_err(bad)?).await),
            Method::ReadIndex => encode(&self.read_index().await),
            Method::ChangeMembers => encode(
                &super::membership::change_on_leader(
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

    /// Replicate a proposal a follower forwarded, in one entry with the leader's own queued ones.
    async fn propose(&self, cmd: Command) -> ProposeReply {
        self.app.propose_forwarded(cmd).await
    }

    /// The read index for a follower's linearizable read.
    async fn read_index(&self) -> ReadIndexReply {
        match leader_read_index(&self.raft).await {
            Ok(read) => Ok(read),
            // Not leader, or no quorum confirmed leadership: the follower retries (as a local read
            // does) until its deadline, then answers "no leader".
            Err(RaftError::APIError(_)) => Err(MemberError::NotLeader),
            Err(e) => Err(MemberError::raft(e)),
        }
    }
}

fn reply<T: Serialize>(v: &T) -> Result<Response<PeerReply>, Status> {
    let payload = encode(v).map_err(|e| Status::internal(e.to_string()))?;
    crate::metrics::PEER_SENT_BYTES.add(payload.len() as u64);
    Ok(Response::new(PeerReply { payload }))
}

impl FrameHandler for PeerService {
    fn frame<'a>(
        &'a self,
        method: Method,
        cluster_id: u64,
        payload: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'a>>
    {
        Box::pin(self.answer(method, cluster_id, payload))
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn send_snapshot(
        &self,
        req: Request<Streaming<PeerRequest>>,
    ) -> Result<Response<PeerReply>, Status> {
        let remote = req.remote_addr();
        let check = |id| self.check_cluster(id, remote);
        let answer = receive(&self.raft, &self.snaps, req.into_inner(), check).await?;
        reply(&answer)
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
        reply(&crate::member::wire::ClusterInfo {
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
