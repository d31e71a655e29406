//! What a run records: every client operation (invoke, outcome, times), every watch session with the
//! events it received, the faults injected, and the members' final state. The checkers read only this,
//! so a saved history (`history.json`) can be checked again later with `cairn-chaos check DIR`.

use serde::{Deserialize, Serialize};

/// Microseconds since the run started.
pub type Micros = u64;

/// Format of `history.json`; a file of another version is refused, not migrated.
pub const FORMAT: u32 = 1;

/// A key's value as a read or a watch event shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    /// The value (unique per write in these workloads).
    pub value: String,
    /// Revision of the write that made this value.
    pub mod_rev: i64,
    /// Revision at which the key was created (since its last deletion).
    pub create_rev: i64,
    /// Lease attached (0: none).
    pub lease: i64,
}

/// One request a client made. Every transaction touches one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Req {
    /// Linearizable Range of one key.
    Get { key: String },
    /// Linearizable Range of one key at an old revision.
    GetAt { key: String, rev: i64 },
    /// Put (lease 0: none).
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    /// DeleteRange of one key.
    Delete { key: String },
    /// Txn: if mod_revision(key) == `rev` then put `value` else get key. `seen` is the value the client
    /// read with that mod revision (`None`: the key was absent, `rev` 0), which is how the
    /// linearizability checker tells states apart without revisions.
    CasRev {
        key: String,
        rev: i64,
        seen: Option<String>,
        value: String,
    },
    /// Txn: if value(key) == `expect` then put `value` else get key.
    CasValue {
        key: String,
        expect: String,
        value: String,
    },
    /// LeaseGrant.
    Grant { ttl: i64 },
    /// LeaseRevoke: deletes every key whose value carries the lease.
    Revoke { lease: i64 },
    /// Compact to `rev`.
    Compact { rev: i64 },
}

impl Req {
    /// The one key this request reads or writes (none for leases and compaction).
    pub fn key(&self) -> Option<&str> {
        match self {
            Req::Get { key }
            | Req::GetAt { key, .. }
            | Req::Put { key, .. }
            | Req::Delete { key }
            | Req::CasRev { key, .. }
            | Req::CasValue { key, .. } => Some(key),
            Req::Grant { .. } | Req::Revoke { .. } | Req::Compact { .. } => None,
        }
    }

    /// Whether the request may change the keyspace (an error leaves it maybe-applied).
    pub fn is_write(&self) -> bool {
        !matches!(self, Req::Get { .. } | Req::GetAt { .. })
    }

    /// The value this request may write.
    pub fn written_value(&self) -> Option<&str> {
        match self {
            Req::Put { value, .. } | Req::CasRev { value, .. } | Req::CasValue { value, .. } => {
                Some(value)
            }
            _ => None,
        }
    }
}

/// A successful answer; `rev` is the response header's revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resp {
    /// Get / GetAt.
    Read { rev: i64, kv: Option<Kv> },
    /// Put, Revoke, Compact.
    Done { rev: i64 },
    /// DeleteRange.
    Deleted { rev: i64, deleted: i64 },
    /// Txn: `kv` is the else branch's read when the compare failed.
    Txn {
        rev: i64,
        succeeded: bool,
        kv: Option<Kv>,
    },
    /// LeaseGrant.
    Granted { rev: i64, lease: i64 },
}

