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
use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::guard::Guard;
use super::header::{current, header};
use super::status::{to_status, ApiError};
use crate::member::{App, MemberError, LEASE_COST};
use crate::mvcc::Command;
use forward::{on_leader, renew_on};

mod forward;

/// etcd's MaxLeaseTTL.
const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// etcd's minimum TTL with default timing: ceil(1.5 election timeouts of 1 s).
const MIN_LEASE_TTL: i64 = 2;

/// The Lease service; `forward` is false on the peer port.
pub struct LeaseService {
    app: App,
    guard: Guard,
    forward: bool,
}

impl LeaseService {
    pub fn new(app: App, guard: Guard, forward: bool) -> Self {
        LeaseService {
            app,
            guard,
            forward,
        }
    }
}

/// Renew lease `id` on this member, the leader (TTL 0: no such lease).
fn renew_here(app: &App, id: i64) -> PbLeaseKeepAliveResponse {
    PbLeaseKeepAliveResponse {
        header: current(app),
        id,
        ttl: app.lease_renew(id).unwrap_or(0),
    }
}

/// TimeToLive answered by this member, the leader.
fn time_to_live_here(app: &App, req: &PbLeaseTimeToLiveRequest) -> PbLeaseTimeToLiveResponse {
    match app.lease_info(req.id) {
        // etcd answers a missing lease with TTL -1, which etcdctl prints as "already expired".
        None => PbLeaseTimeToLiveResponse {
            header: current(app),
            id: req.id,
            ttl: -1,
            ..Default::default()
        },
        Some(i) => PbLeaseTimeToLiveResponse {
            header: current(app),
            id: req.id,
            ttl: i.remaining.unwrap_or(i.granted_ttl),
            granted_ttl: i.granted_ttl,
            keys: if req.keys { i.keys } else { Vec::new() },
        },
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
        self.app.check_quota(LEASE_COST).await.map_err(to_status)?;
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
        let by = self.guard.lease_revoke(&req, req.get_ref().id)?;
        let revoke = Command::LeaseRevoke {
            id: req.into_inner().id,
        };
        let r = self.app.propose(revoke.by(by)).await.map_err(to_status)?;
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
        let (tx, rx) = mpsc::channel(16);
        let (app, forward) = (self.app.clone(), self.forward);
        // Each keep-alive on its own, here or on the leader of the moment, so a leader change costs
        // the client a slower answer, not its stream (etcd's LeaseKeepAlive does the same).
        tokio::spawn(async move {
            loop {
                let r = match inbound.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    // A request over the size limit ends the stream with gRPC's status, as in etcd.
                    Err(e) => {
                        let _ = tx.send(Err(super::too_large::grpc_status(e))).await;
                        break;
                    }
                };
                let resp = on_leader(
                    &app,
                    forward,
                    || renew_here(&app, r.id),
                    |leader| renew_on(leader, r),
                )
                .await;
                let failed = resp.is_err();
                if tx.send(resp).await.is_err() || failed {
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
        let req = req.into_inner();
        let resp = on_leader(
            &self.app,
            self.forward,
            || time_to_live_here(&self.app, &req),
            |mut leader| async move {
                leader
                    .lease_time_to_live(req)
                    .await
                    .map(Response::into_inner)
            },
        )
        .await?;
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
