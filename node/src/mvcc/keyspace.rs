//! The key index: every key with its retained versions, and range/history queries over it. Values
//! are in the [`ValueLog`]; versions point into it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use etcd_client::proto::PbKeyValue;
use serde::{Deserialize, Serialize};

use super::values::{Layers, ValueLog, ValueRef};
use super::MvccError;

/// A revision with its position inside a multi-write transaction (etcd's main/sub revision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rev {
    pub main: i64,
    pub sub: u32,
}

/// One version of a key. A tombstone records a deletion at `rev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub rev: Rev,
    pub create: i64,
    pub version: i64,
    pub lease: i64,
    pub value: ValueRef,
    pub tombstone: bool,
}

/// Every key with its versions since the last compaction, oldest first.
///
/// Keys and version lists are shared (`Arc`) so that a snapshot can take the whole map in a copy of
/// its nodes, under the store's lock, and encode it afterwards without the lock: a write then copies
/// only the version list it changes while a snapshot still holds it.
pub type KeyMap = BTreeMap<Arc<[u8]>, Arc<Vec<Version>>>;

/// Every key with its versions since the last compaction, oldest first, and their values.
#[derive(Debug, Default)]
pub struct Keyspace {
    keys: KeyMap,
    values: ValueLog,
}

/// The key interval of a request: one key, `[key, end)`, or everything from `key` on.
#[derive(Debug, Clone, Copy)]
pub struct KeyRange<'a> {
    pub key: &'a [u8],
    pub end: &'a [u8],
}

impl<'a> KeyRange<'a> {
    /// etcd's encoding: empty `range_end` = the single key; `"\0"` = every key >= `key`.
    pub fn new(key: &'a [u8], end: &'a [u8]) -> Self {
        KeyRange { key, end }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            return k == self.key;
        }
        k >= self.key && (self.end == [0] || k < self.end)
    }

    fn bounds(&self) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
        let lo = Bound::Included(self.key);
        if self.end.is_empty() {
            (lo, Bound::Included(self.key))
        } else if self.end == [0] {
            (lo, Bound::Unbounded)
        } else if self.end <= self.key {
            // An empty interval; etcd answers it with nothing.
            (Bound::Excluded(self.key), Bound::Excluded(self.key))
        } else {
            (lo, Bound::Excluded(self.end))
        }
    }
}

impl Version {
    /// The key-value etcd reports for this version, with `value` as its bytes.
    pub fn kv_with(&self, key: &[u8], value: Vec<u8>) -> PbKeyValue {
        PbKeyValue {
            key: key.to_vec(),
            create_revision: self.create,
            mod_revision: self.rev.main,
            version: self.version,
            value,
            lease: self.lease,
        }
    }
}

impl Keyspace {
    /// An empty keyspace whose values go to a file in `dir`.
    pub fn in_dir(dir: std::path::PathBuf) -> Self {
        Keyspace {
            keys: BTreeMap::new(),
            values: ValueLog::in_dir(dir),
        }
    }

    /// The key-value etcd reports for `v` of `key` (reads its value).
    pub fn kv(&self, key: &[u8], v: &Version) -> Result<PbKeyValue, MvccError> {
        Ok(v.kv_with(key, self.values.read(v.value)?))
    }

    /// [`Keyspace::kv`] for the apply path (see [`ValueLog::read_in_apply`]).
    pub fn kv_in_apply(&self, key: &[u8], v: &Version) -> PbKeyValue {
        v.kv_with(key, self.values.read_in_apply(v.value))
    }

    /// The value of `v`.
    pub fn value(&self, v: &Version) -> Result<Vec<u8>, MvccError> {
        self.values.read(v.value)
    }

    /// The value of `v`, for the apply path (see [`ValueLog::read_in_apply`]).
    pub fn value_in_apply(&self, v: &Version) -> Vec<u8> {
        self.values.read_in_apply(v.value)
    }

    /// Store a value for a version about to be pushed.
    pub fn store_value(&mut self, bytes: &[u8]) -> ValueRef {
        self.values.append(bytes)
    }

    /// Bytes in the value file, garbage included.
    pub fn value_bytes(&self) -> u64 {
        self.values.bytes()
    }

    /// Bytes in the value file that kept versions refer to.
    pub fn live_value_bytes(&self) -> u64 {
        self.values.live_bytes()
    }

    /// Whether a value-file rewrite is under way.
    pub fn value_rewrite_running(&self) -> bool {
        self.values.rewrite_running()
    }

    /// The first I/O error of the value file: the member must stop applying.
    pub fn failure(&self) -> Option<&str> {
        self.values.failure()
    }

