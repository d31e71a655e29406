//! Maintenance: Status, HashKV, Alarm, Defragment, Snapshot, MoveLeader; Hash and Downgrade answer
//! Unimplemented.

use std::pin::Pin;

use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
    PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest, PbHashResponse,
    PbMaintenanceService, PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest,
    PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use futures::Stream;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::header::{current, header};
use super::status::{to_status, ApiError};
use super::SERVER_VERSION;
use crate::member::App;

/// Snapshot stream chunk size.
const CHUNK: usize = 64 * 1024;
/// etcdctl's `snapshot save` accepts a file only if its size is a multiple of 512 plus the 32-byte
/// SHA-256 trailer (the bbolt page rule), so the data is zero-padded to 512 bytes.
const ALIGN: usize = 512;
/// Marks the start of a cairn snapshot (etcd's are bbolt files), followed by the data length.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"CAIRNSS1";

/// The Maintenance service.
pub struct MaintenanceService {
    app: App,
}

impl MaintenanceService {
    pub fn new(app: App) -> Self {
        MaintenanceService { app }
    }
}

/// The bytes `Snapshot` streams: magic, length, store data, zero padding to 512, then SHA-256 of all before.
pub fn snapshot_file(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + ALIGN + 48);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        req: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        // cairn raises no alarms (no space quota, no corruption check yet): GET and DEACTIVATE answer
        // truthfully with none; ACTIVATE would claim an alarm cairn cannot act on.
        if req.into_inner().action == 1 {
            return Err(to_status(ApiError::Unimplemented(
                "cairn: activating alarms is not supported; cairn raises no alarms".into(),
            )));
        }
        Ok(Response::new(PbAlarmResponse {
            header: current(&self.app),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let s = self.app.status();
        let db = i64::try_from(self.app.db_size()).unwrap_or(i64::MAX);
        let is_learner = self
            .app
            .members()
            .iter()
            .any(|m| m.id == s.member_id && m.is_learner);
        Ok(Response::new(PbStatusResponse {
            header: current(&self.app),
            version: SERVER_VERSION.to_string(),
            db_size: db,
            leader: s.leader.unwrap_or(0),
            raft_index: s.raft_index,
            raft_term: s.term,
            raft_applied_index: s.applied_index,
            errors: Vec::new(),
            db_size_in_use: i64::try_from(self.app.db_size_in_use()).unwrap_or(i64::MAX),
            is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        // Space is given back without it: a compaction that leaves the value file mostly garbage
        // rewrites it, and the Raft log is purged behind each snapshot. Saying "done" is true.
        Ok(Response::new(PbDefragmentResponse {
            header: current(&self.app),
        }))
    }

    async fn hash(&self, _: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        Err(to_status(ApiError::Unimplemented(
            "cairn: Hash (of the whole backend file) is not implemented; use HashKV (etcdctl endpoint hashkv)"
                .into(),
        )))
    }

    async fn hash_kv(
        &self,
        req: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        let rev = req.into_inner().revision;
        let (hash, compact_revision, hash_revision, current) = {
            let s = self.app.store().read();
            let (h, c, r) = s.hash_kv(rev).map_err(to_status)?;
            (h, c, r, s.revision())
        };
        Ok(Response::new(PbHashKvResponse {
            header: header(&self.app, current),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        _: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let (data, rev) = {
            let s = self.app.store().read();
            (s.snapshot().map_err(to_status)?, s.revision())
        };
        let file = snapshot_file(&data);
        let (body, sum) = file.split_at(file.len() - 32);
        let mut msgs = Vec::new();
        let mut sent = 0;
        for chunk in body.chunks(CHUNK) {
            sent += chunk.len();
            msgs.push(Ok(PbSnapshotResponse {
                header: header(&self.app, rev),
                remaining_bytes: (file.len() - sent) as u64,
                blob: chunk.to_vec(),
                version: String::new(),
            }));
        }
        msgs.push(Ok(PbSnapshotResponse {
            header: header(&self.app, rev),
            remaining_bytes: 0,
            blob: sum.to_vec(),
            version: String::new(),
        }));
        Ok(Response::new(Box::pin(futures::stream::iter(msgs))))
    }

    async fn move_leader(
        &self,
        req: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        self.app
            .move_leader(req.into_inner().target_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbMoveLeaderResponse {
            header: current(&self.app),
        }))
    }

    async fn downgrade(
        &self,
        _: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(to_status(ApiError::Unimplemented(
            "cairn: Downgrade is not implemented (an etcd 3.5 cluster-version feature)".into(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_file_passes_etcdctls_size_rule_and_carries_its_hash() {
        for n in [0, 1, 511, 512, 70_000] {
            let f = snapshot_file(&vec![7u8; n]);
            assert_eq!(f.len() % 512, 32, "size rule for {n} bytes");
            let (body, sum) = f.split_at(f.len() - 32);
            assert_eq!(Sha256::digest(body).as_slice(), sum);
        }
    }
}
