//! Reading an etcd backend database (a snapshot from cairn or etcd 3.4/3.5) back into a store, and
//! the figures `etcdctl snapshot status` prints.

use etcd_client::proto::PbKeyValue;
use prost::Message;

use super::{
    parse_revision_key, Crc32c, DbError, LeaseRecord, FINISHED_COMPACT, KEY_BUCKET, LEASE_BUCKET,
    META_BUCKET, SCHEDULED_COMPACT,
};
use crate::bbolt::Reader;
use crate::mvcc::{Record, Store};

/// What `etcdctl snapshot status` reports about a database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// CRC-32C over every bucket name, key and value, in order.
    pub hash: u32,
    /// The main revision of the last record of the `key` bucket.
    pub revision: i64,
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// What was loaded into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub revision: i64,
    pub compact_revision: i64,
    pub records: u64,
    pub leases: usize,
}

/// Compute `etcdctl snapshot status`'s figures.
pub fn status(db: &Reader) -> Result<Status, DbError> {
    let mut crc = Crc32c::default();
    let (mut total_key, mut revision) = (0u64, 0i64);
    for name in db.buckets()? {
        crc.update(&name);
        let is_key = name == KEY_BUCKET;
        db.for_each::<DbError>(&name, |k, v| {
            crc.update(k);
            crc.update(v);
            if is_key {
                revision = parse_revision_key(k)?.0;
            }
            total_key += 1;
            Ok(())
        })?;
    }
    Ok(Status {
        hash: crc.sum(),
        revision,
        total_key,
        total_size: db.size(),
    })
}

/// Replace `store`'s state with the database's keys (every retained version), leases and compaction.
pub fn load(db: &Reader, store: &mut Store) -> Result<Loaded, DbError> {
    let (mut finished, mut scheduled) = (0, 0);
    let has_meta = db.for_each::<DbError>(META_BUCKET, |k, v| {
        if k == FINISHED_COMPACT {
            finished = parse_revision_key(v)?.0;
        } else if k == SCHEDULED_COMPACT {
            scheduled = parse_revision_key(v)?.0;
        }
        Ok(())
    })?;
    let mut leases = Vec::new();
    db.for_each::<DbError>(LEASE_BUCKET, |k, v| {
        let l = LeaseRecord::decode(v)
            .map_err(|e| DbError::Layout(format!("lease {}: {e}", hex::encode(k))))?;
        leases.push((l.id, l.ttl));
        Ok(())
    })?;
    leases.sort_unstable();
    let mut import = store.importer();
    let mut records = 0u64;
    let has_keys = db.for_each::<DbError>(KEY_BUCKET, |k, v| {
        let (main, sub, tombstone) = parse_revision_key(k)?;
        let kv = PbKeyValue::decode(v)
            .map_err(|e| DbError::Layout(format!("key bucket record {main}_{sub}: {e}")))?;
        import.record(Record {
            key: &kv.key,
            main,
            sub,
            create: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
            value: &kv.value,
            tombstone,
        })?;
        records += 1;
        Ok(())
    })?;
    if !has_keys || !has_meta {
        return Err(DbError::Layout(
            "no \"key\" or \"meta\" bucket (is this an etcd v3 snapshot?)".into(),
        ));
    }
    import.finish(&leases, finished);
    // A compaction etcd had scheduled but not finished is finished now, as etcd does on restart.
    if scheduled > finished {
        store.compact_to(scheduled)?;
    }
    Ok(Loaded {
        revision: store.revision(),
        compact_revision: store.compact_revision(),
        records,
        leases: leases.len(),
    })
}
