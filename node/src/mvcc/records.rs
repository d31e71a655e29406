//! The store as a sequence of revision-ordered records, the shape etcd's backend keeps (`key` bucket):
//! read out for etcd-format snapshots and read in when restoring one. Leases travel as (ID, TTL); the
//! keys attached to them are derived from the records, as etcd's own restore does.

use std::collections::BTreeMap;

use super::keyspace::{Rev, Version};
use super::lease::Lease;
use super::{MvccError, Store};

/// One retained version of a key; a tombstone records a deletion (its other fields are zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub key: &'a [u8],
    pub main: i64,
    pub sub: i64,
    pub create: i64,
    pub version: i64,
    pub lease: i64,
    pub value: &'a [u8],
    pub tombstone: bool,
}

impl Store {
    /// Call `f` with every retained version in revision order, reading values one at a time (the
    /// caller holds the store's lock meanwhile; only the index is sorted in memory).
    pub fn for_each_record<E: From<MvccError>>(
        &self,
        mut f: impl FnMut(Record<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let keys = &self.state.keys;
        let mut order: Vec<(&[u8], &Version)> = keys.all_versions().collect();
        order.sort_unstable_by_key(|(_, v)| v.rev);
        for (key, v) in order {
            let value = if v.tombstone {
                Vec::new()
            } else {
                keys.value(v)?
            };
            f(Record {
                key,
                main: v.rev.main,
                sub: i64::from(v.rev.sub),
                create: v.create,
                version: v.version,
                lease: v.lease,
                value: &value,
                tombstone: v.tombstone,
            })?;
        }
        Ok(())
    }

    /// Compact history at `rev` outside the log (finishing a compaction an etcd snapshot had
    /// scheduled but not done).
    pub fn compact_to(&mut self, rev: i64) -> Result<(), MvccError> {
        self.state.compact(rev)?;
        self.state.keys.finish_walk();
        Ok(())
    }

    /// Start replacing the state with records read from a snapshot (see [`Importer`]).
    pub fn importer(&mut self) -> Importer<'_> {
        self.state.keys.clear();
        Importer {
            store: self,
            last: Rev { main: 0, sub: 0 },
        }
    }
}

/// Loads records into a [`Store`] in revision order, then the leases and compaction revision.
pub struct Importer<'s> {
    store: &'s mut Store,
    last: Rev,
}

impl Importer<'_> {
    /// Add the next record; revisions must ascend.
    pub fn record(&mut self, r: Record<'_>) -> Result<(), MvccError> {
        let sub = u32::try_from(r.sub)
            .map_err(|_| MvccError::Malformed(format!("sub-revision {} out of range", r.sub)))?;
        let rev = Rev { main: r.main, sub };
        if rev <= self.last {
            return Err(MvccError::Malformed(format!(
                "revision {}_{} after {}_{}: records must come in revision order",
                rev.main, rev.sub, self.last.main, self.last.sub
            )));
        }
        self.last = rev;
        let keys = &mut self.store.state.keys;
        let value = if r.tombstone {
            Default::default()
        } else {
            keys.store_value(r.value)
        };
        keys.push(
            r.key,
            Version {
                rev,
                create: r.create,
                version: r.version,
                lease: r.lease,
                value,
                tombstone: r.tombstone,
            },
        );
        Ok(())
    }

    /// Set the leases as (ID, TTL), attaching each key whose latest version names one, and the
    /// compaction revision. The current revision is the last record's, or the compaction's if that is
    /// later (a compacted deletion leaves no record), as etcd computes it on restore.
    pub fn finish(self, leases: &[(i64, i64)], compact_revision: i64) {
        let st = &mut self.store.state;
        let mut table: BTreeMap<i64, Lease> = leases
            .iter()
            .map(|(id, ttl)| (*id, Lease::new(*ttl)))
            .collect();
        for (key, versions) in st.keys.iter() {
            if let Some(v) = versions.last().filter(|v| !v.tombstone && v.lease != 0) {
                if let Some(l) = table.get_mut(&v.lease) {
                    l.keys.insert(key.to_vec());
                }
            }
        }
        st.leases = table;
        st.compact_revision = compact_revision.max(0);
        // etcd's records hold only what its compaction kept; compacting the index at the same
        // revision drops nothing then, and records the revision for what reads of it skip.
        st.keys.compact(st.compact_revision);
        st.keys.finish_walk();
        st.revision = self.last.main.max(st.compact_revision).max(1);
    }
}

