//! The key index: every key with its retained versions, and range/history queries over it. Values
//! are in the [`ValueLog`]; versions point into it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use etcd_client::proto::PbKeyValue;
use serde::{Deserialize, Serialize};

use super::values::{Layers, ValueLog, ValueRef};
use super::MvccError;

/// Append `v` to a key's versions, growing the list by half rather than by `Vec`'s doubling from
/// four: most keys hold one to a few versions until a compaction, and the index is the member's
/// largest use of memory (64 bytes a version: a key written twice held four slots, 128 bytes unused).
fn push_version(list: &mut Vec<Version>, v: Version) {
    if list.len() == list.capacity() {
        list.reserve_exact((list.len() / 2).max(1));
    }
    list.push(v);
}

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
///
/// Work over every key is done in a [`Walk`], a slice of keys at a time between applies
/// ([`Keyspace::walk_step`]): a compaction, recorded at once ([`Keyspace::compact`]), drops the
/// superseded versions, and after a value-file rewrite is swapped in, the references are
/// repointed into the new file. Done in one go, at a million keys, each held the store's lock (and
/// so every write) for up to 0.8 and 0.6 s. Until a key's turn comes, the versions a compaction
/// drops are still there, but nothing reads them: a read is at or after the compaction, and
/// [`Keyspace::iter`] and [`Keyspace::all_versions`] (hash, snapshot, export) skip them, so the
/// state every member reports is the same whatever its progress. References not yet repointed
/// are translated when read (see [`ValueLog::repoint`]).
#[derive(Debug, Default)]
pub struct Keyspace {
    keys: KeyMap,
    values: ValueLog,
    /// The revision of the last compaction asked for.
    compacted: i64,
    /// The walk under way, if its slices have not reached every key.
    walk: Option<Walk>,
}

/// How far a walk over the keys has got, and what it does at each.
#[derive(Debug, Default)]
struct Walk {
    /// The first key not yet visited (None: the first key).
    next: Option<Arc<[u8]>>,
    /// Whether it carries out the compaction at `compacted` (else it only repoints).
    compacts: bool,
    /// The value bytes when the compaction started: the rewrite it may start copies values below
    /// this offset from `refs` and the rest verbatim.
    upto: u64,
    /// Where the kept versions' values below `upto` are, gathered for the rewrite (None when
    /// the value file is too small for one).
    refs: Option<Vec<ValueRef>>,
}

/// What one slice of a walk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStep {
    /// Keys visited.
    pub keys: usize,
    /// Whether the walk reached the last key.
    pub done: bool,
}

