//! The replicated command set. Everything that changes the replicated state goes through [`Command`];
//! etcd's own requests travel protobuf-encoded (prost) inside it, so the log holds exactly what the
//! client asked for and the etcd wire types need no serde.

use etcd_client::proto::{PbDeleteRequest, PbTxnOpRequest, PbTxnRequest};
use serde::{Deserialize, Serialize};

use super::MvccError;

/// A replicated state change. Applied in log order by every member's state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// etcd `PutRequest`, prost-encoded.
    Put(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// etcd `DeleteRangeRequest`, prost-encoded.
    DeleteRange(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// etcd `TxnRequest`, prost-encoded.
    Txn(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// etcd `CompactionRequest`, prost-encoded.
    Compact(#[serde(with = "crate::codec::bytes")] Vec<u8>),
    /// Grant a lease. The proposer has already chosen a non-zero ID, so every member agrees on it.
    LeaseGrant { id: i64, ttl: i64 },
    /// Revoke a lease and delete its keys (client revoke, or expiry detected by the leader).
    LeaseRevoke { id: i64 },
    /// A member publishes its name and client URLs after it starts (etcd does the same through Raft).
    PublishMember {
        id: u64,
        name: String,
        client_urls: Vec<String>,
    },
    /// A change of users, roles, permissions or the auth flag (or a simple token to register).
    Auth(super::auth::AuthCommand),
    /// Several commands proposed together as one Raft entry (proposal batching). Applied in order, each
    /// exactly as if it were an entry of its own: its own revision, its own response or error.
    Batch(Vec<Command>),
    /// etcd's `AlarmRequest` ACTIVATE or DEACTIVATE (see `alarm`).
    Alarm {
        action: i32,
        member_id: u64,
        alarm: i32,
    },
    /// A client's command with the user and auth revision its rights were checked at; the applier
    /// checks them again against the auth state it applies to (see `authorize`).
    Authorized {
        by: super::authorize::AuthInfo,
        cmd: Box<Command>,
    },
}

impl Command {
    /// Rough payload size in bytes (batch and cache bounds; not the encoded size).
    pub fn approx_size(&self) -> usize {
        match self {
            Command::Put(b) | Command::DeleteRange(b) | Command::Txn(b) | Command::Compact(b) => {
                b.len()
            }
            Command::Batch(cmds) => cmds.iter().map(Command::approx_size).sum(),
            Command::Authorized { cmd, .. } => cmd.approx_size(),
            _ => 64,
        }
    }
}

impl Command {
    /// Whether applying it may take long: it compacts the history, or deletes (or, in a txn,
    /// reads) a span of keys. The state machine applies such entries off the runtime's worker thread
    /// ([`crate::blocking`]); a span of a million keys took this member's Raft traffic with it.
    pub fn may_take_long(&self) -> bool {
        use prost::Message;
        match self {
            Command::Compact(_) => true,
            Command::DeleteRange(b) => {
                PbDeleteRequest::decode(b.as_slice()).map_or(true, |d| !d.range_end.is_empty())
            }
            Command::Txn(b) => PbTxnRequest::decode(b.as_slice()).map_or(true, |t| txn_spans(&t)),
            Command::Batch(cmds) => cmds.iter().any(Command::may_take_long),
            Command::Authorized { cmd, .. } => cmd.may_take_long(),
            _ => false,
        }
    }

    /// `self` proposed on behalf of `by`, or as it is when there is no one to check (the auth store
    /// was never used: nothing can be revoked in flight, and the log entry stays as small as before).
    pub fn by(self, by: Option<super::authorize::AuthInfo>) -> Command {
        match by {
            Some(by) => Command::Authorized {
                by,
                cmd: Box::new(self),
            },
            None => self,
        }
    }

    /// The command without its requester, and the requester.
    pub fn unwrapped(&self) -> (&Command, Option<&super::authorize::AuthInfo>) {
        match self {
            Command::Authorized { by, cmd } => (cmd, Some(by)),
            c => (c, None),
        }
    }
}

/// The result of applying a [`Command`]: the etcd response protobuf-encoded, or an etcd error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// Store revision after the command was applied.
    pub revision: i64,
    /// The etcd response message matching the command (e.g. `PutResponse`), prost-encoded, without header.
    #[serde(with = "crate::codec::bytes")]
    pub body: Vec<u8>,
    /// Set when the command was rejected deterministically (e.g. compacted revision, lease not found).
    pub error: Option<MvccError>,
    /// For [`Command::Batch`]: one response per command, in order (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<CommandResponse>,
}

/// Whether a txn deletes a span of keys or reads one without a small limit (nested txns included).
fn txn_spans(t: &PbTxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(PbTxnOpRequest::RequestRange(r)) => {
                crate::blocking::range_may_take_long(&r.range_end, r.limit)
            }
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => !d.range_end.is_empty(),
            Some(PbTxnOpRequest::RequestTxn(inner)) => txn_spans(inner),
            _ => false,
        })
}

/// Commands for unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use etcd_client::proto::{PbPutRequest, PbTxnRequestOp};
    use prost::Message;

    /// A put of `key` = "v".
    pub fn put(key: &str) -> Command {
        let p = PbPutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        Command::Put(p.encode_to_vec())
    }

    /// A txn with `op` as its success branch.
    pub fn txn(op: PbTxnOpRequest) -> Command {
        let t = PbTxnRequest {
            success: vec![PbTxnRequestOp { request: Some(op) }],
            ..Default::default()
        };
        Command::Txn(t.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{put, txn};
    use super::*;
    use etcd_client::proto::{PbCompactionRequest, PbRangeRequest, PbTxnRequestOp};
    use prost::Message;

    fn delete(end: &str) -> Command {
        let d = PbDeleteRequest {
            key: b"a".to_vec(),
            range_end: end.into(),
            ..Default::default()
        };
        Command::DeleteRange(d.encode_to_vec())
    }

    fn range(end: &str, limit: i64) -> PbTxnOpRequest {
        PbTxnOpRequest::RequestRange(PbRangeRequest {
            key: b"a".to_vec(),
            range_end: end.into(),
            limit,
            ..Default::default()
        })
    }

    #[test]
    fn spans_and_compactions_may_take_long_single_keys_do_not() {
        let put = put("a");
        let compact = Command::Compact(PbCompactionRequest::default().encode_to_vec());
        assert!(!put.may_take_long());
        assert!(!delete("").may_take_long());
        assert!(delete("b").may_take_long());
        assert!(compact.may_take_long());
        // Kubernetes' update: compare, put, and read the one key back when the compare fails.
        assert!(!txn(range("", 0)).may_take_long());
        assert!(!txn(range("b", 500)).may_take_long());
        assert!(txn(range("b", 0)).may_take_long());
        let nested = PbTxnRequest {
            success: vec![PbTxnRequestOp {
                request: Some(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
                    key: b"a".to_vec(),
                    range_end: b"b".to_vec(),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        assert!(txn(PbTxnOpRequest::RequestTxn(nested)).may_take_long());
        assert!(Command::Batch(vec![put.clone(), compact]).may_take_long());
        assert!(!Command::Batch(vec![put.clone(), put]).may_take_long());
        assert!(Command::Authorized {
            by: Default::default(),
            cmd: Box::new(delete("b")),
        }
        .may_take_long());
    }
}
