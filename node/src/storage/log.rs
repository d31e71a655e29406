//! The Raft log store: entries in the write-ahead log ([`crate::storage::wal`]), written and fsynced
//! by the log writer thread ([`crate::storage::log_writer`]); the vote, identity and purge point in
//! redb (`raft.redb`, one fsynced transaction each; they change rarely, and a vote is durable before
//! `save_vote` returns, so no entry of a new term is written before its vote).
//!
//! **A leader's appends are reported flushed before they are.** `append` hands the entries to the
//! writer and tells openraft at once; the fsync follows on the writer thread (grouping the appends
//! queued meanwhile). openraft 0.9 replicates an entry only after its `append` is reported, so this
//! lets the leader's fsync overlap the followers', as etcd's leader does. A follower's appends (entries
//! of another member's leadership, small, while few of its clients wait and its disk is fast: see
//! [`INLINE_BYTES`]) are written and synced before `append` returns, on the core's thread: it may
//! answer only once they are durable, so the writer thread would only add its wake-ups to the round
//! trip every write waits for. Four rules keep every guarantee
//! that a flush before the report gave, the first three waiting on [`Durability`]:
//! - **A follower acknowledges only durable entries.** The peer service answers an AppendEntries
//!   only once everything appended so far is on disk (member/peer_service.rs), so a leader counts a
//!   follower only for entries that survive the follower's crash.
//! - **Nothing is applied before it is durable here.** The state machine waits for its entries to
//!   be on this member's disk (storage/state_machine.rs). A client is answered after the apply, so
//!   an acknowledged write is on the leader's disk and on a follower's: a majority of three. Reads
//!   wait for the apply too.
//! - **Followers learn of a commit only once the leader's copy is durable.** The leader counts its
//!   own entries before they are on its disk, so its commit index can run ahead of what a majority
//!   holds durably; the commit index it sends is capped at its durable end (raft/network.rs). No
//!   follower applies an entry that a crash of the leader could still take from the majority.
//! - **A restarted leader does not resume its term** (`read_vote`). A crash can take the last entries
//!   from its log while followers hold them; leading the same term again, it would write other entries
//!   under the same ids, and the followers would keep theirs as matching.
//!
//! If the writer fails (disk full, I/O error), nothing more is written, every waiter gets the error,
//! and the member exits (server/mod.rs), as it did when the failed fsync was the core's own.
//!
//! The committed log id is written along with the next append: like etcd, which writes its
//! HardState's commit index with the next entries and does not sync for a commit-only change (raft
//! `MustSync`). After a crash it may lag by the last advances, which openraft allows
//! (`save_committed` is optional): the entries are in the log and are applied once the leader's
//! commit index arrives. A member never resumes leading after a restart (`read_vote`), so no read
//! index comes from it.
//!
//! The newest entries are also kept decoded in memory ([`Recent`]): the leader reads each entry back
//! once per follower to replicate it and once more to apply it, and a follower once to apply it; these
//! reads are served without a file read and MessagePack decode. Entries not yet written are always
//! among them.
//!
//! openraft 0.9.25 appends one entry per client write, so batching happens above as well:
//! member/propose.rs puts the client commands that arrive together into one entry.

// openraft's storage traits fix the error type (StorageError, ~224 bytes); helpers share it.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use parking_lot::{Mutex, MutexGuard};
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::codec::{decode, encode};
use crate::raft::types::{NodeId, TypeConfig};
use crate::storage::data_dir::DataDir;
use crate::storage::log_writer::{Durability, Op, Writer, PENDING_BYTES};
use crate::storage::wal::{Wal, WalError};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
/// The member and cluster this data dir belongs to (written at first start; checked on every restart).
const KEY_IDENTITY: &str = "identity";

