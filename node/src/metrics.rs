//! Prometheus metrics under etcd's names, so existing etcd dashboards and alerts work. A tiny
//! text-format encoder: counters and histograms are atomics updated on hot paths; gauges are read from
//! the member's state when scraped.

pub mod grpc;

use std::fmt::Write;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A monotonically increasing count.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }
    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// etcd's disk latency buckets: 1 ms doubling to ~8 s.
const BUCKETS: usize = 14;

/// A latency histogram with etcd's disk buckets.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, c) in self.counts.iter().enumerate() {
            if secs <= bound(i) {
                c.fetch_add(1, Relaxed);
            }
        }
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, c) in self.counts.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {}",
                bound(i),
                c.load(Relaxed)
            );
        }
        let total = self.total.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

fn bound(i: usize) -> f64 {
    0.001 * f64::from(1u32 << i)
}

/// Raft log fsync latency (`etcd_disk_wal_fsync_duration_seconds`).
pub static WAL_FSYNC: Histogram = Histogram::new();
/// State machine commit latency (`etcd_disk_backend_commit_duration_seconds`).
pub static BACKEND_COMMIT: Histogram = Histogram::new();
/// Proposals that failed (`etcd_server_proposals_failed_total`).
pub static PROPOSALS_FAILED: Counter = Counter::new();
/// Leader changes this member has seen (`etcd_server_leader_changes_seen_total`).
pub static LEADER_CHANGES: Counter = Counter::new();
/// Bytes sent to peers (`etcd_network_peer_sent_bytes_total`).
pub static PEER_SENT_BYTES: Counter = Counter::new();
/// Bytes received from peers (`etcd_network_peer_received_bytes_total`).
pub static PEER_RECEIVED_BYTES: Counter = Counter::new();
/// Raft entries proposed by this member's batcher (`cairn_server_proposal_batches_total`).
pub static PROPOSAL_BATCHES: Counter = Counter::new();
/// Client commands those entries carried (`cairn_server_proposals_batched_total`; the ratio of the two
/// is the mean batch size).
pub static PROPOSAL_BATCHED: Counter = Counter::new();
static PROPOSALS_PENDING: AtomicI64 = AtomicI64::new(0);

/// Count a client proposal as pending while it runs, and as failed if it fails.
pub async fn track_proposal<T, E>(f: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    PROPOSALS_PENDING.fetch_add(1, Relaxed);
    let r = f.await;
    PROPOSALS_PENDING.fetch_sub(1, Relaxed);
    if r.is_err() {
        PROPOSALS_FAILED.add(1);
    }
    r
}

/// Client proposals this process is waiting on now (the log store reads it as the member's write load).
pub fn proposals_pending() -> i64 {
    PROPOSALS_PENDING.load(Relaxed)
}

fn gauge(out: &mut String, name: &str, help: &str, kind: &str, v: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
    );
}

/// The member's state at one moment, for the gauges (the counters above are kept here).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub member_id: u64,
    pub leader: Option<u64>,
    pub raft_index: u64,
    pub applied_index: u64,
    pub db_size: u64,
    pub keys: usize,
    pub watchers: usize,
}

/// The whole exposition, in Prometheus text format 0.0.4.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    gauge(
        o,
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        "gauge",
        u8::from(s.leader.is_some()),
    );
    gauge(
        o,
        "etcd_server_is_leader",
        "Whether or not this member is a leader.",
        "gauge",
        u8::from(s.leader == Some(s.member_id)),
    );
    gauge(
        o,
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
        "counter",
        LEADER_CHANGES.get(),
    );
    gauge(
        o,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        "gauge",
        s.raft_index,
    );
    gauge(
        o,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        "gauge",
        s.applied_index,
    );
    gauge(
        o,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        "gauge",
        PROPOSALS_PENDING.load(Relaxed),
    );
    gauge(
        o,
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
        "counter",
        PROPOSALS_FAILED.get(),
    );
    gauge(
        o,
        "cairn_server_proposal_batches_total",
        "Raft entries this member proposed for client commands (one per batch).",
        "counter",
        PROPOSAL_BATCHES.get(),
    );
    gauge(
        o,
        "cairn_server_proposals_batched_total",
        "Client commands carried by those entries.",
        "counter",
        PROPOSAL_BATCHED.get(),
    );
    let _ = writeln!(o, "# HELP etcd_server_id Member ID of this server.\n# TYPE etcd_server_id gauge\netcd_server_id{{server_id=\"{:x}\"}} 1", s.member_id);
    gauge(
        o,
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        "gauge",
        s.db_size,
    );
    gauge(
        o,
        "etcd_debugging_mvcc_keys_total",
        "Total number of keys.",
        "gauge",
        s.keys,
    );
    gauge(
        o,
        "etcd_debugging_mvcc_watcher_total",
        "Total number of watchers.",
        "gauge",
        s.watchers,
    );
    gauge(
        o,
        "etcd_network_peer_sent_bytes_total",
        "The total number of bytes sent to peers.",
        "counter",
        PEER_SENT_BYTES.get(),
    );
    gauge(
        o,
        "etcd_network_peer_received_bytes_total",
        "The total number of bytes received from peers.",
        "counter",
        PEER_RECEIVED_BYTES.get(),
    );
    WAL_FSYNC.render(
        o,
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
    );
    BACKEND_COMMIT.render(
        o,
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
    );
    grpc::render(o);
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            o,
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            fds.count(),
        );
    }
    if let Some(rss) = resident_bytes() {
        gauge(
            o,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            rss,
        );
    }
    out
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
