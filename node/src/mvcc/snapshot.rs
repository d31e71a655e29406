//! The store's part of a snapshot file: its values, then a key index that points into them.
//!
//! A snapshot is written in two steps so that writes are not held up while a large store is copied:
//! [`capture`] takes, under the store's lock, the key map (a copy of its nodes: keys and version
//! lists are shared), leases, users and the value [`Layers`]. [`Capture::write_to`] then, without the
//! lock, encodes the index (each value given the offset it will have in the value section) and reads
//! the values. Encoding the index of a million keys under the lock held every write for up to a
//! second. [`restore`] reads only the index back: the snapshot file becomes the base of the store's
//! value log, so a restart or a snapshot install reads no value.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use super::auth::AuthState;
use super::index_codec;
use super::keyspace::{self, KeyMap};
use super::lease::Lease;
use super::values::{Layers, ValueRef};
use super::{MvccError, State};

/// Where the store's sections are in a snapshot file: the values from offset 0, the index after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sections {
    /// Bytes of values (the index starts here).
    pub values_len: u64,
    /// Bytes of the encoded index.
    pub index_len: u64,
    /// CRC-32 of the index, checked when it is read back.
    pub index_crc: u32,
    /// CRC-32 of the values.
    pub values_crc: u32,
}

/// The replicated state captured for a snapshot, and where its values are now.
pub struct Capture {
    keys: KeyMap,
    /// The compaction whose dropped versions `keys` may still hold (left out when encoding).
    compacted: i64,
    revision: i64,
    compact_revision: i64,
    leases: BTreeMap<i64, Lease>,
    auth: AuthState,
    layers: Layers,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("keys", &self.keys.len())
            .field("revision", &self.revision)
            .finish()
    }
}

/// The index as restored.
#[derive(Deserialize)]
struct Index<'a> {
    /// In key order, as [`index_codec`] lays them out.
    #[serde(borrow)]
    keys: &'a [u8],
    revision: i64,
    compact_revision: i64,
    leases: BTreeMap<i64, Lease>,
    auth: AuthState,
}

/// [`Index`] as written; the field names and order must match it.
#[derive(Serialize)]
struct IndexView<'a> {
    keys: Binary<'a>,
    revision: i64,
    compact_revision: i64,
    leases: &'a BTreeMap<i64, Lease>,
    auth: &'a AuthState,
}

/// Bytes as MessagePack binary, not as an array of integers.
struct Binary<'a>(&'a [u8]);

impl Serialize for Binary<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// The kept versions of every key in [`index_codec`]'s layout, each value given its offset in the
/// value section; and where the values are now, in the same order.
fn placed_keys(
    keys: &KeyMap,
    compacted: i64,
    layers: &Layers,
) -> io::Result<(Vec<u8>, Vec<ValueRef>)> {
    let mut out = index_codec::KeysOut::new();
    let mut refs = Vec::new();
    let mut placed = 0u64;
    let mut moved = Vec::new();
    for (key, versions) in keys.iter() {
        let versions = keyspace::kept(versions, compacted);
        if versions.is_empty() {
            continue;
        }
        moved.clear();
        for v in versions {
            let mut v = v.clone();
            if v.value.len() > 0 {
                // Where the value is in the layers taken with the index.
                refs.push(layers.current(v.value).map_err(io::Error::other)?);
                v.value = v.value.at(placed);
                placed += v.value.len() as u64;
            }
            moved.push(v);
        }
        out.put(key, &moved).map_err(io::Error::other)?;
    }
    Ok((out.finish(), refs))
}

/// At most this many bytes of values are read at once while writing a snapshot.
const SPAN_BYTES: usize = 1 << 20;

/// Capture `st` for a snapshot. Under the store's lock: copies the key map's nodes (not its keys or
/// versions), the leases and the users; nothing is encoded or read.
pub(super) fn capture(st: &State) -> Capture {
    let (keys, compacted) = st.keys.shared_map();
    Capture {
        keys,
        compacted,
        revision: st.revision,
        compact_revision: st.compact_revision,
        leases: st.leases.clone(),
        auth: st.auth.clone(),
        layers: st.keys.value_layers(),
    }
}

