//! Maintenance: Status, HashKV, Alarm (GET, ACTIVATE, DEACTIVATE; see `mvcc::alarm`), Defragment, Snapshot (etcd's format, see `snapshot`), MoveLeader, Hash (of the
//! replicated state, see `mvcc::Store::hash`); Downgrade answers Unimplemented.

use std::pin::Pin;

use etcd_client::proto::{
    PbAlarmMember, PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse,
    PbDowngradeRequest, PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest,
    PbHashResponse, PbMaintenanceService, PbMoveLeaderRequest, PbMoveLeaderResponse,
    PbSnapshotRequest, PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::guard::Guard;
use super::header::{current, header};
use super::status::{to_status, ApiError};
use super::SERVER_VERSION;
use crate::blocking::off_worker;
use crate::member::{App, MemberError};
use crate::mvcc::alarm;

/// An alarm as etcd lists it in Status `errors`: the alarm member in protobuf's compact text format
/// (`memberID:10276657743932975437 alarm:NOSPACE `).
fn alarm_text(a: &PbAlarmMember) -> String {
    let name = match a.alarm {
        alarm::NOSPACE => "NOSPACE",
        alarm::CORRUPT => "CORRUPT",
        _ => "NONE",
    };
    format!("memberID:{} alarm:{name} ", a.member_id)
}

/// Status `errors` as etcd fills them: "no leader" first when there is none, then every alarm.
fn status_errors(no_leader: bool, alarms: &[PbAlarmMember]) -> Vec<String> {
    let no_leader = no_leader.then(|| to_status(MemberError::NoLeader).message().to_string());
    no_leader
        .into_iter()
        .chain(alarms.iter().map(alarm_text))
        .collect()
}

/// The Maintenance service.
pub struct MaintenanceService {
    app: App,
    guard: Guard,
}

impl MaintenanceService {
    pub fn new(app: App, guard: Guard) -> Self {
        MaintenanceService { app, guard }
    }
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(
        &self,
        req: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        self.guard.admin(&req)?;
        let req = req.into_inner();
        let alarms = match req.action {
            alarm::GET => self.app.alarms(req.alarm),
            action => self
                .app
                .change_alarm(action, req.member_id, req.alarm)
                .await
                .map_err(to_status)?,
        };
        Ok(Response::new(PbAlarmResponse {
            header: current(&self.app),
            alarms,
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
            errors: status_errors(s.leader.is_none(), &self.app.alarms(alarm::NONE)),
            db_size_in_use: i64::try_from(self.app.db_size_in_use()).unwrap_or(i64::MAX),
            is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        req: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        self.guard.admin(&req)?;
        // Space is given back without it: a compaction that leaves the value file mostly garbage
        // rewrites it, and the Raft log is purged behind each snapshot. Saying "done" is true. etcd
        // answers without a header.
        Ok(Response::new(PbDefragmentResponse { header: None }))
    }

    async fn hash(&self, _: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        let (hash, rev) = off_worker(|| {
            let s = self.app.store().read();
            (s.hash(), s.revision())
        });
        let hash = hash.map_err(to_status)?;
        Ok(Response::new(PbHashResponse {
            header: header(&self.app, rev),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        self.guard.admin(&req)?;
        let rev = req.into_inner().revision;
        let (hashed, current) = off_worker(|| {
            let s = self.app.store().read();
            (s.hash_kv(rev), s.revision())
        });
        let (hash, compact_revision, hash_revision) = hashed.map_err(to_status)?;
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
        req: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.guard.admin(&req)?;
        let app = self.app.clone();
        let (file, rev) =
            tokio::task::spawn_blocking(move || super::snapshot::write_database(&app))
                .await
                .map_err(|e| Status::internal(format!("snapshot: {e}")))??;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let head = header(&self.app, rev);
        tokio::task::spawn_blocking(move || super::snapshot::stream(file, head, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn move_leader(
        &self,
        req: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        self.guard.admin(&req)?;
        self.app
            .move_leader(req.into_inner().target_id)
            .await
            .map_err(to_status)?;
        // etcd answers without a header.
        Ok(Response::new(PbMoveLeaderResponse { header: None }))
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
