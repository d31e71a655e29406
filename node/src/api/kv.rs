//! KV: Range, Put, DeleteRange, Txn, Compact.

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeResponse, PbTxnOpRequest, PbTxnRequest,
    PbTxnResponse,
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::guard::Guard;
use super::header::header;
use super::status::{to_status, ApiError};
use crate::blocking::{off_worker_if, range_may_take_long};
use crate::member::{App, MemberError, KV_OVERHEAD};
use crate::metrics;
use crate::mvcc::Command;
use crate::mvcc::KeyRange;

/// etcd's limit on operations per txn branch (`--max-txn-ops` default).
const MAX_TXN_OPS: usize = 128;

/// The KV service.
pub struct KvService {
    app: App,
    guard: Guard,
    max_request_bytes: usize,
}

impl KvService {
    pub fn new(app: App, guard: Guard, max_request_bytes: usize) -> Self {
        KvService {
            app,
            guard,
            max_request_bytes,
        }
    }

    /// Replicate a write and decode its response message.
    async fn write<M: Message + Default>(
        &self,
        cmd: Command,
        size: usize,
    ) -> Result<(M, i64), Status> {
        if size > self.max_request_bytes {
            return Err(to_status(ApiError::RequestTooLarge));
        }
        let r = metrics::track_proposal(self.app.propose(cmd))
            .await
            .map_err(to_status)?;
        if let Some(e) = r.error {
            return Err(to_status(e));
        }
        let m = M::decode(r.body.as_slice()).map_err(|e| to_status(MemberError::other(e)))?;
        Ok((m, r.revision))
    }
}

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(
        &self,
        req: Request<PbRangeRequest>,
    ) -> Result<Response<PbRangeResponse>, Status> {
        self.guard.range(&req)?;
        let req = req.into_inner();
        if req.key.is_empty() {
            return Err(to_status(ApiError::EmptyKey));
        }
        if !req.serializable {
            self.app.read_barrier().await.map_err(to_status)?;
        }
        let run = || {
            let store = self.app.store().read();
            (store.range(&req), store.revision())
        };
        let (resp, rev) = off_worker_if(range_may_take_long(&req.range_end, req.limit), run);
        let mut resp = resp.map_err(to_status)?;
        resp.header = header(&self.app, rev);
        Ok(Response::new(resp))
    }

    type RangeStreamStream = std::pin::Pin<
        Box<
            dyn futures::Stream<Item = Result<etcd_client::proto::PbRangeStreamResponse, Status>>
                + Send,
        >,
    >;

    async fn range_stream(
        &self,
        _: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(to_status(ApiError::Unimplemented(
            "cairn: RangeStream (an API newer than etcd 3.4) is not implemented; use Range with limit"
                .into(),
        )))
    }

    async fn put(&self, req: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let by = self.guard.put(&req)?;
        let req = req.into_inner();
        check_put(&req)?;
        self.app
            .check_quota(put_cost(&req))
            .await
            .map_err(to_status)?;
        let bytes = req.encode_to_vec();
        let (mut resp, rev): (PbPutResponse, _) = self
            .write(Command::Put(bytes).by(by), req.encoded_len())
            .await?;
        resp.header = header(&self.app, rev);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        req: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let by = self.guard.delete(&req)?;
        let req = req.into_inner();
        if req.key.is_empty() {
            return Err(to_status(ApiError::EmptyKey));
        }
        let size = req.encoded_len();
        let (mut resp, rev): (PbDeleteResponse, _) = self
            .write(Command::DeleteRange(req.encode_to_vec()).by(by), size)
            .await?;
        resp.header = header(&self.app, rev);
        Ok(Response::new(resp))
    }

    async fn txn(&self, req: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let by = self.guard.txn(&req)?;
        let req = req.into_inner();
        check_txn(&req)?;
        self.app
            .check_quota(txn_cost(&req))
            .await
            .map_err(to_status)?;
        let size = req.encoded_len();
        let (mut resp, rev): (PbTxnResponse, _) = self
            .write(Command::Txn(req.encode_to_vec()).by(by), size)
            .await?;
        resp.header = header(&self.app, rev);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        req: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        // etcd 3.4 checks no permission for Compact (v3_server.go), so neither does cairn.
        let req = req.into_inner();
        let size = req.encoded_len();
        let (mut resp, rev): (PbCompactionResponse, _) = self
            .write(Command::Compact(req.encode_to_vec()), size)
            .await?;
        if req.physical {
            self.app.compactions_carried_out().await;
        }
        resp.header = header(&self.app, rev);
        Ok(Response::new(resp))
    }
}

