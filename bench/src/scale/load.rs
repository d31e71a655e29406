//! The scale suite's dataset: `keys` keys of 1 KiB, then every other key overwritten, then every tenth
//! deleted, so the store holds a history of overwrites and deletes as a long-lived cluster does.
//! Written in transactions of [`BATCH`] operations by concurrent clients, to load quickly.

use anyhow::{bail, Result};
use etcd_client::{Client, Txn, TxnOp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prefix of the dataset's keys.
pub const PREFIX: &str = "scale/";
/// Size of a dataset value.
pub const VALUE_BYTES: usize = 1024;
/// Operations per transaction (etcd's --max-txn-ops default is 128).
const BATCH: u64 = 16;

/// The key for index `i`.
pub fn key(i: u64) -> String {
    format!("{PREFIX}{i:09}")
}

fn value(i: u64, pass: u8) -> Vec<u8> {
    let mut v = format!("{i:09}-{pass}").into_bytes();
    v.resize(VALUE_BYTES, b'x');
    v
}

/// What loading took.
pub struct Loaded {
    pub elapsed: Duration,
    /// Key writes and deletes applied.
    pub ops: u64,
    /// Store revision before the first put and after the last delete.
    pub first_rev: i64,
    pub last_rev: i64,
}

/// Which keys a pass touches and how.
#[derive(Clone, Copy)]
enum Pass {
    Put,
    OverwriteEven,
    DeleteTenth,
    /// Every key once more (the compaction-of-all-history probe's garbage).
    OverwriteAll,
}

impl Pass {
    fn touches(self, i: u64) -> bool {
        match self {
            Pass::Put => true,
            Pass::OverwriteEven => i % 2 == 0,
            Pass::DeleteTenth => i % 10 == 0,
            Pass::OverwriteAll => true,
        }
    }
    fn op(self, i: u64) -> TxnOp {
        match self {
            Pass::Put => TxnOp::put(key(i), value(i, 1), None),
            Pass::OverwriteEven => TxnOp::put(key(i), value(i, 2), None),
            Pass::DeleteTenth => TxnOp::delete(key(i), None),
            Pass::OverwriteAll => TxnOp::put(key(i), value(i, 3), None),
        }
    }
}

/// Loads the dataset through `pool` with `clients` concurrent writers, printing progress.
pub async fn dataset(pool: &[Client], clients: usize, keys: u64) -> Result<Loaded> {
    let started = Instant::now();
    let first_rev = revision(&mut pool[0].clone()).await?;
    let mut ops = 0;
    for (name, pass) in [
        ("put", Pass::Put),
        ("overwrite every other key", Pass::OverwriteEven),
        ("delete every tenth key", Pass::DeleteTenth),
    ] {
        let t = Instant::now();
        let n = run_pass(pool, clients, keys, pass).await?;
        eprintln!("    {name}: {n} ops in {:.1?}", t.elapsed());
        ops += n;
    }
    let last_rev = revision(&mut pool[0].clone()).await?;
    Ok(Loaded {
        elapsed: started.elapsed(),
        ops,
        first_rev,
        last_rev,
    })
}

/// Overwrites every key once more, so that most of the stored values become history: key writes done.
pub async fn overwrite_all(pool: &[Client], clients: usize, keys: u64) -> Result<u64> {
    run_pass(pool, clients, keys, Pass::OverwriteAll).await
}

/// The store's current revision.
pub async fn revision(client: &mut Client) -> Result<i64> {
    let resp = client.get("scale-revision-probe", None).await?;
    Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
}

/// One pass over the keys in batches; each writer takes the next batch until none is left.
async fn run_pass(pool: &[Client], clients: usize, keys: u64, pass: Pass) -> Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|w| {
            let (mut c, next) = (pool[w % pool.len()].clone(), next.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                loop {
                    let from = next.fetch_add(BATCH, Ordering::Relaxed);
                    if from >= keys {
                        return Ok::<u64, etcd_client::Error>(done);
                    }
                    let ops: Vec<TxnOp> = (from..(from + BATCH).min(keys))
                        .filter(|&i| pass.touches(i))
                        .map(|i| pass.op(i))
                        .collect();
                    if ops.is_empty() {
                        continue;
                    }
                    done += ops.len() as u64;
                    // A failed batch is retried once: an election under load may refuse it.
                    let txn = || Txn::new().and_then(ops.clone());
                    if c.txn(txn()).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        c.txn(txn()).await?;
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for t in futures::future::join_all(tasks).await {
        match t {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => bail!("loading the dataset: {e}"),
            Err(e) => bail!("a loader task failed: {e}"),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_leave_overwrites_and_deletes() {
        let touched = |p: Pass| (0..100).filter(|&i| p.touches(i)).count();
        assert_eq!(touched(Pass::Put), 100);
        assert_eq!(touched(Pass::OverwriteEven), 50);
        assert_eq!(touched(Pass::DeleteTenth), 10);
        assert_eq!(touched(Pass::OverwriteAll), 100);
        assert_eq!(value(7, 2).len(), VALUE_BYTES);
        assert!(key(7) < key(10));
    }
}