/// Commands applied straight to a store, for tests that need history.
#[cfg(test)]
pub mod test_writes {
    use super::*;
    use crate::mvcc::Command;
    use etcd_client::proto::{PbCompactionRequest, PbDeleteRequest, PbPutRequest};
    use prost::Message;

    pub fn apply(s: &mut Store, cmd: Command) {
        assert_eq!(s.apply(&cmd).error, None);
    }

    pub fn grant(s: &mut Store, id: i64, ttl: i64) -> i64 {
        apply(s, Command::LeaseGrant { id, ttl });
        id
    }

    pub fn put(s: &mut Store, k: &str, v: &str, lease: i64) {
        let req = PbPutRequest {
            key: k.into(),
            value: v.into(),
            lease,
            ..Default::default()
        };
        apply(s, Command::Put(req.encode_to_vec()));
    }

    pub fn del(s: &mut Store, k: &str) {
        let req = PbDeleteRequest {
            key: k.into(),
            ..Default::default()
        };
        apply(s, Command::DeleteRange(req.encode_to_vec()));
    }

    pub fn compact(s: &mut Store, revision: i64) {
        let req = PbCompactionRequest {
            revision,
            ..Default::default()
        };
        apply(s, Command::Compact(req.encode_to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::test_writes::*;
    use super::*;

    #[test]
    fn records_come_out_in_revision_order_and_import_back_to_the_same_store() {
        let mut s = Store::new();
        let lease = grant(&mut s, 7, 60);
        put(&mut s, "b", "1", 0);
        put(&mut s, "a", "2", lease);
        put(&mut s, "b", "3", 0);
        del(&mut s, "a");
        put(&mut s, "c", "4", lease);
        compact(&mut s, 3);
        let mut recs = Vec::new();
        s.for_each_record::<MvccError>(|r| {
            recs.push((
                r.key.to_vec(),
                r.main,
                r.sub,
                r.create,
                r.version,
                r.lease,
                r.value.to_vec(),
                r.tombstone,
            ));
            Ok(())
        })
        .unwrap();
        let mains: Vec<i64> = recs.iter().map(|r| r.1).collect();
        assert!(mains.windows(2).all(|w| w[0] <= w[1]), "{mains:?}");
        let mut back = Store::new();
        let mut import = back.importer();
        for r in &recs {
            import
                .record(Record {
                    key: &r.0,
                    main: r.1,
                    sub: r.2,
                    create: r.3,
                    version: r.4,
                    lease: r.5,
                    value: &r.6,
                    tombstone: r.7,
                })
                .unwrap();
        }
        import.finish(&s.lease_ttls(), s.compact_revision());
        assert_eq!(back.revision(), s.revision());
        assert_eq!(back.compact_revision(), 3);
        assert_eq!(back.hash_kv(0).unwrap(), s.hash_kv(0).unwrap());
        let info = back.lease_info(7).unwrap();
        assert_eq!((info.granted_ttl, info.keys), (60, vec![b"c".to_vec()]));
    }

    #[test]
    fn a_compacted_deletion_keeps_the_revision() {
        let mut s = Store::new();
        put(&mut s, "a", "1", 0);
        del(&mut s, "a");
        let mut back = Store::new();
        back.importer().finish(&[], 3);
        assert_eq!(back.revision(), s.revision());
    }
}