/// The index of the first version kept by a compaction at `at`: the newest version at or below
/// `at` unless it is a tombstone, and everything after `at`.
fn keep_from(vs: &[Version], at: i64) -> usize {
    match vs.iter().rposition(|v| v.rev.main <= at) {
        Some(i) if vs[i].tombstone => i + 1,
        Some(i) => i,
        None => 0,
    }
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
            values: ValueLog::in_dir(dir),
            ..Keyspace::default()
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

    /// Whether a value-file rewrite has finished its copy and waits to be swapped in.
    pub fn value_rewrite_ready(&self) -> bool {
        self.values.rewrite_ready()
    }

    /// The first I/O error of the value file: the member must stop applying.
    pub fn failure(&self) -> Option<&str> {
        self.values.failure()
    }

    /// Drop every key and value.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
        self.walk = None;
        self.compacted = 0;
    }

    /// Replace every key and value: `keys` point into `values` (a snapshot's, which holds only
    /// what its compaction at `compacted` kept).
    pub fn restore(&mut self, keys: KeyMap, values: ValueLog, compacted: i64) {
        self.keys = keys;
        self.values.replace(values);
        self.walk = None;
        self.compacted = compacted;
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

    /// Every key with its kept versions, in key order (keys with none are left out).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[Version])> {
        let at = self.compacted;
        self.keys
            .iter()
            .map(move |(k, vs)| (&**k, kept(vs, at)))
            .filter(|(_, vs)| !vs.is_empty())
    }

    /// Every key with its versions as they are now, for a snapshot to read without the store's
    /// lock (a copy of the map's nodes; keys and version lists are shared), and the compaction
    /// revision whose dropped versions it may still hold (see [`kept`]).
    pub fn shared_map(&self) -> (KeyMap, i64) {
        (self.keys.clone(), self.compacted)
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
            Some(vs) => push_version(Arc::make_mut(vs), v),
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
            let vs = kept(vs, self.compacted);
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
    /// tombstone, and everything after `at`. Recorded now, carried out by [`Keyspace::walk_step`]
    /// (a later compaction starts the walk over from the first key, at its own revision; the
    /// walk repoints as well, so it also takes over one that only did that).
    pub fn compact(&mut self, at: i64) {
        self.compacted = at;
        let upto = self.values.prepare_rewrite();
        self.walk = Some(Walk {
            compacts: true,
            upto: upto.unwrap_or(0),
            refs: upto.map(|_| Vec::new()),
            ..Walk::default()
        });
    }

    /// Whether a compaction has keys left to compact.
    pub fn compacting(&self) -> bool {
        self.walk.as_ref().is_some_and(|w| w.compacts)
    }

    /// Whether a walk has keys left to visit.
    pub fn walking(&self) -> bool {
        self.walk.is_some()
    }

    /// Carry the walk under way on through the keys until `budget` has passed (looked at every
    /// [`STEP_CHECK_EVERY`] keys). At the last key of a compaction, start the value-file rewrite
    /// if it left the file mostly garbage.
    pub fn walk_step(&mut self, budget: std::time::Duration) -> WalkStep {
        let Some(mut w) = self.walk.take() else {
            return WalkStep {
                keys: 0,
                done: true,
            };
        };
        let started = std::time::Instant::now();
        let at = self.compacted;
        let repointing = self.values.repointing();
        let lo = w.next.take().map_or(Bound::Unbounded, Bound::Included);
        let mut emptied = Vec::new();
        let mut keys = 0;
        for (k, vs) in self.keys.range_mut::<Arc<[u8]>, _>((lo, Bound::Unbounded)) {
            if keys % STEP_CHECK_EVERY == 0 && keys > 0 && started.elapsed() >= budget {
                w.next = Some(k.clone());
                break;
            }
            keys += 1;
            // Lists are copied (make_mut) only if a snapshot still holds them, and only if
            // something changes.
            if repointing && vs.iter().any(|v| self.values.needs_repoint(v.value)) {
                for v in Arc::make_mut(vs).iter_mut() {
                    self.values.repoint(&mut v.value);
                }
            }
            if !w.compacts {
                continue;
            }
            let drop = keep_from(vs, at);
            if drop > 0 {
                let list = Arc::make_mut(vs);
                for v in list.drain(..drop) {
                    self.values.release(v.value);
                }
                // A compaction leaves most keys one version: give back what the history took.
                if list.capacity() > 2 * list.len() {
                    list.shrink_to_fit();
                }
                if vs.is_empty() {
                    emptied.push(k.clone());
                    continue;
                }
            }
            if let Some(refs) = &mut w.refs {
                refs.extend(
                    vs.iter()
                        .map(|v| v.value)
                        .filter(|r| r.len() > 0 && r.end() <= w.upto),
                );
            }
        }
        for k in emptied {
            self.keys.remove(&k);
        }
        if w.next.is_some() {
            self.walk = Some(w);
            return WalkStep { keys, done: false };
        }
        if repointing {
            self.values.repointed();
        }
        if let Some(refs) = w.refs.filter(|_| self.values.wants_rewrite()) {
            self.values.start_rewrite(refs, w.upto);
        }
        WalkStep { keys, done: true }
    }

    /// Carry the walk under way out to its end (tests, and a store that must be whole).
    pub fn finish_walk(&mut self) {
        while !self.walk_step(std::time::Duration::from_secs(3600)).done {}
    }

    /// Use the value file a rewrite made once its copy is done (never waits), unless a walk is
    /// under way; a walk then repoints the references into it. Called at the start of each applied
    /// command and between walks, when no value is stored without its version.
    pub fn swap_rewritten_values(&mut self) {
        if self.walk.is_none() && self.values.rewrite_ready() {
            self.swap();
        }
    }

    /// Wait for a running rewrite and use its file, the walks before and after it done.
    #[cfg(test)]
    pub fn finish_rewrite(&mut self) {
        self.finish_walk();
        self.swap();
        self.finish_walk();
    }

    fn swap(&mut self) {
        self.values.swap_rewritten();
        if self.values.repointing() {
            self.walk = Some(Walk::default());
        }
    }

    /// Every retained version with its key, in key then revision order (for hashing).
    pub fn all_versions(&self) -> impl Iterator<Item = (&[u8], &Version)> {
        self.iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k, v)))
    }

    /// Number of keys live at the latest revision.
    pub fn live_keys(&self) -> usize {
        self.keys
            .values()
            .filter(|vs| vs.last().is_some_and(|v| !v.tombstone))
            .count()
    }
}

/// How many keys a compaction slice compacts between looks at the clock.
const STEP_CHECK_EVERY: usize = 256;

/// The versions of `vs` a compaction at `compacted` keeps (all of them once it has reached the key).
pub fn kept(vs: &[Version], compacted: i64) -> &[Version] {
    &vs[keep_from(vs, compacted)..]
}

fn live_at(vs: &[Version], at: i64) -> Option<&Version> {
    let i = vs.partition_point(|v| v.rev.main <= at);
    let v = vs.get(i.checked_sub(1)?)?;
    (!v.tombstone).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(main: i64) -> Version {
        Version {
            rev: Rev { main, sub: 0 },
            create: 1,
            version: main,
            lease: 0,
            value: ValueRef::default(),
            tombstone: false,
        }
    }

    #[test]
    fn a_key_s_versions_grow_by_half_not_doubling_from_four() {
        assert!(std::mem::size_of::<Version>() <= 64);
        let mut list = vec![version(1)];
        let mut caps = Vec::new();
        for main in 2..=20 {
            push_version(&mut list, version(main));
            caps.push(list.capacity());
        }
        assert_eq!(
            &caps[..5],
            &[2, 3, 4, 6, 6],
            "a key written twice holds two slots"
        );
        for (n, cap) in caps.iter().enumerate() {
            let len = n + 2;
            assert!(
                *cap >= len && *cap <= len * 3 / 2 + 1,
                "{len} versions in {cap} slots"
            );
        }
        assert_eq!(
            list.iter().map(|v| v.rev.main).collect::<Vec<_>>(),
            (1..=20).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_compaction_gives_back_the_slots_of_the_versions_it_dropped() {
        let mut ks = Keyspace::default();
        for main in 1..=20 {
            ks.push(b"k", version(main));
        }
        ks.push(b"other", version(21));
        ks.compact(19);
        ks.finish_walk();
        let (map, _) = ks.shared_map();
        let kept = &map[&Arc::<[u8]>::from(&b"k"[..])];
        assert_eq!(
            kept.iter().map(|v| v.rev.main).collect::<Vec<_>>(),
            vec![19, 20]
        );
        assert!(
            kept.capacity() <= 4,
            "{} slots kept for 2 versions",
            kept.capacity()
        );
    }
}
