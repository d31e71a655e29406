//! Alarms (etcd's `AlarmStore` and capped/corrupt appliers): replicated through Raft like every other
//! command, so all members agree on them. While NOSPACE is raised, writes that add data are refused;
//! while CORRUPT is raised, every write is.

use std::collections::BTreeSet;

use etcd_client::proto::{PbAlarmMember, PbAlarmResponse, PbTxnOpRequest, PbTxnRequest};
use prost::Message;

use super::{decode, Command, MvccError, Store};

/// etcd's `AlarmType` values.
pub const NONE: i32 = 0;
/// The database passed `--quota-backend-bytes`.
pub const NOSPACE: i32 = 1;
/// A member's data disagrees with the others'.
pub const CORRUPT: i32 = 2;

/// etcd's `AlarmRequest_AlarmAction` values.
pub const GET: i32 = 0;
/// Raise an alarm.
pub const ACTIVATE: i32 = 1;
/// Clear an alarm.
pub const DEACTIVATE: i32 = 2;

/// The raised alarms: (member ID, alarm type), ordered as etcd lists them (by member, then type).
pub type Alarms = BTreeSet<(u64, i32)>;

impl Store {
    /// The alarms raised, of type `alarm` (NONE: all), as etcd's Alarm GET lists them.
    pub fn alarms(&self, alarm: i32) -> Vec<PbAlarmMember> {
        self.alarms
            .iter()
            .filter(|(_, a)| alarm == NONE || *a == alarm)
            .map(|&(member_id, alarm)| PbAlarmMember { member_id, alarm })
            .collect()
    }

    /// Every raised alarm (for snapshots).
    pub fn alarm_set(&self) -> &Alarms {
        &self.alarms
    }

    /// Replace the raised alarms (from a snapshot).
    pub fn set_alarms(&mut self, alarms: Alarms) {
        self.alarms = alarms;
    }

    /// Apply an alarm ACTIVATE/DEACTIVATE: the response lists the alarm it raised or cleared.
    pub(super) fn apply_alarm(&mut self, action: i32, member_id: u64, alarm: i32) -> Vec<u8> {
        let entry = (member_id, alarm);
        let changed = match action {
            // etcd ignores an activation of NONE.
            ACTIVATE if alarm != NONE => {
                self.alarms.insert(entry);
                true
            }
            DEACTIVATE => self.alarms.remove(&entry),
            _ => false,
        };
        let alarms = if changed {
            vec![PbAlarmMember { member_id, alarm }]
        } else {
            Vec::new()
        };
        PbAlarmResponse {
            header: None,
            alarms,
        }
        .encode_to_vec()
    }

    /// The error an alarm makes `cmd` fail with, if any (etcd's `applierV3Capped`/`applierV3Corrupt`).
    pub(super) fn refused_by_alarm(&self, cmd: &Command) -> Option<MvccError> {
        if self.alarms.is_empty() {
            return None;
        }
        let raised = |t: i32| self.alarms.iter().any(|&(_, a)| a == t);
        let write = matches!(
            cmd,
            Command::Put(_)
                | Command::DeleteRange(_)
                | Command::Txn(_)
                | Command::Compact(_)
                | Command::LeaseGrant { .. }
                | Command::LeaseRevoke { .. }
        );
        if write && raised(CORRUPT) {
            return Some(MvccError::Corrupt);
        }
        if !raised(NOSPACE) {
            return None;
        }
        match cmd {
            Command::Put(_) | Command::LeaseGrant { .. } => Some(MvccError::NoSpace),
            Command::Txn(b) => match decode::<PbTxnRequest>(b) {
                Ok(t) if read_only(&t) => None,
                _ => Some(MvccError::NoSpace),
            },
            _ => None,
        }
    }
}

/// A txn whose branches only read (etcd's `isTxnReadonly`).
fn read_only(t: &PbTxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| matches!(op.request, Some(PbTxnOpRequest::RequestRange(_))))
}

#[cfg(test)]
mod tests {
    use etcd_client::proto::PbRangeRequest;

    use super::*;
    use crate::mvcc::command::fixtures::{put, txn};

    fn alarm(action: i32, alarm: i32) -> Command {
        Command::Alarm {
            action,
            member_id: 7,
            alarm,
        }
    }

    #[test]
    fn nospace_refuses_writes_that_add_data_until_deactivated() {
        let mut s = Store::new();
        assert_eq!(s.apply(&put("a")).error, None);
        s.apply(&alarm(ACTIVATE, NOSPACE));
        assert_eq!(
            s.alarms(NONE),
            vec![PbAlarmMember {
                member_id: 7,
                alarm: NOSPACE
            }]
        );
        assert_eq!(s.apply(&put("b")).error, Some(MvccError::NoSpace));
        let grant = Command::LeaseGrant { id: 1, ttl: 10 };
        assert_eq!(s.apply(&grant).error, Some(MvccError::NoSpace));
        let read = PbTxnOpRequest::RequestRange(PbRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        });
        assert_eq!(s.apply(&txn(read)).error, None, "a read-only txn passes");
        let del = Command::DeleteRange(
            etcd_client::proto::PbDeleteRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert_eq!(s.apply(&del).error, None, "deletes pass");
        s.apply(&alarm(DEACTIVATE, NOSPACE));
        assert!(s.alarms(NONE).is_empty());
        assert_eq!(s.apply(&put("b")).error, None);
    }

    #[test]
    fn corrupt_refuses_every_write() {
        let mut s = Store::new();
        s.apply(&alarm(ACTIVATE, CORRUPT));
        assert_eq!(s.apply(&put("a")).error, Some(MvccError::Corrupt));
        let compact = Command::Compact(
            etcd_client::proto::PbCompactionRequest {
                revision: 1,
                physical: false,
            }
            .encode_to_vec(),
        );
        assert_eq!(s.apply(&compact).error, Some(MvccError::Corrupt));
        assert_eq!(s.alarms(NOSPACE), vec![]);
    }
}
