//! The Raft log and vote on redb. Every append, truncate, purge and vote save is one write transaction
//! committed with `Durability::Immediate` (fsync) BEFORE openraft is told it is done: an acknowledged
//! write survives kill -9 and power loss.
//!
//! The committed log id is the exception: saved with `Durability::None`, like etcd, which does not sync
//! its WAL for a commit-index-only change (raft `MustSync`). redb makes it durable with the next append's
//! commit; after a crash it may lag by the last advance, which openraft allows (`save_committed` is
//! optional): the entries are in the log and are applied once the leader's commit index arrives.
//! This drops one fsync per commit advance (on followers: one per AppendEntries batch, half their fsyncs).
//!
//! Note (openraft 0.9.25): `RaftCore::append_to_log` awaits the flush callback before the core goes on, and
//! `write_entry` appends one entry per client write, so the leader issues exactly one `append` per put and
//! never has two in flight; group commit inside this store cannot merge anything. Batching therefore
//! happens above: app/propose.rs puts the client commands that arrive together into one entry.

// openraft's storage traits fix the error type (StorageError, ~224 bytes); helpers share it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::raft::types::{NodeId, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
/// The member and cluster this data dir belongs to (written at first start; checked on every restart).
const KEY_IDENTITY: &str = "identity";

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// Serialize with field names (MessagePack maps): openraft types use serde attributes that positional
/// formats mishandle.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(v)
}

/// Inverse of [`encode`].
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(b)
}

fn write_err(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

fn read_err(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

/// The Raft log store (also its own reader: redb read transactions are cheap snapshots).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    /// Open (or create) the log database at `path`.
    pub fn open(path: &Path) -> Result<Self, redb::DatabaseError> {
        let db = Database::create(path)?;
        Ok(LogStore { db: Arc::new(db) })
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
    pub fn identity(
        &self,
    ) -> StoreResult<Option<crate::bootstrap::static_cluster::StoredIdentity>> {
        self.get_meta(KEY_IDENTITY)
    }

    /// Record the identity (first start, or a joining member learning its cluster ID).
    pub fn set_identity(
        &self,
        id: &crate::bootstrap::static_cluster::StoredIdentity,
    ) -> StoreResult<()> {
        self.put_meta(KEY_IDENTITY, id)
    }

    fn read_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = match tx.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(read_err(e)),
        };
        let mut out = Vec::new();
        for row in table.range::<u64>((start, end)).map_err(read_err)? {
            let (_, v) = row.map_err(read_err)?;
            out.push(decode(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> StoreResult<Option<LogId<NodeId>>> {
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = match tx.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        let last = table.last().map_err(read_err)?;
        let id = match last {
            Some((_, v)) => Some(
                decode::<Entry<TypeConfig>>(v.value())
                    .map_err(read_err)?
                    .log_id,
            ),
            None => None,
        };
        Ok(id)
    }

    /// Run a blocking redb write off the async runtime's worker.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(write_err)?
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        self.read_range(range.start_bound().cloned(), range.end_bound().cloned())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let last_purged: Option<LogId<NodeId>> = self.get_meta(KEY_PURGED)?;
        let last = self.last_entry_id()?.or(last_purged);
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
        // Not fsynced (see the module docs): it becomes durable with the next append, and a committed
        // id lost to a crash only means openraft re-learns it from the leader.
        self.blocking(move |db| put_meta_with(db, KEY_COMMITTED, &committed, Durability::None))
            .await
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(self
            .get_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        for e in entries {
            rows.push((e.log_id.index, encode(&e).map_err(write_err)?));
        }
        let started = std::time::Instant::now();
        // One transaction for the whole batch; commit() with Immediate durability returns after fsync.
        let res = self
            .blocking(move |db| {
                let tx = db.begin_write().map_err(write_err)?;
                {
                    let mut t = tx.open_table(LOG).map_err(write_err)?;
                    for (i, b) in &rows {
                        t.insert(*i, b.as_slice()).map_err(write_err)?;
                    }
                }
                tx.commit().map_err(write_err)
            })
            .await;
        crate::metrics::WAL_FSYNC.observe(started.elapsed());
        match res {
            Ok(()) => {
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
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(write_err)?;
            {
                let mut t = tx.open_table(LOG).map_err(write_err)?;
                t.retain_in(log_id.index.., |_, _| false)
                    .map_err(write_err)?;
            }
            tx.commit().map_err(write_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(write_err)?;
            {
                let mut m = tx.open_table(META).map_err(write_err)?;
                let b = encode(&log_id).map_err(write_err)?;
                m.insert(KEY_PURGED, b.as_slice()).map_err(write_err)?;
                let mut t = tx.open_table(LOG).map_err(write_err)?;
                t.retain_in(..=log_id.index, |_, _| false)
                    .map_err(write_err)?;
            }
            tx.commit().map_err(write_err)
        })
        .await
    }
}

fn put_meta_in<T: Serialize>(db: &Database, key: &str, v: &T) -> StoreResult<()> {
    put_meta_with(db, key, v, Durability::Immediate)
}

fn put_meta_with<T: Serialize>(
    db: &Database,
    key: &str,
    v: &T,
    durability: Durability,
) -> StoreResult<()> {
    let bytes = encode(v).map_err(write_err)?;
    let mut tx = db.begin_write().map_err(write_err)?;
    tx.set_durability(durability).map_err(write_err)?;
    {
        let mut t = tx.open_table(META).map_err(write_err)?;
        t.insert(key, bytes.as_slice()).map_err(write_err)?;
    }
    tx.commit().map_err(write_err)
}
