//! The record of every acknowledged put, and the read-back that proves each one is still there.

use anyhow::{Context, Result};
use etcd_client::{Client, GetOptions, SortOrder, SortTarget};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The prefix of every key the put workloads write.
pub const PREFIX: &str = "bench/";

/// The key for index `i` of the keyspace.
pub fn key_of(i: u64) -> String {
    format!("{PREFIX}{i:08}")
}

/// A 256-byte value that encodes `tag` (client and sequence number), so a read-back can tell whose write
/// it sees.
pub fn value_of(tag: u64) -> Vec<u8> {
    let mut v = format!("{tag:016x}").into_bytes();
    v.resize(256, b'.');
    v
}

/// Last acknowledged write per key, by revision.
#[derive(Default)]
pub struct Ledger {
    acked: Mutex<HashMap<u64, (i64, u64)>>,
    uncertain: Mutex<HashSet<u64>>,
}

/// What the read-back found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Keys with at least one acknowledged put.
    pub keys: usize,
    /// Keys whose latest acknowledged put is present with the right value and revision.
    pub intact: usize,
    /// Keys absent although a put was acknowledged.
    pub missing: usize,
    /// Keys holding an older value or another revision than the latest acknowledged put.
    pub wrong: usize,
}

impl Ledger {
    /// Records that a put of `tag` to `key` was acknowledged at `revision`.
    pub fn acked(&self, key: u64, revision: i64, tag: u64) {
        if let Ok(mut map) = self.acked.lock() {
            let e = map.entry(key).or_insert((revision, tag));
            if revision >= e.0 {
                *e = (revision, tag);
            }
        }
    }

    /// Records that a put to `key` failed: it may have committed anyway.
    pub fn uncertain(&self, key: u64) {
        if let Ok(mut set) = self.uncertain.lock() {
            set.insert(key);
        }
    }

    /// Reads back the whole keyspace (linearizable, in pages) and checks every acknowledged put.
    pub async fn verify(&self, client: &mut Client) -> Result<Verdict> {
        let mut found: HashMap<u64, (i64, Vec<u8>)> = HashMap::new();
        let mut from = PREFIX.as_bytes().to_vec();
        let end = b"bench0".to_vec(); // '/' + 1: the end of the prefix range
        loop {
            let opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(2000)
                .with_sort(SortTarget::Key, SortOrder::Ascend);
            let resp = client
                .get(from.clone(), Some(opts))
                .await
                .context("reading back the keyspace")?;
            for kv in resp.kvs() {
                let idx = kv
                    .key_str()
                    .ok()
                    .and_then(|k| k.strip_prefix(PREFIX))
                    .and_then(|k| k.parse().ok());
                if let Some(idx) = idx {
                    found.insert(idx, (kv.mod_revision(), kv.value().to_vec()));
                }
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => from = [last.key(), b"\0"].concat(),
                _ => break,
            }
        }
        let acked = self
            .acked
            .lock()
            .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?;
        let uncertain = self
            .uncertain
            .lock()
            .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?;
        let mut v = Verdict {
            keys: acked.len(),
            ..Verdict::default()
        };
        for (key, (rev, tag)) in acked.iter() {
            match found.get(key) {
                None => v.missing += 1,
                Some((r, val)) if r == rev && *val == value_of(*tag) => v.intact += 1,
                // A later put that failed on the client side may still have committed.
                Some((r, _)) if r > rev && uncertain.contains(key) => v.intact += 1,
                Some(_) => v.wrong += 1,
            }
        }
        Ok(v)
    }
}
