//! The Raft log store: entries in the write-ahead log ([`crate::storage::wal`], one `write` and one
//! `fdatasync` per append), the vote, identity and purge point in redb (`raft.redb`, one fsynced
//! transaction each; they change rarely). Every append, truncation, purge and vote save is durable
//! BEFORE openraft is told it is done: an acknowledged write survives kill -9 and power loss.
//!
//! The committed log id is the exception: like etcd, which writes its HardState's commit index along
//! with the next entries and does not sync for a commit-only change (raft `MustSync`), it is kept in
//! memory and written with the next append. After a crash it may lag by the last advances, which
//! openraft allows (`save_committed` is optional): the entries are in the log and are applied once
//! the leader's commit index arrives. Reads do not trust it: a leader that resumes its term after a
//! restart holds its read index at the log's end (app/read_index.rs).
//!
//! The newest entries are also kept decoded in memory ([`Recent`]): the leader reads each entry back
//! once per follower to replicate it and once more to apply it, and a follower once to apply it; these
//! reads are served without a file read and MessagePack decode.
//!
//! Note (openraft 0.9.25): `RaftCore::append_to_log` awaits the flush callback before the core goes on,
//! and `write_entry` appends one entry per client write, so the leader issues exactly one `append` per
//! put and never has two in flight; group commit inside this store cannot merge anything. Batching
//! therefore happens above: member/propose.rs puts the client commands that arrive together into one
//! entry.

// openraft's storage traits fix the error type (StorageError, ~224 bytes); helpers share it.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use parking_lot::{Mutex, MutexGuard};
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, encode};
use crate::raft::types::{NodeId, TypeConfig};
use crate::storage::data_dir::DataDir;
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

/// Bytes of commands one AppendEntries carries (at least one entry, whatever its size), etcd's
/// `MaxSizePerMsg`. openraft gives each AppendEntries one heartbeat interval to be sent, written and
/// fsynced by the follower; 32 entries of 1 MiB values never made it, so a learner joining after
/// such writes was sent the same timed-out message forever and never caught up.
const MAX_APPEND_BYTES: usize = 1 << 20;

/// About how many bytes an entry takes on the wire.
fn entry_bytes(e: &Entry<TypeConfig>) -> usize {
    match &e.payload {
        openraft::EntryPayload::Normal(cmd) => cmd.approx_size(),
        _ => 64,
    }
}

/// How many of `entries` (at least one) fit in `budget` bytes.
fn fitting(entries: &[Entry<TypeConfig>], budget: usize) -> usize {
    let mut bytes = 0;
    let over = entries.iter().position(|e| {
        bytes += entry_bytes(e);
        bytes > budget
    });
    over.map_or(entries.len(), |i| i.max(1))
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
}

impl LogStore {
    /// Open (or create) the metadata database and the WAL of data dir `dir`.
    pub fn open(dir: &DataDir) -> Result<Self, OpenError> {
        let path = &dir.log_db();
        let db = Database::create(path)?;
        let wal_dir = dir.wal();
        let wal = Wal::open(&wal_dir)?;
        let store = LogStore {
            db: Arc::new(db),
            wal: Arc::new(Mutex::new(wal)),
            recent: Arc::default(),
            committed: Arc::default(),
        };
        let storage =
            |e: StorageError<NodeId>| OpenError::Storage(format!("{}: {e}", path.display()));
        let purged: Option<LogId<NodeId>> = store.get_meta(KEY_PURGED).map_err(storage)?;
        let mut wal = store.wal();
        if let Some(p) = purged {
            // A purge cut off by a crash after its point was recorded.
            wal.purge(p.index)?;
        }
        drop(wal);
        Ok(store)
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
        let tx = self.db.begin_read().map_err(read_err)?;
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

    /// Run a WAL operation (a write and an fdatasync) off the async runtime's worker.
    async fn with_wal<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Wal) -> Result<T, WalError> + Send + 'static,
    ) -> StoreResult<T> {
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || f(&mut wal.lock()))
            .await
            .map_err(write_err)?
            .map_err(write_err)
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
        if let Some(hit) = self.recent().get(start, end) {
            return Ok(hit);
        }
        self.wal().read(start, end).map_err(read_err)
    }

    /// The entries replication sends in one AppendEntries: a prefix of `[start, end)` within
    /// [`MAX_APPEND_BYTES`].
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let mut entries = self.try_get_log_entries(start..end).await?;
        let keep = fitting(&entries, MAX_APPEND_BYTES);
        entries.truncate(keep);
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
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
        self.get_meta(KEY_VOTE)
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
        let committed = {
            let mut c = self.committed();
            let id = c.id.filter(|_| c.unwritten);
            c.unwritten = false;
            id
        };
        let started = std::time::Instant::now();
        // One write and one fdatasync for the whole batch, done before the callback.
        let res = self
            .with_wal(move |wal| wal.append(&entries, committed).map(|()| entries))
            .await;
        crate::metrics::WAL_FSYNC.observe(started.elapsed());
        match res {
            Ok(entries) => {
                let mut recent = self.recent();
                for e in entries {
                    let size = entry_bytes(&e);
                    recent.push(e, size);
                }
                drop(recent);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.recent().truncate_from(log_id.index);
        self.with_wal(move |wal| wal.truncate(log_id.index)).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.recent().purge_upto(log_id.index);
        // The purge point first: after a crash in between, open() finishes the purge.
        self.blocking(move |db| put_meta_in(db, KEY_PURGED, &log_id))
            .await?;
        self.with_wal(move |wal| wal.purge(log_id.index)).await
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

    #[test]
    fn an_append_message_holds_a_prefix_within_the_byte_budget_and_never_nothing() {
        let put = |index: u64, bytes: usize| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::mvcc::Command::Put(vec![0; bytes])),
        };
        let mib = 1 << 20;
        let big: Vec<_> = (1..=32).map(|i| put(i, mib)).collect();
        assert_eq!(
            fitting(&big, MAX_APPEND_BYTES),
            1,
            "one entry over the budget still goes"
        );
        let small: Vec<_> = (1..=32).map(|i| put(i, 1000)).collect();
        assert_eq!(fitting(&small, MAX_APPEND_BYTES), 32);
        let mixed = vec![put(1, 400_000), put(2, 400_000), put(3, 400_000), entry(4)];
        assert_eq!(fitting(&mixed, MAX_APPEND_BYTES), 2);
        assert_eq!(fitting(&[], MAX_APPEND_BYTES), 0);
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
    fn recent_window_evicts_oldest_beyond_its_byte_bound() {
        let mut r = Recent::default();
        for i in 1..=5 {
            r.push(entry(i), RECENT_BYTES / 2);
        }
        assert_eq!(indexes(r.get(4, None)), Some(vec![4, 5]));
        assert_eq!(indexes(r.get(3, None)), None);
    }
}
