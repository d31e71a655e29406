//! etcd's client-side concurrency recipes (client/v3/concurrency: Mutex, Election) run inside the
//! member, as etcd runs them for its lock and election services over an in-process client. Every step
//! is a call on this member's own KV and Lease services (same request checks, linearizable reads,
//! forwarding to the leader), and every wait is a watcher on this member's store. Errors reach the
//! caller as etcd's in-process client passes them on (`status::through_client`).
//!
//! Every call is made as the caller of the Lock or Election request ([`Local::acting_for`]): its token
//! or certificate goes along, as etcd hands the request's metadata to its in-process client, so a
//! user may lock or campaign only where it may read and write.

use std::sync::Arc;

use etcd_client::proto::{
    PbCompare, PbCompareTarget, PbDeleteRequest, PbDeleteResponse, PbKeyValue, PbLeaseGrantRequest,
    PbLeaseService, PbPutRequest, PbRangeRequest, PbRangeResponse, PbResponseHeader, PbTargetUnion,
    PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use etcd_client::proto::{PbKvService, PbTxnOpResponse};
use tonic::{Request, Status};

use super::guard::{Guard, Identity};
use super::header::header;
use super::kv::KvService;
use super::lease::LeaseService;
use super::status::{through_client, to_status};
use crate::member::{App, MemberError};
use crate::mvcc::auth::AuthError;
use crate::mvcc::{CatchUp, MvccError, WatchBatch, WatchId, WatchSpec, WatchStart};

/// The TTL etcd's concurrency session grants when a request names no lease (`defaultSessionTTL`).
const SESSION_TTL: i64 = 60;

/// etcd's `pb.Compare_EQUAL`, `pb.RangeRequest_CREATE` and `pb.RangeRequest_ASCEND|DESCEND`.
const CMP_EQUAL: i32 = 0;
const SORT_BY_CREATE: i32 = 2;
const ASCEND: i32 = 1;
const DESCEND: i32 = 2;

/// An in-process client of this member's KV and Lease services (etcd's `v3client`), acting for one
/// caller.
#[derive(Clone)]
pub struct Local {
    app: App,
    guard: Guard,
    kv: Arc<KvService>,
    lease: Arc<LeaseService>,
    identity: Identity,
}

impl Local {
    /// A client of `app`'s services, with the client port's request limit, acting for nobody until
    /// [`Local::acting_for`].
    pub fn new(app: App, guard: Guard, max_request_bytes: usize) -> Self {
        Local {
            kv: Arc::new(KvService::new(
                app.clone(),
                guard.clone(),
                max_request_bytes,
            )),
            lease: Arc::new(LeaseService::new(app.clone(), guard.clone(), true)),
            guard,
            app,
            identity: Identity::default(),
        }
    }

    /// This client, making its calls as the caller of `req`.
    pub fn acting_for<T>(&self, req: &Request<T>) -> Local {
        Local {
            identity: Identity::of(req),
            ..self.clone()
        }
    }

    /// The lease a concurrency session holds: `lease`, or a fresh one of etcd's session TTL when the
    /// request names none (etcd's `NewSession` without `WithLease`).
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let req = PbLeaseGrantRequest {
            ttl: SESSION_TTL,
            id: 0,
        };
        let resp = self.lease.lease_grant(self.identity.lend(req)).await;
        Ok(resp.map_err(through_client)?.into_inner().id)
    }

    /// A Txn through the KV service.
    pub async fn txn(&self, t: PbTxnRequest) -> Result<PbTxnResponse, Status> {
        let resp = self.kv.txn(self.identity.lend(t)).await;
        Ok(resp.map_err(through_client)?.into_inner())
    }

    /// A linearizable Range through the KV service.
    pub async fn get(&self, r: PbRangeRequest) -> Result<PbRangeResponse, Status> {
        let resp = self.kv.range(self.identity.lend(r)).await;
        Ok(resp.map_err(through_client)?.into_inner())
    }

    /// Delete one key.
    pub async fn delete(&self, key: &[u8]) -> Result<PbDeleteResponse, Status> {
        let req = PbDeleteRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        let resp = self.kv.delete_range(self.identity.lend(req)).await;
        Ok(resp.map_err(through_client)?.into_inner())
    }

    /// etcd's `waitDeletes`: wait until every key under `prefix` created at or below `max_create_rev`
    /// is deleted, newest first; the header of the last Range, which found none.
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_rev: i64,
    ) -> Result<Option<PbResponseHeader>, Status> {
        loop {
            let resp = self
                .get(PbRangeRequest {
                    max_create_revision: max_create_rev,
                    ..last_create(prefix)
                })
                .await?;
            let Some(kv) = resp.kvs.first() else {
                return Ok(resp.header);
            };
            let rev = resp.header.as_ref().map_or(0, |h| h.revision);
            self.wait_delete(&kv.key, rev).await?;
        }
    }

    /// etcd's `waitDelete`: watch `key` from `rev` until it is deleted.
    async fn wait_delete(&self, key: &[u8], rev: i64) -> Result<(), Status> {
        let mut w = self.watch(key, &[], rev)?;
        loop {
            for b in w.next().await? {
                if b.events.iter().any(|e| e.r#type == DELETE) {
                    return Ok(());
                }
            }
        }
    }

    /// A watcher on `[key, range_end)` from revision `rev` on this member's store, if the caller may
    /// read there (the Watch service's check, and its refusal as the client sees it).
    pub fn watch(&self, key: &[u8], range_end: &[u8], rev: i64) -> Result<Watching, Status> {
        if self.guard.watch(&self.identity, key, range_end).is_err() {
            let denied = to_status(MvccError::Auth(AuthError::PermissionDenied));
            return Err(through_client(denied));
        }
        let spec = WatchSpec {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            ..Default::default()
        };
        let started = self.app.store().write().watch(spec, rev);
        match started {
            WatchStart::Compacted(_) => Err(through_client(to_status(MvccError::Compacted))),
            WatchStart::Watching(id, feed) => Ok(Watching {
                app: self.app.clone(),
                id,
                feed,
            }),
        }
    }

    /// A response header at `revision`.
    pub fn header(&self, revision: i64) -> Option<PbResponseHeader> {
        header(&self.app, revision)
    }
}

