//! A workload shaped like the Kubernetes API server's storage layer (issue 22), run through the
//! `etcd-client` crate against any etcd-API cluster: objects under `/registry/<resource>/<ns>/<name>`
//! created, updated and deleted with optimistic Txns, paginated lists at one revision, one
//! require-leader watch per resource with prev_kv and progress notify (resumed after errors), the
//! API server's compaction Txn, event leases and leader-election keys. It records every acknowledged
//! write and checks what a control plane needs: watches miss and reorder nothing, every list is one
//! consistent snapshot, no optimistic update loses a write. Used by the system test (short) and by
//! `cairn-k8s-load` (long, cairn vs etcd side by side).

mod check;
mod tasks;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;

use crate::pki::Pki;

pub use check::Report;

/// How much load, for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the writers run.
    pub duration: Duration,
    /// Resource kinds (`/registry/<kind>/`), one watch each.
    pub resources: usize,
    /// Distinct objects per resource kind.
    pub objects: usize,
    /// Concurrent writers.
    pub writers: usize,
    /// Small single-object watches besides the per-resource ones.
    pub small_watches: usize,
    /// Page size of lists (the API server's is 500).
    pub page: i64,
    /// The API server's compaction interval (its `--etcd-compaction-interval`, 5m by default).
    pub compact_every: Duration,
}

impl Options {
    /// The CI mode: seconds, a few hundred writes.
    pub fn short() -> Options {
        Options {
            duration: Duration::from_secs(10),
            resources: 3,
            objects: 40,
            writers: 4,
            small_watches: 20,
            page: 10,
            compact_every: Duration::from_secs(2),
        }
    }
}

/// One write the cluster acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub key: String,
    pub revision: i64,
    /// The value written, or None for a delete.
    pub value: Option<String>,
}

/// Latencies of one operation kind.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    pub ok: Vec<Duration>,
    pub errors: usize,
}

/// One paginated list: its prefix, revision and items (key, mod_revision).
#[derive(Debug, Clone)]
pub struct ListSnapshot {
    pub prefix: String,
    pub revision: i64,
    pub items: Vec<(String, i64)>,
}

/// Everything the tasks recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The store's revision when the run started; only later writes are in the ledger.
    pub start_revision: i64,
    pub acked: Vec<Acked>,
    /// Keys with a write that failed without an answer (it may or may not have applied).
    pub uncertain: Vec<String>,
    pub ops: BTreeMap<&'static str, Latencies>,
    /// Per resource prefix, every event the watch delivered: (key, mod_revision, is_put).
    pub watched: BTreeMap<String, Vec<(String, i64, bool)>>,
    pub problems: Vec<String>,
    /// Lists kept for the consistency check.
    pub list_snapshots: Vec<ListSnapshot>,
    pub lists: usize,
    pub lists_too_old: usize,
    pub compactions: usize,
    /// Optimistic updates that found the object changed and were retried.
    pub conflicts: usize,
    pub progress_notifications: usize,
    pub watch_resumes: usize,
    /// Why watch streams ended before the run did (each was resumed).
    pub watch_ends: Vec<String>,
}

/// Runs the workload against the cluster at `endpoints` and checks it.
pub async fn run(pki: &Pki, endpoints: &[&str], opts: &Options) -> Result<Report> {
    let recorded = tasks::run(pki, endpoints, opts).await?;
    let client = crate::grpc::connect_with(pki, endpoints, false).await?;
    check::check(client, recorded, opts).await
}
