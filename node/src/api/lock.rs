//! Lock: Lock and Unlock, etcd's v3lock service. A lock named N is held by the oldest key under `N/`;
//! each caller puts `N/<lease in hex>` on its lease and waits until every older key is deleted
//! (unlocked, or its lease expired), as etcd's `concurrency.Mutex` does.

use tonic::{Request, Response, Status};

use super::concurrency::{
    created_at, first_create, key_only, name_prefix, op_get, op_put, range_kvs, revision,
    session_key, Local,
};
use super::pb::v3lockpb::lock_server::Lock;
use super::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use super::status::{to_status, ApiError};
use etcd_client::proto::PbTxnRequest;

/// The Lock service.
pub struct LockService {
    local: Local,
}

impl LockService {
    pub fn new(local: Local) -> Self {
        LockService { local }
    }
}

/// Deletes a waiter's key if its request is dropped (the client gave up) before the lock was
/// acquired, as etcd's `Mutex.Lock` does when its context is canceled.
pub(super) struct Abandon {
    local: Local,
    key: Option<Vec<u8>>,
}

impl Abandon {
    pub(super) fn new(local: &Local, key: &[u8]) -> Self {
        Abandon {
            local: local.clone(),
            key: Some(key.to_vec()),
        }
    }

    /// Give up the key now, waiting for the delete.
    pub(super) async fn release(mut self) {
        if let Some(key) = self.key.take() {
            let _ = self.local.delete(&key).await;
        }
    }

    /// Keep the key.
    pub(super) fn keep(mut self) {
        self.key = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let local = self.local.clone();
            tokio::spawn(async move {
                let _ = local.delete(&key).await;
            });
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let local = &self.local.acting_for(&req);
        let req = req.into_inner();
        let lease = local.session_lease(req.lease).await?;
        let prefix = name_prefix(&req.name);
        let key = session_key(&prefix, lease);
        // Queue up (or find this lease's key from an earlier call) and read the owner in one txn.
        let t = local
            .txn(PbTxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![op_put(&key, b"", lease), op_get(first_create(&prefix))],
                failure: vec![op_get(key_only(&key)), op_get(first_create(&prefix))],
            })
            .await?;
        let my_rev = if t.succeeded {
            revision(&t.header)
        } else {
            range_kvs(&t, 0).first().map_or(0, |kv| kv.create_revision)
        };
        let owner = range_kvs(&t, 1).first().map(|kv| kv.create_revision);
        if owner.is_none_or(|rev| rev == my_rev) {
            return Ok(Response::new(LockResponse {
                header: t.header,
                key,
            }));
        }
        let waiter = Abandon::new(local, &key);
        if let Err(e) = local.wait_deletes(&prefix, my_rev - 1).await {
            waiter.release().await;
            return Err(e);
        }
        // The key may have gone with its lease while waiting.
        let mine = match local.get(key_only(&key)).await {
            Ok(r) => r,
            Err(e) => {
                waiter.release().await;
                return Err(e);
            }
        };
        waiter.keep();
        if mine.kvs.is_empty() {
            return Err(to_status(ApiError::LockSessionExpired));
        }
        Ok(Response::new(LockResponse {
            header: mine.header,
            key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let local = self.local.acting_for(&req);
        let resp = local.delete(&req.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}
