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
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::pki::Pki;

pub use check::Report;

/// How many of the open streams share one connection to a member.
pub const STREAMS_PER_CONNECTION: usize = 100;

/// How long setup and the final read-back retry a failing call (a slow leader election at the
/// start, or one left by a fault at the end, is no failed run).
pub const RETRY_FOR: Duration = Duration::from_secs(60);

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
    /// Small single-object watches besides the per-resource ones, each on its own connection.
    pub small_watches: usize,
    /// More single-object watches, as many as an API server holds open: these share one connection
    /// per member for every [`STREAMS_PER_CONNECTION`], each its own gRPC stream.
    pub open_streams: usize,
    /// Page size of lists (the API server's is 500).
    pub page: i64,
    /// The API server's compaction interval (its `--etcd-compaction-interval`, 5m by default).
    pub compact_every: Duration,
    /// Varies the writers' choices; a run with the same seed makes the same choices.
    pub seed: u64,
    /// The member (index into the endpoints) every watch opens its first stream on; `None` spreads
    /// them over the members. After a stream ends, a watch resumes on the next member in turn, as
    /// clientv3's round-robin balancer does.
    pub watch_member: Option<usize>,
    /// Makes the watches lag, as a watch cache whose connection stalled: every stream is closed after
    /// being open this long and reopened this long later from where it was. With compactions more
    /// often than that, the reopened watch meets a compacted revision and must re-list.
    pub watch_pause: Option<Duration>,
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
            open_streams: 0,
            page: 10,
            compact_every: Duration::from_secs(2),
            seed: 0,
            watch_member: None,
            watch_pause: None,
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
    /// The first error's text, to tell a fault's effect from a bug.
    pub first_error: Option<String>,
}

/// One paginated list: its prefix, revision and items (key, mod_revision).
#[derive(Debug, Clone)]
pub struct ListSnapshot {
    pub prefix: String,
    pub revision: i64,
    pub items: Vec<(String, i64)>,
}

/// One stream of a watch: the member it was open on, from when to when, and how it ended.
#[derive(Debug, Clone)]
pub struct WatchStream {
    /// The watch (its prefix, or `=key`).
    pub name: String,
    /// Index of the member (into the endpoints).
    pub member: usize,
    /// When the member confirmed the watch (its `created` response).
    pub opened: Instant,
    /// The revision the watch resumed from.
    pub from: i64,
    /// When and why the stream ended, while the workload still ran.
    pub ended: Option<(Instant, String)>,
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
    /// Watches canceled by a compaction that re-listed their range and watched on from the list.
    pub relists: usize,
    /// Per watch, the revisions a re-list covered instead of events: (first missed, list revision),
    /// both included. Writes in them are known from the list, not from the watch.
    pub relisted: BTreeMap<String, Vec<(i64, i64)>>,
    /// Leader-election leases that expired (their keep-alives failed longer than the TTL).
    pub lease_expiries: usize,
    /// Why watch streams ended before the run did (each was resumed).
    pub watch_ends: Vec<String>,
    /// Every watch stream opened, in order.
    pub streams: Vec<WatchStream>,
}

/// Runs the workload against the cluster at `endpoints` and checks it.
pub async fn run(pki: &Pki, endpoints: &[&str], opts: &Options) -> Result<Report> {
    Workload::start(pki, endpoints, opts).finish().await
}

/// The workload while it runs, for a fault injector that needs to know where the watches are.
pub struct Workload {
    rec: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<Result<Recorded>>,
    deadline: tasks::Deadline,
    pki: Pki,
    endpoints: Vec<String>,
    opts: Options,
    started: Instant,
}

impl Workload {
    /// Starts every task; they run for `opts.duration` (or until [`Workload::stop`]).
    pub fn start(pki: &Pki, endpoints: &[&str], opts: &Options) -> Workload {
        let rec: Arc<Mutex<Recorded>> = Arc::default();
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
        let deadline = tasks::Deadline::after(opts.duration);
        let task = tokio::spawn(tasks::run(
            pki.clone(),
            endpoints.clone(),
            opts.clone(),
            rec.clone(),
            deadline.clone(),
        ));
        Workload {
            rec,
            task,
            deadline,
            pki: pki.clone(),
            endpoints,
            opts: opts.clone(),
            started: Instant::now(),
        }
    }

    /// How many watch streams are open on each member now (index into the endpoints).
    pub fn open_streams(&self) -> Vec<usize> {
        let mut open = vec![0; self.endpoints.len()];
        let g = tasks::lock(&self.rec);
        for s in g.streams.iter().filter(|s| s.ended.is_none()) {
            open[s.member] += 1;
        }
        open
    }

    /// Ends the load now, before its duration ran out (the report's rates use the time it ran).
    pub fn stop(&mut self) {
        self.deadline.now();
        self.opts.duration = self.started.elapsed();
    }

    /// Waits for the tasks to end (and the watches to catch up), then checks what they recorded.
    pub async fn finish(self) -> Result<Report> {
        let recorded = self.task.await.context("the workload's task")??;
        let endpoints: Vec<&str> = self.endpoints.iter().map(String::as_str).collect();
        let client = tasks::retrying("connecting for the read-back", || {
            crate::grpc::connect_with(&self.pki, &endpoints, false)
        })
        .await?;
        check::check(client, recorded, &self.opts).await
    }
}
