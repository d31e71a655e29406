//! The keys of a snapshot's key index in a fixed binary layout, read without a decoder per field.
//!
//! Why not MessagePack like the rest of the index: a member installing a 1 GiB snapshot (a million
//! keys) spent 745 ms decoding them and 425 ms more turning the decoded keys into the key map, while
//! the new member waited to serve. Here each key's bytes are copied once, into the map's own key.
//!
//! Layout, little-endian:
//! ```text
//! keys: u64, then per key in ascending order:
//!   key length: u32, key bytes, versions: u32, then per version (oldest first) 49 bytes:
//!     rev.main i64, rev.sub u32, create i64, version i64, lease i64,
//!     value offset u64, value length u32, tombstone u8
//! ```

use std::sync::Arc;

use super::keyspace::{KeyMap, Rev, Version};
use super::values::ValueRef;

/// A key map's entry.
type Entry = (Arc<[u8]>, Arc<Vec<Version>>);

const VERSION_BYTES: usize = 8 + 4 + 8 + 8 + 8 + 8 + 4 + 1;

/// The keys of an index being written: a count, patched in by [`KeysOut::finish`], then the keys.
pub struct KeysOut {
    out: Vec<u8>,
    count: u64,
}

impl KeysOut {
    pub fn new() -> Self {
        KeysOut {
            out: vec![0; 8],
            count: 0,
        }
    }

    /// Append one key and its versions; keys come in ascending order.
    pub fn put(&mut self, key: &[u8], versions: &[Version]) -> Result<(), String> {
        let too_many =
            |what: &str, n: usize| format!("{what} of {n} does not fit the snapshot format");
        let klen = u32::try_from(key.len()).map_err(|_| too_many("a key", key.len()))?;
        let n = u32::try_from(versions.len()).map_err(|_| too_many("a history", versions.len()))?;
        let out = &mut self.out;
        out.reserve(8 + key.len() + versions.len() * VERSION_BYTES);
        out.extend_from_slice(&klen.to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&n.to_le_bytes());
        for v in versions {
            let (off, len) = v.value.parts();
            out.extend_from_slice(&v.rev.main.to_le_bytes());
            out.extend_from_slice(&v.rev.sub.to_le_bytes());
            out.extend_from_slice(&v.create.to_le_bytes());
            out.extend_from_slice(&v.version.to_le_bytes());
            out.extend_from_slice(&v.lease.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.push(u8::from(v.tombstone));
        }
        self.count += 1;
        Ok(())
    }

    /// The bytes [`read_keys`] reads.
    pub fn finish(mut self) -> Vec<u8> {
        self.out[..8].copy_from_slice(&self.count.to_le_bytes());
        self.out
    }
}

/// The key map `bytes` holds (written by [`KeysOut`]), checked: keys
/// in ascending order, each value inside the `values_len` bytes of the value section and together
/// exactly those bytes.
pub fn read_keys(bytes: &[u8], values_len: u64) -> Result<KeyMap, String> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.u64()?;
    // Each key takes at least 8 bytes: a count larger than that is corrupt, not a reason to
    // reserve memory.
    if count > (bytes.len() / 8) as u64 {
        return Err(format!("{count} keys announced in {} bytes", bytes.len()));
    }
    let mut keys: Vec<Entry> = Vec::with_capacity(count as usize);
    let mut placed = 0u64;
    for _ in 0..count {
        let klen = r.u32()? as usize;
        let key: Arc<[u8]> = Arc::from(r.take(klen)?);
        if keys.last().is_some_and(|(last, _)| **last >= *key) {
            return Err("keys are not in ascending order".into());
        }
        let n = r.u32()? as usize;
        let records = r.take(n.checked_mul(VERSION_BYTES).ok_or("a history too long")?)?;
        let mut versions = Vec::with_capacity(n);
        for rec in records.chunks_exact(VERSION_BYTES) {
            let mut f = Reader { bytes: rec, at: 0 };
            let rev = Rev {
                main: f.i64()?,
                sub: f.u32()?,
            };
            let (create, version, lease) = (f.i64()?, f.i64()?, f.i64()?);
            let (off, len) = (f.u64()?, f.u32()?);
            let tombstone = f.take(1)?[0] != 0;
            let value = ValueRef::from_parts(off, len);
            if value.end() > values_len {
                return Err(format!(
                    "a value points past the {values_len} bytes of values"
                ));
            }
            placed += u64::from(len);
            versions.push(Version {
                rev,
                create,
                version,
                lease,
                value,
                tombstone,
            });
        }
        keys.push((key, Arc::new(versions)));
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the last key", bytes.len() - r.at));
    }
    if placed != values_len {
        return Err(format!(
            "the keys refer to {placed} bytes of values, the file holds {values_len}"
        ));
    }
    // In order already: the map's sort finds one run, and it is built from it.
    Ok(keys.into_iter().collect())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end =
            end.ok_or_else(|| format!("cut short at byte {} of {}", self.at, self.bytes.len()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, String> {
        self.array().map(i64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(main: i64, off: u64, len: u32, tombstone: bool) -> Version {
        Version {
            rev: Rev { main, sub: 3 },
            create: main - 1,
            version: 7,
            lease: -5,
            value: ValueRef::from_parts(off, len),
            tombstone,
        }
    }

    fn encoded(keys: &[(&[u8], Vec<Version>)]) -> Vec<u8> {
        let mut out = KeysOut::new();
        for (k, vs) in keys {
            out.put(k, vs).expect("put");
        }
        out.finish()
    }

    #[test]
    fn keys_come_back_as_written() {
        let keys: Vec<(&[u8], Vec<Version>)> = vec![
            (b"", vec![version(2, 0, 3, false)]),
            (
                b"a",
                vec![version(3, 3, 0, true), version(i64::MAX, 3, 10, false)],
            ),
            (b"b\xff\x00", vec![]),
        ];
        let map = read_keys(&encoded(&keys), 13).expect("read");
        let back: Vec<(&[u8], Vec<Version>)> =
            map.iter().map(|(k, vs)| (&**k, (**vs).clone())).collect();
        assert_eq!(back, keys);
    }

    #[test]
    fn damaged_keys_are_refused_with_the_reason() {
        let good: Vec<(&[u8], Vec<Version>)> =
            vec![(b"a", vec![version(2, 0, 4, false)]), (b"b", vec![])];
        let bytes = encoded(&good);
        let cases: Vec<(Vec<u8>, u64, &str)> = vec![
            (bytes[..bytes.len() - 1].to_vec(), 4, "cut short"),
            ([bytes.clone(), vec![0]].concat(), 4, "after the last key"),
            (bytes.clone(), 3, "points past"),
            (bytes.clone(), 5, "refer to 4 bytes"),
            (
                encoded(&[(b"b", vec![]), (b"a", vec![version(2, 0, 4, false)])]),
                4,
                "ascending",
            ),
            (u64::MAX.to_le_bytes().to_vec(), 0, "keys announced"),
        ];
        for (bytes, values_len, want) in cases {
            let err = read_keys(&bytes, values_len).expect_err(want);
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