/// `mvccpb.DELETE`.
pub const DELETE: i32 = 1;

/// A watcher on this member's store, removed when dropped (so an abandoned request leaves none).
pub struct Watching {
    app: App,
    id: WatchId,
    feed: crate::mvcc::WatchFeed,
}

impl Watching {
    /// The next batches of events, in revision order; compaction or a failed history read end the
    /// watch with etcd's error, as the watch stream would.
    pub async fn next(&mut self) -> Result<Vec<WatchBatch>, Status> {
        tokio::select! {
            biased;
            // The hub drops a watcher's sender only when it ends the watcher.
            b = self.feed.rx.recv() => b.map(|b| vec![b]).ok_or_else(|| to_status(MemberError::other("lost watcher waiting for delete"))),
            _ = self.feed.lagging.notified() => {
                let mut out = Vec::new();
                while let Ok(b) = self.feed.rx.try_recv() {
                    out.push(b);
                }
                let caught = self.app.store().write().catch_up(self.id);
                match caught {
                    CatchUp::Batches(bs) => out.extend(bs),
                    CatchUp::Compacted(_) => return Err(through_client(to_status(MvccError::Compacted))),
                    CatchUp::Failed(e) => return Err(through_client(to_status(e))),
                }
                Ok(out)
            }
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.app.store().write().unwatch(self.id);
    }
}

/// The prefix every holder of lock or election `name` queues under (etcd's recipes: `name + "/"`).
pub fn name_prefix(name: &[u8]) -> Vec<u8> {
    [name, b"/"].concat()
}

/// The key a session with `lease` holds under `prefix`: etcd formats the lease ID with Go's `%x`.
pub fn session_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    [prefix, hex.as_bytes()].concat()
}

/// The end of the range of every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from the prefix on.
    vec![0]
}

/// Range over `prefix` returning its oldest key (etcd's `WithFirstCreate`).
pub fn first_create(prefix: &[u8]) -> PbRangeRequest {
    by_create(prefix, ASCEND)
}

/// Range over `prefix` returning its newest key (etcd's `WithLastCreate`).
fn last_create(prefix: &[u8]) -> PbRangeRequest {
    by_create(prefix, DESCEND)
}

fn by_create(prefix: &[u8], order: i32) -> PbRangeRequest {
    PbRangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order,
        sort_target: SORT_BY_CREATE,
        ..Default::default()
    }
}

/// `Compare(CreateRevision(key), "=", rev)`.
pub fn created_at(key: &[u8], rev: i64) -> PbCompare {
    PbCompare {
        result: CMP_EQUAL,
        target: PbCompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(PbTargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

/// A Put op.
pub fn op_put(key: &[u8], value: &[u8], lease: i64) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

/// A Range op.
pub fn op_get(r: PbRangeRequest) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestRange(r)),
    }
}

/// A single-key Range request.
pub fn key_only(key: &[u8]) -> PbRangeRequest {
    PbRangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

/// A DeleteRange op on one key.
pub fn op_delete(key: &[u8]) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

/// The key-values of the `i`th response of a txn, if it was a Range.
pub fn range_kvs(t: &PbTxnResponse, i: usize) -> &[PbKeyValue] {
    match t.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(PbTxnOpResponse::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// The revision in a header (0 when absent).
pub fn revision(h: &Option<PbResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_and_prefix_ends_match_etcd() {
        assert_eq!(session_key(b"l/", 0x694d7f0a1b2c), b"l/694d7f0a1b2c");
        assert_eq!(session_key(b"l/", -1), b"l/-1");
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\x00");
    }
}
