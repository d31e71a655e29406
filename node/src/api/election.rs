//! Election: Campaign, Proclaim, Leader, Observe, Resign, etcd's v3election service. The leader of
//! election N is the oldest key under `N/`; a candidate puts `N/<lease in hex>` with its value on its
//! lease and waits until every older key is gone, as etcd's `concurrency.Election` does.

use std::pin::Pin;

use etcd_client::proto::{PbKeyValue, PbResponseHeader, PbTxnRequest};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::concurrency::{
    created_at, first_create, key_only, name_prefix, op_delete, op_get, op_put, prefix_end,
    range_kvs, revision, session_key, Local, DELETE,
};
use super::lock::Abandon;
use super::pb::v3electionpb::election_server::Election;
use super::pb::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use super::status::{to_status, ApiError};

/// The Election service.
pub struct ElectionService {
    local: Local,
}

impl ElectionService {
    pub fn new(local: Local) -> Self {
        ElectionService { local }
    }

    /// etcd's `Election.Proclaim` for a leader key: replace the value while `key` is still the one
    /// created at `rev`.
    async fn proclaim_as(
        local: &Local,
        l: &LeaderKey,
        value: &[u8],
    ) -> Result<Option<PbResponseHeader>, Status> {
        let t = local
            .txn(PbTxnRequest {
                compare: vec![created_at(&l.key, l.rev)],
                success: vec![op_put(&l.key, value, l.lease)],
                failure: vec![],
            })
            .await?;
        if !t.succeeded {
            return Err(to_status(ApiError::ElectionNotLeader));
        }
        Ok(t.header)
    }
}

type LeaderStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let local = &self.local.acting_for(&req);
        let req = req.into_inner();
        let lease = local.session_lease(req.lease).await?;
        let prefix = name_prefix(&req.name);
        let key = session_key(&prefix, lease);
        let t = local
            .txn(PbTxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![op_put(&key, &req.value, lease)],
                failure: vec![op_get(key_only(&key))],
            })
            .await?;
        let mut leader = LeaderKey {
            name: req.name.clone(),
            key: key.clone(),
            rev: revision(&t.header),
            lease,
        };
        // Campaigning again with this lease resumes the earlier candidacy, with the new value.
        if !t.succeeded {
            let existing = range_kvs(&t, 0).first().cloned().unwrap_or_default();
            leader.rev = existing.create_revision;
            if existing.value != req.value {
                if let Err(e) = Self::proclaim_as(local, &leader, &req.value).await {
                    resign(local, &leader).await.ok();
                    return Err(e);
                }
            }
        }
        let candidate = Abandon::new(local, &key);
        let waited = local.wait_deletes(&prefix, leader.rev - 1).await;
        candidate.keep();
        waited?;
        Ok(Response::new(CampaignResponse {
            header: t.header,
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let local = self.local.acting_for(&req);
        let req = req.into_inner();
        let leader = req.leader.ok_or(to_status(ApiError::MissingLeaderKey))?;
        let header = Self::proclaim_as(&local, &leader, &req.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let local = self.local.acting_for(&req);
        let prefix = name_prefix(&req.into_inner().name);
        let resp = local.get(first_create(&prefix)).await?;
        let kv = resp
            .kvs
            .into_iter()
            .next()
            .ok_or(to_status(ApiError::ElectionNoLeader))?;
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = LeaderStream;

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let local = self.local.acting_for(&req);
        let prefix = name_prefix(&req.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = observe(&local, &prefix, &tx) => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let local = self.local.acting_for(&req);
        let leader = req
            .into_inner()
            .leader
            .ok_or(to_status(ApiError::MissingLeaderKey))?;
        let header = resign(&local, &leader).await?;
        Ok(Response::new(ResignResponse { header }))
    }
}

/// etcd's `Election.Resign`: delete the leader key if it is still the one created at `rev`.
async fn resign(local: &Local, l: &LeaderKey) -> Result<Option<PbResponseHeader>, Status> {
    let t = local
        .txn(PbTxnRequest {
            compare: vec![created_at(&l.key, l.rev)],
            success: vec![op_delete(&l.key)],
            failure: vec![],
        })
        .await?;
    Ok(t.header)
}

type Out = mpsc::Sender<Result<LeaderResponse, Status>>;

/// etcd's `Election.observe`: send the current leader (waiting for one if there is none), then every
/// new value it proclaims, and start over when its key is deleted. Returns when a read or watch
/// fails or the client is gone; etcd then ends the stream without an error.
async fn observe(local: &Local, prefix: &[u8], out: &Out) -> Option<()> {
    let send = |header: Option<PbResponseHeader>, kv: PbKeyValue| {
        out.send(Ok(LeaderResponse {
            header,
            kv: Some(kv),
        }))
    };
    loop {
        let resp = local.get(first_create(prefix)).await.ok()?;
        let (header, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header, kv),
            None => first_put(local, prefix, revision(&resp.header)).await?,
        };
        let rev = revision(&header);
        let key = kv.key.clone();
        send(header, kv).await.ok()?;
        let mut w = local.watch(&key, &[], rev + 1).ok()?;
        'leader: loop {
            for b in w.next().await.ok()? {
                for ev in b.events {
                    if ev.r#type == DELETE {
                        break 'leader;
                    }
                    let kv = ev.kv.unwrap_or_default();
                    send(local.header(b.revision), kv).await.ok()?;
                }
            }
        }
    }
}

/// The first key put under `prefix` from revision `rev` on, with a header at its revision.
async fn first_put(
    local: &Local,
    prefix: &[u8],
    rev: i64,
) -> Option<(Option<PbResponseHeader>, PbKeyValue)> {
    let mut w = local.watch(prefix, &prefix_end(prefix), rev).ok()?;
    loop {
        for b in w.next().await.ok()? {
            // Only puts: a delete would make the observer spin.
            let put = b.events.into_iter().find(|e| e.r#type != DELETE);
            if let Some(kv) = put.and_then(|e| e.kv) {
                return Some((local.header(kv.mod_revision), kv));
            }
        }
    }
}