impl Resp {
    /// The response header's revision.
    pub fn rev(&self) -> i64 {
        match self {
            Resp::Read { rev, .. }
            | Resp::Done { rev }
            | Resp::Deleted { rev, .. }
            | Resp::Txn { rev, .. }
            | Resp::Granted { rev, .. } => *rev,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Answered.
    Ok(Resp),
    /// Refused with an error etcd only gives for a request that did not apply (invalid argument,
    /// compacted or future revision, lease not found), or a failed read (a read has no effect).
    Fail(String),
    /// Timed out or failed in transport, or an error that does not say whether it applied: a write may
    /// have happened at any time after its invocation.
    Unknown(String),
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique within the run.
    pub id: u64,
    /// Which client (workload clients count from 0; the harness's own writes use [`HARNESS_CLIENT`]).
    pub client: u32,
    /// Member it was sent to.
    pub member: usize,
    /// What was asked.
    pub req: Req,
    /// When it was sent.
    pub invoke: Micros,
    /// When the answer (or the error, or the timeout) came.
    pub complete: Micros,
    /// How it ended.
    pub outcome: Outcome,
}

/// Client ID of the harness's own operations (fence writes, final reads, compactions).
pub const HARNESS_CLIENT: u32 = 1000;

impl Op {
    /// The response when the operation succeeded.
    pub fn ok(&self) -> Option<&Resp> {
        match &self.outcome {
            Outcome::Ok(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the outcome leaves it open whether the operation took effect.
    pub fn is_unknown(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown(_))
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        let outcome = match &self.outcome {
            Outcome::Ok(r) => format!("{r:?}"),
            Outcome::Fail(e) => format!("failed: {e}"),
            Outcome::Unknown(e) => format!("unknown: {e}"),
        };
        format!(
            "op {} (client {}, member {}) {:?} [{:.3}s..{:.3}s] -> {}",
            self.id,
            self.client,
            self.member,
            self.req,
            self.invoke as f64 / 1e6,
            self.complete as f64 / 1e6,
            outcome
        )
    }
}

/// What a watch session asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchRange {
    /// Every key.
    All,
    /// One key.
    Key(String),
}

impl WatchRange {
    /// Whether events on `key` belong to this watch.
    pub fn contains(&self, key: &str) -> bool {
        match self {
            WatchRange::All => true,
            WatchRange::Key(k) => k == key,
        }
    }
}

/// One event as a watcher received it (`kv` none: a delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// When it arrived.
    pub at: Micros,
    /// Its revision (the kv's mod revision; for a delete, the revision of the delete).
    pub rev: i64,
    /// The key.
    pub key: String,
    /// The new value, or `None` for a delete.
    pub kv: Option<Kv>,
    /// Which response of its session carried it (etcd never splits a revision across responses).
    pub batch: u32,
}

/// How a watch session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchEnd {
    /// The server canceled the watch (`compact_rev` > 0: the start revision was compacted).
    Canceled { compact_rev: i64, reason: String },
    /// The stream failed (member killed, partitioned, timed out).
    Error(String),
    /// The server ended the stream without canceling the watch.
    Closed,
    /// The harness stopped it (to reconnect elsewhere, or at the end of the run).
    Stopped,
}

/// One watch stream from creation to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSession {
    /// Which watcher (a watcher reconnects as a new session).
    pub watcher: u32,
    /// Whether this watcher is a recorder (all keys from revision 1, resumed from last + 1 for the
    /// whole run: the ground truth of the keyspace's history).
    pub recorder: bool,
    /// Member it watched through.
    pub member: usize,
    /// Keys.
    pub range: WatchRange,
    /// Requested start revision.
    pub start_rev: i64,
    /// Whether this session resumed the previous one of its watcher at its last revision + 1.
    pub resumed: bool,
    /// When the create request was sent.
    pub invoke: Micros,
    /// When the created response arrived, if it did.
    pub created: Option<Micros>,
    /// Events in arrival order.
    pub events: Vec<WatchEvent>,
    /// How it ended.
    pub end: WatchEnd,
    /// When it ended.
    pub end_at: Micros,
}

/// A fault the nemesis injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Kind (`kill-leader`, `partition-isolate-leader`, ...).
    pub kind: String,
    /// Members it hit.
    pub targets: Vec<String>,
    /// When it started.
    pub start: Micros,
    /// When it was healed.
    pub end: Micros,
    /// What happened (restarts, refusals, the repair).
    pub note: String,
}

/// One member's state after the run, with every fault healed and writes stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberFinal {
    /// Member name.
    pub name: String,
    /// Status: store revision.
    pub revision: i64,
    /// Status: raft index.
    pub raft_index: u64,
    /// HashKV at [`Final::revision`] (`None`: the member did not reach it).
    pub hash: Option<u32>,
    /// HashKV's compact revision.
    pub hash_compact_rev: i64,
    /// Every key at [`Final::revision`], read serializably from this member.
    pub kvs: Vec<(String, Kv)>,
}

/// The convergence check's observations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Final {
    /// The revision every member was asked to reach.
    pub revision: i64,
    /// Per member.
    pub members: Vec<MemberFinal>,
    /// Members that did not reach [`Final::revision`] in time (with their last revision).
    pub not_converged: Vec<String>,
}

/// Everything one run recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// [`FORMAT`].
    pub format: u32,
    /// `cairn` or `etcd`.
    pub server: String,
    /// The seed of this run's schedule.
    pub seed: u64,
    /// Client operations.
    pub ops: Vec<Op>,
    /// Watch sessions.
    pub watches: Vec<WatchSession>,
    /// Faults.
    pub faults: Vec<FaultRecord>,
    /// Members that refused to start after injected WAL corruption (the expected outcome).
    pub detected: Vec<String>,
    /// Members that exited or refused to start although no corruption was injected into them.
    pub refusals: Vec<String>,
    /// The convergence check (`None`: the run ended without a quorum, e.g. corruption in two members
    /// detected).
    pub final_state: Option<Final>,
}

impl History {
    /// An empty history for a run.
    pub fn new(server: &str, seed: u64) -> History {
        History {
            format: FORMAT,
            server: server.to_string(),
            seed,
            ops: Vec::new(),
            watches: Vec::new(),
            faults: Vec::new(),
            detected: Vec::new(),
            refusals: Vec::new(),
            final_state: None,
        }
    }
}
