//! etcd's backend database layout (etcd `server/mvcc/backend`, `mvcc/kvstore.go`, `etcdserver/api/
//! membership`, `lease`, `auth`) in a bbolt file: what `etcdctl snapshot save` receives and what
//! `etcdctl snapshot status` / `etcdutl snapshot restore` and a restored etcd read. [`export`] writes one
//! from cairn's store; [`import`] reads one (made by cairn or etcd 3.4/3.5) back into a store.
//!
//! The `key` bucket maps a revision key (8-byte big-endian main revision, `_`, 8-byte big-endian
//! sub-revision, and `t` for a deletion) to an `mvccpb.KeyValue`; `meta` holds the consistent index and
//! the compaction revisions; `lease` maps 8-byte big-endian IDs to `leasepb.Lease`; `members` maps hex
//! member IDs to etcd's member JSON.

pub mod export;
pub mod import;

use crate::bbolt::BoltError;
use crate::mvcc::MvccError;

/// The buckets of an etcd 3.4/3.5 backend, in the byte order bbolt keeps them.
pub const BUCKETS: [&str; 10] = [
    "alarm",
    "auth",
    "authRoles",
    "authUsers",
    "cluster",
    "key",
    "lease",
    "members",
    "members_removed",
    "meta",
];

const KEY_BUCKET: &[u8] = b"key";
const META_BUCKET: &[u8] = b"meta";
const LEASE_BUCKET: &[u8] = b"lease";
const CONSISTENT_INDEX: &[u8] = b"consistent_index";
const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const TERM: &[u8] = b"term";
/// The cluster version a snapshot announces (cairn speaks etcd's 3.4 API).
const CLUSTER_VERSION: &[u8] = b"3.4.0";

/// etcd's `leasepb.Lease` (server/lease/leasepb/lease.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// A cluster member as the `members` bucket stores it (etcd's `membership.Member` JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberRecord {
    pub id: u64,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(
        rename = "isLearner",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_learner: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

/// Errors reading or writing an etcd-format database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Bolt(#[from] BoltError),
    #[error(transparent)]
    Store(#[from] MvccError),
    /// A bbolt file that is not laid out as etcd's backend, or holds a damaged record.
    #[error("not an etcd database: {0}")]
    Layout(String),
}

/// The `key` bucket key of revision (main, sub), with `t` appended for a deletion.
pub fn revision_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&main.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    if tombstone {
        k.push(b't');
    }
    k
}

/// (main, sub, tombstone) of a `key` bucket key.
pub fn parse_revision_key(k: &[u8]) -> Result<(i64, i64, bool), DbError> {
    let tombstone = match k.len() {
        17 => false,
        18 if k[17] == b't' => true,
        _ => {
            return Err(DbError::Layout(format!(
                "revision key of {} bytes ({})",
                k.len(),
                hex::encode(k)
            )))
        }
    };
    if k[8] != b'_' {
        return Err(DbError::Layout(format!("revision key {}", hex::encode(k))));
    }
    let mut main = [0u8; 8];
    let mut sub = [0u8; 8];
    main.copy_from_slice(&k[..8]);
    sub.copy_from_slice(&k[9..17]);
    Ok((i64::from_be_bytes(main), i64::from_be_bytes(sub), tombstone))
}

/// CRC-32C (Castagnoli), the checksum `etcdctl snapshot status` prints as the hash.
pub struct Crc32c {
    table: [u32; 256],
    crc: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        let mut table = [0u32; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        Crc32c { table, crc: !0 }
    }
}

impl Crc32c {
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.crc = self.table[((self.crc ^ u32::from(*b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    pub fn sum(&self) -> u32 {
        !self.crc
    }
}

#[cfg(test)]
mod tests;
