//! Compaction during paginated lists, the API server's "resource version too old" path: a list of our
//! own is compacted between its pages (its next page must be refused with etcd's error, code and text,
//! never answered with other data), then compactions to the newest revision while the workload's
//! lister pages at older ones (its lists that hit one are counted as too old and listed again).

use std::time::Duration;

use anyhow::{Context, Result};
use cairn_tests::grpc::status_of;
use etcd_client::{Client, GetOptions};

/// What etcd answers for a read at a compacted revision.
const COMPACTED: (&str, &str) = (
    "OutOfRange",
    "etcdserver: mvcc: required revision has been compacted",
);

/// A key outside `/registry/`, written to move the revision past a list's.
const BUMP: &str = "k8sfault/compaction-bump";

/// What one compaction step did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Compactions that succeeded.
    pub compactions: usize,
    /// Continued lists refused as compacted, as etcd refuses them.
    pub refused: usize,
    /// Continued lists answered or refused otherwise.
    pub violations: Vec<String>,
}

/// Runs the step: one probe list, then `rounds` compactions 400 ms apart.
pub async fn compact_during_lists(c: &mut Client, rounds: usize) -> Result<Outcome> {
    let mut out = Outcome::default();
    let prefix = "/registry/";
    let first = c
        .get(prefix, Some(GetOptions::new().with_prefix().with_limit(1)))
        .await
        .context("the first page of the probe list")?;
    let rev = first.header().map_or(0, |h| h.revision());
    let last = first
        .kvs()
        .first()
        .map(|kv| kv.key().to_vec())
        .context("the probe list found no object under /registry/")?;
    let bumped = c.put(BUMP, "x", None).await?;
    let newest = bumped.header().map_or(0, |h| h.revision());
    c.compact(newest, None).await?;
    out.compactions += 1;
    let mut from = last;
    from.push(0);
    let opts = GetOptions::new()
        .with_range("/registry0")
        .with_limit(1)
        .with_revision(rev);
    match c.get(from, Some(opts)).await {
        Ok(r) => out.violations.push(format!(
            "a list continued at revision {rev} after a compaction to {newest} got {} keys instead of {COMPACTED:?}",
            r.kvs().len()
        )),
        Err(e) => {
            let (code, msg) = status_of(&e);
            if (code.as_str(), msg.as_str()) == COMPACTED {
                out.refused += 1;
            } else {
                out.violations.push(format!(
                    "a list continued at compacted revision {rev} got {code} {msg:?} instead of {COMPACTED:?}"
                ));
            }
        }
    }
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let Ok(r) = c.get(BUMP, None).await else {
            continue;
        };
        let rev = r.header().map_or(0, |h| h.revision());
        if c.compact(rev, None).await.is_ok() {
            out.compactions += 1;
        }
    }
    Ok(out)
}