/// The identity recorded in the data dir at first start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredIdentity {
    pub cluster_id: u64,
    pub member_id: NodeId,
}

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// Bytes of commands one AppendEntries carries (at least one entry, whatever its size). openraft gives
/// each AppendEntries one heartbeat interval to be sent, written and fsynced by the follower; 32
/// entries of 1 MiB values never made it, so a learner joining after such writes was sent the same
/// timed-out message forever and never caught up. etcd's `MaxSizePerMsg` is 1 MiB, but etcd keeps up
/// to 256 messages in flight to a follower, and openraft 0.9 sends the next only when the last is
/// answered: a member catching up moved about 1 MiB per round trip (a follower write and fsync),
/// ~110 MB/s here. 4 MiB keeps a message well inside the heartbeat interval on a disk that syncs
/// 4 MiB in ~15 ms, and makes each round trip carry four times as much.
const MAX_APPEND_BYTES: usize = 4 << 20;
/// A follower writes appends up to this size on the core's thread ([`LogStore::following`]), when it
/// is [`quiet`] and its disk is fast ([`Writer::append_now`]). Larger ones mean many clients (or a
/// member catching up): they go to the writer thread, whose wake-ups cost little next to their write,
/// and the member's worker goes on serving clients while the fsync runs. 16 KiB: about 40 puts of
/// 256 bytes.
const INLINE_BYTES: usize = 16 << 10;
/// Client writes this member may be waiting on for an append to still be written in place.
const INLINE_PENDING: i64 = 1;

/// Whether this member's clients are waiting on at most [`INLINE_PENDING`] writes. With many, a
/// follower that stopped for each fsync held up their forwarding: the leader's batches shrank, and
/// smaller batches meant more appends written in place (128 clients: 0.45–1.28× the throughput of the
/// writer thread in ten runs, median 0.95×).
fn quiet() -> bool {
    crate::metrics::proposals_pending() <= INLINE_PENDING
}

/// Entries read from the log at a time while filling an AppendEntries, so a range of large entries is
/// not read whole only to be cut.
const READ_STEP: u64 = 16;

/// About how many bytes an entry takes on the wire.
fn entry_bytes(e: &Entry<TypeConfig>) -> usize {
    match &e.payload {
        openraft::EntryPayload::Normal(cmd) => cmd.approx_size(),
        _ => 64,
    }
}

/// Move entries of `step` into `out` while they fit in `budget` bytes with the `used` ones (the first
/// entry of a message goes whatever its size); true when one did not fit (the message is full).
fn fill(
    out: &mut Vec<Entry<TypeConfig>>,
    used: &mut usize,
    step: Vec<Entry<TypeConfig>>,
    budget: usize,
) -> bool {
    for e in step {
        let b = entry_bytes(&e);
        if !out.is_empty() && *used + b > budget {
            return true;
        }
        *used += b;
        out.push(e);
    }
    false
}