impl Capture {
    /// Write the values, then the index, to `w` (at offset 0 of the snapshot file). Encodes the
    /// index and reads the values from the layers taken with it, so the store's lock is not needed.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<Sections> {
        let (keys, refs) = placed_keys(&self.keys, self.compacted, &self.layers)?;
        let view = IndexView {
            keys: Binary(&keys),
            revision: self.revision,
            compact_revision: self.compact_revision,
            leases: &self.leases,
            auth: &self.auth,
        };
        let index = rmp_serde::to_vec(&view)
            .map_err(|e| io::Error::other(format!("encoding the snapshot's key index: {e}")))?;
        drop(keys);
        let mut values = crc32fast::Hasher::new();
        let mut values_len = 0u64;
        let mut buf = Vec::new();
        // Values stored one after the other (most of a snapshot's, in key order, and of a load) are
        // read together: a read per value cost a system call per key (a million at 1 GiB).
        let mut rest = refs.as_slice();
        while let Some(first) = rest.first() {
            let (mut last, mut n, mut bytes) = (*first, 1, first.len());
            while let Some(next) = rest.get(n) {
                if !last.followed_by(*next) || bytes + next.len() > SPAN_BYTES {
                    break;
                }
                (last, n, bytes) = (*next, n + 1, bytes + next.len());
            }
            self.layers.read_span(*first, last, &mut buf)?;
            values.update(&buf);
            w.write_all(&buf)?;
            values_len += buf.len() as u64;
            rest = &rest[n..];
        }
        w.write_all(&index)?;
        Ok(Sections {
            values_len,
            index_len: index.len() as u64,
            index_crc: crc32fast::hash(&index),
            values_crc: values.finalize(),
        })
    }
}