    /// Drop every key and value.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
    }

    /// Replace every key and value: `keys` point into `values` (a snapshot's).
    pub fn restore(&mut self, keys: KeyMap, values: ValueLog) {
        self.keys = keys;
        self.values.replace(values);
    }

    /// A fresh value log in this keyspace's directory whose base is a snapshot file's values.
    /// (of CRC-32 `crc`, checked on a thread).
    pub fn values_from(
        &self,
        base: std::sync::Arc<std::fs::File>,
        path: &std::path::Path,
        len: u64,
        crc: u32,
    ) -> ValueLog {
        let dir = self
            .values
            .dir()
            .map_or_else(std::env::temp_dir, |d| d.to_path_buf());
        ValueLog::with_base(dir, base, path, len, crc)
    }

    /// The snapshot file the first values are read from, and its bytes of values.
    pub fn value_base(&self) -> Option<(&std::fs::File, u64)> {
        self.values.base()
    }

    /// The value bytes as they are now, readable without the store's lock.
    pub fn value_layers(&self) -> Layers {
        self.values.layers()
    }

    /// Every key with its versions, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[Version])> {
        self.keys.iter().map(|(k, vs)| (&**k, vs.as_slice()))
    }

    /// Every key with its versions as they are now, for a snapshot to read without the store's
    /// lock (a copy of the map's nodes; keys and version lists are shared).
    pub fn shared_map(&self) -> KeyMap {
        self.keys.clone()
    }

    /// The live version of `key` at revision `at` (None if absent or deleted then).
    pub fn get_at(&self, key: &[u8], at: i64) -> Option<&Version> {
        live_at(self.keys.get(key)?, at)
    }

    /// Live versions of every key in `range` at revision `at`, in key order.
    pub fn range_at<'s>(
        &'s self,
        range: KeyRange<'_>,
        at: i64,
    ) -> impl Iterator<Item = (&'s [u8], &'s Version)> + 's {
        let (lo, hi) = range.bounds();
        let valid = !matches!((lo, hi), (Bound::Excluded(a), Bound::Excluded(b)) if a == b);
        let iter = valid.then(|| self.keys.range::<[u8], _>((lo, hi)));
        iter.into_iter()
            .flatten()
            .filter_map(move |(k, vs)| live_at(vs, at).map(|v| (&**k, v)))
    }

    /// Record a new version (put or tombstone) of `key`.
    pub fn push(&mut self, key: &[u8], v: Version) {
        // Look up before inserting: `entry` would copy the key even when it exists.
        match self.keys.get_mut(key) {
            Some(vs) => Arc::make_mut(vs).push(v),
            None => {
                self.keys.insert(Arc::from(key), Arc::new(vec![v]));
            }
        }
    }

    /// Every retained version at or after `from` for keys in `range`, with the version before it.
    pub fn history_since<'s>(
        &'s self,
        range: KeyRange<'_>,
        from: i64,
    ) -> Vec<(&'s [u8], &'s Version, Option<&'s Version>)> {
        let mut out = Vec::new();
        let (lo, hi) = range.bounds();
        if matches!((lo, hi), (Bound::Excluded(a), Bound::Excluded(b)) if a == b) {
            return out;
        }
        for (k, vs) in self.keys.range::<[u8], _>((lo, hi)) {
            for (i, v) in vs.iter().enumerate() {
                if v.rev.main >= from {
                    let prev = i.checked_sub(1).map(|p| &vs[p]).filter(|p| !p.tombstone);
                    out.push((&**k, v, prev));
                }
            }
        }
        out.sort_by_key(|(_, v, _)| v.rev);
        out
    }

    /// Drop versions superseded at `at`: keep, per key, the newest version <= `at` unless it is a
    /// tombstone, and everything after `at`.
    pub fn compact(&mut self, at: i64) {
        self.keys.retain(|_, vs| {
            let keep_from = match vs.iter().rposition(|v| v.rev.main <= at) {
                Some(i) if vs[i].tombstone => i + 1,
                Some(i) => i,
                None => 0,
            };
            if keep_from == 0 {
                return true;
            }
            // Copied only if a snapshot still holds this list.
            for v in Arc::make_mut(vs).drain(..keep_from) {
                self.values.release(v.value);
            }
            !vs.is_empty()
        });
        if self.values.wants_rewrite() {
            let refs = self
                .keys
                .values()
                .flat_map(|vs| vs.iter())
                .map(|v| &v.value);
            self.values.start_rewrite(refs);
        }
    }

    /// Use the value file a rewrite made once its copy is done (never waits): called at the start of
    /// each applied command, when no value is stored without its version.
    pub fn swap_rewritten_values(&mut self) {
        if self.values.rewrite_ready() {
            self.finish_rewrite();
        }
    }

    /// Wait for a running rewrite and use its file.
    pub fn finish_rewrite(&mut self) {
        let refs = self
            .keys
            .values_mut()
            .flat_map(|vs| Arc::make_mut(vs).iter_mut())
            .map(|v| &mut v.value);
        self.values.swap_rewritten(refs);
    }

    /// Every retained version with its key, in key then revision order (for hashing).
    pub fn all_versions(&self) -> impl Iterator<Item = (&[u8], &Version)> {
        self.keys
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (&**k, v)))
    }

    /// Number of keys live at the latest revision.
    pub fn live_keys(&self) -> usize {
        self.keys
            .values()
            .filter(|vs| vs.last().is_some_and(|v| !v.tombstone))
            .count()
    }
}

fn live_at(vs: &[Version], at: i64) -> Option<&Version> {
    let i = vs.partition_point(|v| v.rev.main <= at);
    let v = vs.get(i.checked_sub(1)?)?;
    (!v.tombstone).then_some(v)
}