/// What a put costs against the space quota (etcd's `costPut`).
fn put_cost(p: &PbPutRequest) -> usize {
    KV_OVERHEAD + p.key.len() + p.value.len()
}

/// What a txn costs against the space quota: its costlier branch's puts (etcd's `costTxn`).
fn txn_cost(t: &PbTxnRequest) -> usize {
    let branch = |ops: &[etcd_client::proto::PbTxnRequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(PbTxnOpRequest::RequestPut(p)) => put_cost(p),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

/// etcd's request checks for Put (before anything is proposed).
fn check_put(req: &PbPutRequest) -> Result<(), Status> {
    if req.key.is_empty() {
        return Err(to_status(ApiError::EmptyKey));
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(to_status(ApiError::ValueProvided));
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(to_status(ApiError::LeaseProvided));
    }
    Ok(())
}

/// etcd's request checks for Txn: op counts, keys present, no key written twice in one branch.
fn check_txn(t: &PbTxnRequest) -> Result<(), Status> {
    if t.compare.len() > MAX_TXN_OPS
        || t.success.len() > MAX_TXN_OPS
        || t.failure.len() > MAX_TXN_OPS
    {
        return Err(to_status(ApiError::TooManyOps));
    }
    for c in &t.compare {
        if c.key.is_empty() {
            return Err(to_status(ApiError::EmptyKey));
        }
    }
    for branch in [&t.success, &t.failure] {
        let mut puts: Vec<&[u8]> = Vec::new();
        let mut dels: Vec<KeyRange<'_>> = Vec::new();
        for op in branch.iter() {
            match &op.request {
                Some(PbTxnOpRequest::RequestPut(p)) => {
                    check_put(p)?;
                    if puts.contains(&p.key.as_slice()) {
                        return Err(to_status(ApiError::DuplicateKey));
                    }
                    puts.push(&p.key);
                }
                Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                    if d.key.is_empty() {
                        return Err(to_status(ApiError::EmptyKey));
                    }
                    dels.push(KeyRange::new(&d.key, &d.range_end));
                }
                Some(PbTxnOpRequest::RequestRange(r)) if r.key.is_empty() => {
                    return Err(to_status(ApiError::EmptyKey));
                }
                Some(PbTxnOpRequest::RequestTxn(n)) => check_txn(n)?,
                _ => {}
            }
        }
        if puts.iter().any(|k| dels.iter().any(|d| d.contains(k))) {
            return Err(to_status(ApiError::DuplicateKey));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::PbTxnRequestOp;

    fn put(k: &str) -> PbTxnRequestOp {
        PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn txn_checks_match_etcd() {
        let ok = PbTxnRequest {
            success: vec![put("a"), put("b")],
            ..Default::default()
        };
        assert!(check_txn(&ok).is_ok());
        let dup = PbTxnRequest {
            success: vec![put("a"), put("a")],
            ..Default::default()
        };
        assert_eq!(
            check_txn(&dup).map_err(|s| s.message().to_string()),
            Err("etcdserver: duplicate key given in txn request".into())
        );
        let many = PbTxnRequest {
            success: (0..129).map(|i| put(&i.to_string())).collect(),
            ..Default::default()
        };
        assert_eq!(
            check_txn(&many).map_err(|s| s.message().to_string()),
            Err("etcdserver: too many operations in txn request".into())
        );
        let del = PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
            key: "a".into(),
            range_end: "c".into(),
            prev_kv: false,
        });
        let overlap = PbTxnRequest {
            success: vec![put("b"), PbTxnRequestOp { request: Some(del) }],
            ..Default::default()
        };
        assert!(check_txn(&overlap).is_err());
    }
}