fn write_err(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

fn read_err(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

/// At most this many encoded bytes of recent entries stay decoded in memory (a few batches of the
/// largest size: replication and apply only ever read just behind the head of the log).
const RECENT_BYTES: usize = 4 << 20;

/// The newest log entries, decoded, contiguous by index, always ending at the log's last entry.
#[derive(Default)]
struct Recent {
    /// Entries with their encoded size.
    entries: VecDeque<(Entry<TypeConfig>, usize)>,
    bytes: usize,
}

impl Recent {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    /// Add a just-appended entry; a gap (e.g. after a snapshot install) restarts the window.
    fn push(&mut self, entry: Entry<TypeConfig>, size: usize) {
        if self
            .last_index()
            .is_some_and(|last| last + 1 != entry.log_id.index)
        {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.entries.push_back((entry, size));
        while self.bytes > RECENT_BYTES && self.entries.len() > 1 {
            if let Some((_, n)) = self.entries.pop_front() {
                self.bytes -= n;
            }
        }
    }

    /// Forget entries at and after `index` (log truncation).
    fn truncate_from(&mut self, index: u64) {
        while self.last_index().is_some_and(|last| last >= index) {
            if let Some((_, n)) = self.entries.pop_back() {
                self.bytes -= n;
            }
        }
    }

    /// Forget entries up to and including `index` (log purge).
    fn purge_upto(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            if let Some((_, n)) = self.entries.pop_front() {
                self.bytes -= n;
            }
        }
    }

    /// Whether the entry at `id`'s index is held here and has that id.
    fn holds(&self, id: &LogId<NodeId>) -> bool {
        let Some(first) = self.first_index() else {
            return false;
        };
        id.index
            .checked_sub(first)
            .and_then(|i| self.entries.get(i as usize))
            .is_some_and(|(e, _)| e.log_id == *id)
    }

    /// Entries `[start, end)` (`end` None: to the last), if every one of them is held here.
    fn get(&self, start: u64, end: Option<u64>) -> Option<Vec<Entry<TypeConfig>>> {
        let (first, last) = (self.first_index()?, self.last_index()?);
        let end = end.unwrap_or(last + 1);
        if start >= end {
            return Some(Vec::new());
        }
        if start < first || end > last + 1 {
            return None;
        }
        let range = (start - first) as usize..(end - first) as usize;
        Some(self.entries.range(range).map(|(e, _)| e.clone()).collect())
    }
}

/// The committed log id openraft reported last, and whether it still has to be written.
#[derive(Default)]
struct Committed {
    id: Option<LogId<NodeId>>,
    unwritten: bool,
}

/// Why the log store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The metadata database.
    #[error(transparent)]
    Db(#[from] redb::DatabaseError),
    /// The write-ahead log.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Reading the metadata (purge point) at open.
    #[error("{0}")]
    Storage(String),
}

/// The Raft log store (also its own reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    wal: Arc<Mutex<Wal>>,
    recent: Arc<Mutex<Recent>>,
    committed: Arc<Mutex<Committed>>,
    writer: Arc<Writer>,
    /// This member's ID once known (0 before): entries it did not create as leader are written on
    /// the caller's thread ([`Writer::append_now`]).
    member: Arc<AtomicU64>,
}

impl LogStore {
    /// Open (or create) the metadata database and the WAL of data dir `dir`.
    pub fn open(dir: &DataDir) -> Result<Self, OpenError> {
        let path = &dir.log_db();
        let db = Database::create(path)?;
        let wal_dir = dir.wal();
        let mut wal = Wal::open(&wal_dir)?;
        let db = Arc::new(db);
        let storage =
            |e: StorageError<NodeId>| OpenError::Storage(format!("{}: {e}", path.display()));
        let purged: Option<LogId<NodeId>> = get_meta_in(&db, KEY_PURGED).map_err(storage)?;
        if let Some(p) = purged {
            // A purge cut off by a crash after its point was recorded.
            wal.purge(p.index)?;
        }
        let wal = Arc::new(Mutex::new(wal));
        let writer = Writer::start(wal.clone(), purged)
            .map_err(|e| OpenError::Storage(format!("starting the log writer thread: {e}")))?;
        Ok(LogStore {
            db,
            wal,
            recent: Arc::default(),
            committed: Arc::default(),
            writer: Arc::new(writer),
            member: Arc::default(),
        })
    }

    /// Tell the store which member it belongs to (before Raft starts).
    pub fn set_member(&self, id: NodeId) {
        self.member.store(id, Ordering::Relaxed);
    }

    /// Whether `entries` came from another member's leadership: this member is following, and
    /// answers only once they are durable, so they are written at once rather than overlapped.
    fn following(&self, entries: &[Entry<TypeConfig>]) -> bool {
        let me = self.member.load(Ordering::Relaxed);
        me != 0 && entries.iter().all(|e| e.log_id.leader_id.node_id != me)
    }

    /// Whether the log ends at or after `id` with that very entry (appended, maybe not yet durable),
    /// as far as the recent entries kept in memory tell; false when they do not reach back to it.
    pub fn holds(&self, id: &LogId<NodeId>) -> bool {
        self.recent().holds(id)
    }

    /// How far the log is durable (see the module docs for who waits on it).
    pub fn durability(&self) -> Arc<Durability> {
        self.writer.durability.clone()
    }

    /// The sequence number of the last log operation handed to the writer: once
    /// [`Durability::until_seq`] passes it, everything appended so far is on disk.
    pub fn submitted(&self) -> u64 {
        self.writer.submitted()
    }

    fn wal(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock()
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock()
    }

    fn committed(&self) -> MutexGuard<'_, Committed> {
        self.committed.lock()
    }

    /// Read a metadata value.
    pub fn get_meta<T: DeserializeOwned>(&self, key: &str) -> StoreResult<Option<T>> {
        get_meta_in(&self.db, key)
    }

    /// Write a metadata value durably.
    pub fn put_meta<T: Serialize>(&self, key: &str, v: &T) -> StoreResult<()> {
        put_meta_in(&self.db, key, v)
    }

    /// The member/cluster identity recorded at first start.
    pub fn identity(&self) -> StoreResult<Option<StoredIdentity>> {
        self.get_meta(KEY_IDENTITY)
    }

    /// Record the identity (first start, or a joining member learning its cluster ID).
    pub fn set_identity(&self, id: &StoredIdentity) -> StoreResult<()> {
        self.put_meta(KEY_IDENTITY, id)
    }

    /// Run blocking storage I/O off the async runtime's worker.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(write_err)?
    }

    /// Queue a truncation, purge or barrier on the writer thread and wait until it is done.
    async fn on_writer(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Op,
    ) -> StoreResult<()> {
        self.writer.run(op).await.map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => Some(e.saturating_add(1)),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => None,
        };
        // `recent` always ends at the log's last entry, and entries not yet written are always in it
        // (the writer holds back at most PENDING_BYTES, less than RECENT_BYTES): what comes before
        // its first entry is read from the WAL.
        let (first, end) = {
            let recent = self.recent();
            let (Some(first), Some(last)) = (recent.first_index(), recent.last_index()) else {
                drop(recent);
                return self.wal().read(start, end).map_err(read_err);
            };
            let end = end.map_or(last + 1, |e| e.min(last + 1));
            if start >= first {
                return Ok(recent.get(start, Some(end)).unwrap_or_default());
            }
            (first, end)
        };
        let mut out = self
            .wal()
            .read(start, Some(end.min(first)))
            .map_err(read_err)?;
        if end > first && out.last().is_none_or(|l| l.log_id.index + 1 == first) {
            if let Some(rest) = self.recent().get(first, Some(end)) {
                out.extend(rest);
            }
        }
        Ok(out)
    }

    /// The entries replication sends in one AppendEntries: a prefix of `[start, end)` within
    /// [`MAX_APPEND_BYTES`], read [`READ_STEP`] entries at a time.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let (mut out, mut used, mut at) = (Vec::new(), 0, start);
        while at < end {
            let want = end.min(at.saturating_add(READ_STEP));
            let step = self.try_get_log_entries(at..want).await?;
            let whole = step.len() as u64 == want - at;
            if fill(&mut out, &mut used, step, MAX_APPEND_BYTES) || !whole {
                break;
            }
            at = want;
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        // Everything handed to the writer first, so the WAL shows the whole log.
        self.on_writer(|done| Op::Barrier { done }).await?;
        let last_purged: Option<LogId<NodeId>> = self.get_meta(KEY_PURGED)?;
        let last = self.wal().last_log_id().max(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let v = *vote;
        self.blocking(move |db| put_meta_in(db, KEY_VOTE, &v)).await
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        // Read back uncommitted: openraft 0.9 resumes leading the term of a committed vote for itself
        // at startup (`Engine::startup`), which the module docs' fourth rule forbids. Uncommitted, the
        // vote still binds this member to its choice in that term, and leading again takes an
        // election: a new term.
        let vote: Option<Vote<NodeId>> = self.get_meta(KEY_VOTE)?;
        Ok(vote.map(|mut v| {
            v.committed = false;
            v
        }))
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        // Written with the next append (see the module docs): a committed id lost to a crash only
        // means openraft re-learns it from the leader.
        let mut c = self.committed();
        if committed > c.id {
            c.id = committed;
            c.unwritten = true;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        if let Some(id) = self.committed().id {
            return Ok(Some(id));
        }
        if let Some(id) = self.wal().committed() {
            return Ok(Some(id));
        }
        Ok(self
            .get_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let bytes: usize = entries.iter().map(entry_bytes).sum();
        // Back-pressure: at most PENDING_BYTES wait for the writer (one larger batch goes alone).
        let permits = bytes.clamp(1, PENDING_BYTES) as u32;
        self.writer
            .room
            .acquire_many(permits)
            .await
            .map_err(write_err)?
            .forget();
        if let Some(why) = self.writer.durability.failed() {
            return Err(write_err(why));
        }
        let committed = {
            let mut c = self.committed();
            let id = c.id.filter(|_| c.unwritten);
            c.unwritten = false;
            id
        };
        {
            let mut recent = self.recent();
            for e in &entries {
                recent.push(e.clone(), entry_bytes(e));
            }
        }
        if bytes <= INLINE_BYTES && quiet() && self.following(&entries) {
            self.writer
                .append_now(entries, committed, permits)
                .map_err(write_err)?;
        } else {
            self.writer
                .submit(Op::Append {
                    entries,
                    committed,
                    permits,
                })
                .map_err(write_err)?;
        }
        // Reported flushed before the fsync (leader): see the module docs for why this is safe.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.recent().truncate_from(log_id.index);
        let index = log_id.index;
        self.on_writer(move |done| Op::Truncate { index, done })
            .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.recent().purge_upto(log_id.index);
        // The purge point first: after a crash in between, open() finishes the purge.
        self.blocking(move |db| put_meta_in(db, KEY_PURGED, &log_id))
            .await?;
        self.on_writer(move |done| Op::Purge { upto: log_id, done })
            .await
    }
}

/// Read one metadata value.
fn get_meta_in<T: DeserializeOwned>(db: &Database, key: &str) -> StoreResult<Option<T>> {
    let tx = db.begin_read().map_err(read_err)?;
    let table = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    match table.get(key).map_err(read_err)? {
        Some(v) => Ok(Some(decode(v.value()).map_err(read_err)?)),
        None => Ok(None),
    }
}

/// Write one metadata value in its own durable (fsynced) transaction.
fn put_meta_in<T: Serialize>(db: &Database, key: &str, v: &T) -> StoreResult<()> {
    let bytes = encode(v).map_err(write_err)?;
    let tx = db.begin_write().map_err(write_err)?;
    {
        let mut t = tx.open_table(META).map_err(write_err)?;
        t.insert(key, bytes.as_slice()).map_err(write_err)?;
    }
    tx.commit().map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[tokio::test]
    async fn a_committed_vote_reads_back_uncommitted_so_a_restarted_leader_must_be_elected_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = DataDir::new(dir.path());
        std::fs::create_dir_all(data_dir.member()).expect("member dir");
        let mut log = LogStore::open(&data_dir).expect("open");
        log.save_vote(&Vote::new_committed(6, 1))
            .await
            .expect("save");
        drop(log);
        let mut log = LogStore::open(&data_dir).expect("reopen");
        let vote = log.read_vote().await.expect("read");
        assert_eq!(
            vote,
            Some(Vote::new(6, 1)),
            "same term and choice, not committed"
        );
        log.save_vote(&Vote::new(7, 2)).await.expect("save");
        assert_eq!(log.read_vote().await.expect("read"), Some(Vote::new(7, 2)));
    }

    #[test]
    fn an_append_message_holds_a_prefix_within_the_byte_budget_and_never_nothing() {
        let put = |index: u64, bytes: usize| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::mvcc::Command::Put(vec![0; bytes])),
        };
        let mib = 1 << 20;
        // How many entries a message takes from `steps`, read one after the other, within 1 MiB.
        let fitting = |steps: Vec<Vec<Entry<TypeConfig>>>| {
            let (mut out, mut used) = (Vec::new(), 0);
            for step in steps {
                if fill(&mut out, &mut used, step, mib) {
                    break;
                }
            }
            out.len()
        };
        let big: Vec<_> = (1..=32).map(|i| put(i, 2 * mib)).collect();
        assert_eq!(
            fitting(vec![big]),
            1,
            "one entry over the budget still goes"
        );
        let small = |from: u64| (from..from + 16).map(|i| put(i, 1000)).collect::<Vec<_>>();
        assert_eq!(fitting(vec![small(1), small(17)]), 32, "across reads");
        let mixed = vec![put(1, 400_000), put(2, 400_000), put(3, 400_000), entry(4)];
        assert_eq!(fitting(vec![mixed]), 2);
        assert_eq!(fitting(vec![vec![]]), 0);
        assert!(MAX_APPEND_BYTES + 2 * mib <= crate::raft::frames::MAX_PEER_MESSAGE);
    }

    fn indexes(v: Option<Vec<Entry<TypeConfig>>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn recent_window_serves_only_what_it_holds_contiguously() {
        let mut r = Recent::default();
        for i in 5..=9 {
            r.push(entry(i), 10);
        }
        assert_eq!(indexes(r.get(6, Some(8))), Some(vec![6, 7]));
        assert_eq!(indexes(r.get(7, None)), Some(vec![7, 8, 9]));
        assert_eq!(
            indexes(r.get(4, Some(6))),
            None,
            "index 4 is only in the WAL"
        );
        assert_eq!(indexes(r.get(8, Some(11))), None, "past the end");
        r.truncate_from(8);
        assert_eq!(indexes(r.get(5, None)), Some(vec![5, 6, 7]));
        r.purge_upto(5);
        assert_eq!(indexes(r.get(5, None)), None);
        // A gap (snapshot installed, log continues further on) restarts the window.
        r.push(entry(20), 10);
        assert_eq!(indexes(r.get(6, None)), None);
        assert_eq!(indexes(r.get(20, None)), Some(vec![20]));
    }

    #[test]
    fn recent_window_holds_an_entry_only_with_the_same_leader_and_index() {
        let mut r = Recent::default();
        for i in 5..=7 {
            r.push(entry(i), 10);
        }
        let id = |term: u64, node: u64, index: u64| {
            LogId::new(CommittedLeaderId::new(term, node), index)
        };
        assert!(r.holds(&id(1, 1, 5)) && r.holds(&id(1, 1, 7)));
        assert!(!r.holds(&id(2, 1, 6)), "another term at that index");
        assert!(!r.holds(&id(1, 2, 6)), "another leader at that index");
        assert!(
            !r.holds(&id(1, 1, 4)),
            "before the window (in the WAL only)"
        );
        assert!(!r.holds(&id(1, 1, 8)), "not appended yet");
        r.truncate_from(7);
        assert!(!r.holds(&id(1, 1, 7)), "truncated");
        assert!(!Recent::default().holds(&id(1, 1, 1)));
    }

    #[test]
    fn recent_window_evicts_oldest_beyond_its_byte_bound() {
        let mut r = Recent::default();
        for i in 1..=5 {
            r.push(entry(i), RECENT_BYTES / 2);
        }
        assert_eq!(indexes(r.get(4, None)), Some(vec![4, 5]));
        assert_eq!(indexes(r.get(3, None)), None);
    }
}
