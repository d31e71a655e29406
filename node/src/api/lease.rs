//! Lease: Grant, Revoke, KeepAlive, TimeToLive, Leases, and the leader's expiry loop.
//!
//! Deadlines live only on the leader (as in etcd); a follower forwards KeepAlive and TimeToLive to the
//! leader's peer port, where this same service answers them.

use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseService, PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::header::{current, header};
use super::status::{to_status, ApiError};
use crate::member::{App, MemberError};
use crate::mvcc::Command;
use forward::LeaseClient;

mod forward;

/// etcd's MaxLeaseTTL.
const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// etcd's minimum TTL with default timing: ceil(1.5 election timeouts of 1 s).
const MIN_LEASE_TTL: i64 = 2;

/// The Lease service; `forward` is false on the peer port.
pub struct LeaseService {
    app: App,
    forward: bool,
}

impl LeaseService {
    pub fn new(app: App, forward: bool) -> Self {
        LeaseService { app, forward }
    }

    async fn leader(&self) -> Result<Option<LeaseClient>, Status> {
        if self.app.is_leader() || !self.forward {
            return Ok(None);
        }
        let ch = self.app.leader_channel().await.map_err(to_status)?;
        Ok(Some(LeaseClient::new(ch)))
    }
}

/// A fresh lease ID: positive and non-zero, chosen by the proposer so every member agrees on it. The
/// hasher's keys are random per process and change with every call; the clock adds time.
fn new_lease_id() -> i64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map(|d| d.as_nanos()).unwrap_or_default());
    ((h.finish() >> 1) as i64).max(1)
}

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = req.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(to_status(ApiError::LeaseTtlTooLarge));
        }
        let id = if req.id == 0 { new_lease_id() } else { req.id };
        let cmd = Command::LeaseGrant {
            id,
            ttl: req.ttl.max(MIN_LEASE_TTL),
        };
        let r = self.app.propose(cmd).await.map_err(to_status)?;
        if let Some(e) = r.error {
            return Err(to_status(e));
        }
        let mut resp = PbLeaseGrantResponse::decode(r.body.as_slice())
            .map_err(|e| to_status(MemberError::other(e)))?;
        resp.header = header(&self.app, r.revision);
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        req: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let r = self
            .app
            .propose(Command::LeaseRevoke {
                id: req.into_inner().id,
            })
            .await
            .map_err(to_status)?;
        if let Some(e) = r.error {
            return Err(to_status(e));
        }
        Ok(Response::new(PbLeaseRevokeResponse {
            header: header(&self.app, r.revision),
        }))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = req.into_inner();
        if let Some(mut leader) = self.leader().await? {
            // Relay the whole stream to the leader; if leadership moves, the stream ends and the
            // client reconnects (as with etcd's own forwarding).
            let upstream = leader
                .lease_keep_alive(inbound.filter_map(|r| async { r.ok() }))
                .await?;
            return Ok(Response::new(Box::pin(upstream.into_inner())));
        }
        let (tx, rx) = mpsc::channel(16);
        let app = self.app.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                if !app.is_leader() {
                    let _ = tx.send(Err(to_status(MemberError::NotLeader))).await;
                    break;
                }
                let ttl = app.lease_renew(r.id);
                let resp = PbLeaseKeepAliveResponse {
                    header: current(&app),
                    id: r.id,
                    ttl: ttl.unwrap_or(0),
                };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        if let Some(mut leader) = self.leader().await? {
            return leader.lease_time_to_live(req.into_inner()).await;
        }
        let req = req.into_inner();
        let info = self.app.lease_info(req.id);
        let resp = match info {
            // etcd answers a missing lease with TTL -1, which etcdctl prints as "already expired".
            None => PbLeaseTimeToLiveResponse {
                header: current(&self.app),
                id: req.id,
                ttl: -1,
                ..Default::default()
            },
            Some(i) => PbLeaseTimeToLiveResponse {
                header: current(&self.app),
                id: req.id,
                ttl: i.remaining.unwrap_or(i.granted_ttl),
                granted_ttl: i.granted_ttl,
                keys: if req.keys { i.keys } else { Vec::new() },
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        self.app.read_barrier().await.map_err(to_status)?;
        let ids = self.app.store().read().lease_ids();
        Ok(Response::new(PbLeaseLeasesResponse {
            header: current(&self.app),
            leases: ids.into_iter().map(|id| PbLeaseStatus { id }).collect(),
        }))
    }
}
