//! Writing cairn's state as an etcd backend database (the body of `Maintenance.Snapshot`).

use std::io::{Seek, Write};

use prost::Message;

use super::{
    revision_key, DbError, LeaseRecord, MemberRecord, BUCKETS, CLUSTER_VERSION, CONSISTENT_INDEX,
    FINISHED_COMPACT, SCHEDULED_COMPACT, TERM,
};
use crate::bbolt::Writer;
use crate::mvcc::Store;

/// What a snapshot carries besides the store: the members, and the Raft position it was taken at.
#[derive(Debug, Clone, Default)]
pub struct ClusterRecord {
    pub members: Vec<MemberRecord>,
    /// The applied Raft index (etcd's consistent index).
    pub applied_index: u64,
    pub term: u64,
}

/// Write `store` and `cluster` into `out` (an empty seekable file) as etcd's backend lays them out;
/// returns `out` positioned at its end. The store is read under the caller's lock, values one at a
/// time, so the file never exists in memory.
pub fn write<W: Write + Seek>(
    store: &Store,
    cluster: &ClusterRecord,
    out: W,
) -> Result<W, DbError> {
    let mut w = Writer::new(out)?;
    for bucket in BUCKETS {
        w.begin_bucket(bucket.as_bytes())?;
        match bucket {
            // etcd's auth store starts at revision 1 with auth disabled (no `authEnabled` key).
            "auth" => w.put(b"authRevision", &1u64.to_be_bytes())?,
            "cluster" => w.put(b"clusterVersion", CLUSTER_VERSION)?,
            "key" => write_keys(store, &mut w)?,
            "lease" => {
                // Keys are big-endian IDs: sort as unsigned, as bbolt compares bytes.
                let mut leases = store.lease_ttls();
                leases.sort_by_key(|(id, _)| *id as u64);
                for (id, ttl) in leases {
                    let rec = LeaseRecord {
                        id,
                        ttl,
                        remaining_ttl: 0,
                    };
                    w.put(&id.to_be_bytes(), &rec.encode_to_vec())?;
                }
            }
            "members" => {
                let mut members: Vec<(String, &MemberRecord)> = cluster
                    .members
                    .iter()
                    .map(|m| (format!("{:x}", m.id), m))
                    .collect();
                members.sort_by(|a, b| a.0.cmp(&b.0));
                for (key, m) in members {
                    let json = serde_json::to_vec(m)
                        .map_err(|e| DbError::Layout(format!("member {key}: {e}")))?;
                    w.put(key.as_bytes(), &json)?;
                }
            }
            "meta" => {
                w.put(CONSISTENT_INDEX, &cluster.applied_index.to_be_bytes())?;
                let compacted = store.compact_revision();
                if compacted > 0 {
                    let rev = revision_key(compacted, 0, false);
                    w.put(FINISHED_COMPACT, &rev)?;
                    w.put(SCHEDULED_COMPACT, &rev)?;
                }
                w.put(TERM, &cluster.term.to_be_bytes())?;
            }
            _ => {}
        }
        w.end_bucket()?;
    }
    Ok(w.finish()?)
}

fn write_keys<W: Write + Seek>(store: &Store, w: &mut Writer<W>) -> Result<(), DbError> {
    store.for_each_record(|r| {
        // etcd stores a deletion as a KeyValue with only the key set.
        let kv = if r.tombstone {
            etcd_client::proto::PbKeyValue {
                key: r.key.to_vec(),
                ..Default::default()
            }
        } else {
            etcd_client::proto::PbKeyValue {
                key: r.key.to_vec(),
                create_revision: r.create,
                mod_revision: r.main,
                version: r.version,
                value: r.value.to_vec(),
                lease: r.lease,
            }
        };
        w.put(
            &revision_key(r.main, r.sub, r.tombstone),
            &kv.encode_to_vec(),
        )
        .map_err(DbError::from)
    })
}
