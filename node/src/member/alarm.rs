//! The space quota (etcd's `backendQuota` and the quota check of its gRPC layer): a write that would
//! take the database past `--quota-backend-bytes` raises this member's NOSPACE alarm through Raft, so
//! every member then refuses writes that add data until an operator disarms it.

use etcd_client::proto::{PbAlarmMember, PbAlarmResponse};
use prost::Message;

use super::{App, MemberError};
use crate::mvcc::{alarm, Command, MvccError};

/// etcd's estimate of what storing a lease costs (`leaseOverhead`).
pub const LEASE_COST: usize = 64;
/// etcd's estimate of what a key's metadata costs (`kvOverhead`).
pub const KV_OVERHEAD: usize = 256;

impl App {
    /// Refuse a write of `cost` bytes that does not fit in the quota, raising NOSPACE for this member
    /// first (etcd's `quotaAlarmer.check`).
    pub async fn check_quota(&self, cost: usize) -> Result<(), MemberError> {
        let Some(quota) = self.inner.quota else {
            return Ok(());
        };
        if self.quota_size().saturating_add(cost as u64) < quota {
            return Ok(());
        }
        let raise = Command::Alarm {
            action: alarm::ACTIVATE,
            member_id: self.inner.id,
            alarm: alarm::NOSPACE,
        };
        // The refusal stands even if raising the alarm fails (no leader): etcd ignores that error too.
        if let Err(e) = self.propose(raise).await {
            tracing::warn!("could not raise the NOSPACE alarm: {e}");
        }
        Err(MemberError::Mvcc(MvccError::NoSpace))
    }

    /// What the quota limits: the on-disk bytes of the key-value state, i.e. the snapshot file and the
    /// values beside it (garbage included, as etcd counts bbolt's free pages). The Raft log is not counted,
    /// as etcd does not count its WAL; Status `dbSize` includes it.
    pub fn quota_size(&self) -> u64 {
        self.inner.data_dir.snapshot_bytes() + self.value_bytes_beside_the_snapshot()
    }

    /// Raise or clear an alarm through Raft (Maintenance.Alarm ACTIVATE/DEACTIVATE); the alarms it
    /// changed.
    pub async fn change_alarm(
        &self,
        action: i32,
        member_id: u64,
        alarm: i32,
    ) -> Result<Vec<PbAlarmMember>, MemberError> {
        let r = self
            .propose(Command::Alarm {
                action,
                member_id,
                alarm,
            })
            .await?;
        if let Some(e) = r.error {
            return Err(MemberError::Mvcc(e));
        }
        let resp = PbAlarmResponse::decode(r.body.as_slice()).map_err(MemberError::other)?;
        Ok(resp.alarms)
    }

    /// The raised alarms of type `alarm` (NONE: all).
    pub fn alarms(&self, alarm: i32) -> Vec<PbAlarmMember> {
        self.store().read().alarms(alarm)
    }
}