/// Replace `st`'s keys, revisions, leases and users with the snapshot's in `file`, whose values
/// become the base of the store's value log (they are not read).
pub(super) fn restore(
    st: &mut State,
    file: Arc<File>,
    path: &Path,
    s: &Sections,
) -> Result<(), MvccError> {
    let started = std::time::Instant::now();
    let len = usize::try_from(s.index_len)
        .map_err(|_| MvccError::Malformed(format!("a key index of {} bytes", s.index_len)))?;
    let mut bytes = vec![0; len];
    file.read_exact_at(&mut bytes, s.values_len)
        .map_err(|e| MvccError::Storage(format!("reading the snapshot's key index: {e}")))?;
    if crc32fast::hash(&bytes) != s.index_crc {
        return Err(MvccError::Malformed(
            "the snapshot's key index does not match its checksum (the file is corrupt)".into(),
        ));
    }
    let read = started.elapsed();
    let index: Index = rmp_serde::from_slice(&bytes)
        .map_err(|e| MvccError::Malformed(format!("the snapshot's key index: {e}")))?;
    let decoded = started.elapsed();
    let keys = index_codec::read_keys(index.keys, s.values_len)
        .map_err(|e| MvccError::Malformed(format!("the snapshot's key index: {e}")))?;
    let (leases, auth) = (index.leases, index.auth);
    let (revision, compact_revision) = (index.revision, index.compact_revision);
    drop(bytes);
    tracing::info!(
        keys = keys.len(),
        bytes = s.index_len,
        read_ms = read.as_millis() as u64,
        decode_ms = (decoded - read).as_millis() as u64,
        build_ms = (started.elapsed() - decoded).as_millis() as u64,
        "read the snapshot's key index"
    );
    let values = st.keys.values_from(file, path, s.values_len, s.values_crc);
    st.keys.restore(keys, values, compact_revision);
    st.revision = revision;
    st.compact_revision = compact_revision;
    st.leases = leases;
    st.auth = auth;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::keyspace::{Rev, Version};

    fn put(st: &mut State, key: &str, value: &str, rev: i64) {
        let value = st.keys.store_value(value.as_bytes());
        st.keys.push(
            key.as_bytes(),
            Version {
                rev: Rev { main: rev, sub: 0 },
                create: 2,
                version: 1,
                lease: 0,
                value,
                tombstone: false,
            },
        );
    }

    fn written(st: &State) -> (tempfile::NamedTempFile, Sections) {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        let s = capture(st).write_to(f.as_file_mut()).expect("write");
        (f, s)
    }

    /// The state restored from the snapshot `write_to` put in `f`.
    fn read_back(f: &tempfile::NamedTempFile, s: &Sections) -> State {
        let mut back = State::default();
        restore(
            &mut back,
            Arc::new(f.reopen().expect("reopen")),
            f.path(),
            s,
        )
        .expect("restore");
        back
    }

    type Kvs = Vec<(Vec<u8>, Vec<u8>)>;

    /// Every kept version of `st` as (key, value), and `want` in the same shape.
    fn versions(st: &State, want: &[(&str, &str)]) -> (Kvs, Kvs) {
        let read = st
            .keys
            .all_versions()
            .map(|(k, v)| (k.to_vec(), st.keys.value(v).expect("value")))
            .collect();
        let want = want
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        (read, want)
    }

    #[test]
    fn a_restored_state_reads_its_values_from_the_snapshot_file() {
        let mut st = State::default();
        put(&mut st, "a", "1", 2);
        put(&mut st, "a", "22", 3);
        put(&mut st, "b", "", 4);
        put(&mut st, "c", "333", 5);
        st.revision = 5;
        st.leases.insert(7, Lease::new(30));
        let (f, s) = written(&st);
        assert_eq!(s.values_len, 6, "only values, back to back");
        let mut back = read_back(&f, &s);
        assert_eq!(back.revision, 5);
        assert!(back.leases.contains_key(&7));
        let (read, want) = versions(&back, &[("a", "1"), ("a", "22"), ("b", ""), ("c", "333")]);
        assert_eq!(read, want);
        // Appends go after the snapshot's values, into the member's own file.
        let later = back.keys.store_value(b"later");
        assert_eq!(back.keys.value_bytes(), 6 + 5);
        let v = Version {
            rev: Rev { main: 6, sub: 0 },
            create: 6,
            version: 1,
            lease: 0,
            value: later,
            tombstone: false,
        };
        assert_eq!(back.keys.value(&v).expect("later"), b"later");
    }

    #[test]
    fn a_corrupt_value_is_found_after_the_restore_and_stops_the_store() {
        let mut st = State::default();
        put(&mut st, "a", "some value", 2);
        let (f, s) = written(&st);
        let file = f.reopen().expect("reopen");
        file.write_all_at(b"S", 0).expect("corrupt");
        let mut back = State::default();
        restore(&mut back, Arc::new(file), f.path(), &s).expect("the index is intact");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while back.keys.failure().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let failure = back
            .keys
            .failure()
            .expect("the check finds the corrupt value");
        assert!(failure.contains("corrupt"), "{failure}");
    }

    #[test]
    fn a_capture_keeps_the_state_it_was_taken_at_while_writes_go_on() {
        let mut st = State::default();
        put(&mut st, "a", "1", 2);
        put(&mut st, "b", "2", 3);
        st.revision = 3;
        let captured = capture(&st);
        // After the capture: a new version of a shared list, a new key, a compaction that drops
        // a captured version, and a lease.
        put(&mut st, "a", "11", 4);
        put(&mut st, "c", "3", 5);
        st.revision = 5;
        st.keys.compact(4);
        st.leases.insert(9, Lease::new(10));
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        let s = captured.write_to(f.as_file_mut()).expect("write");
        let back = read_back(&f, &s);
        assert_eq!(back.revision, 3);
        assert!(back.leases.is_empty());
        let (read, want) = versions(&back, &[("a", "1"), ("b", "2")]);
        assert_eq!(read, want);
        // And the store itself kept its writes.
        let now: Vec<(Vec<u8>, i64)> = st
            .keys
            .all_versions()
            .map(|(k, v)| (k.to_vec(), v.rev.main))
            .collect();
        let want = [("a", 4), ("b", 3), ("c", 5)].map(|(k, r)| (k.as_bytes().to_vec(), r));
        assert_eq!(now, want);
    }

    #[test]
    fn a_corrupt_index_is_refused_with_the_reason() {
        let mut st = State::default();
        put(&mut st, "a", "1", 2);
        let (f, s) = written(&st);
        let file = f.reopen().expect("reopen");
        file.write_all_at(b"\xff", s.values_len + 2)
            .expect("corrupt");
        let err =
            restore(&mut State::default(), Arc::new(file), f.path(), &s).expect_err("corrupt");
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
