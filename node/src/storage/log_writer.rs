//! The log writer: one thread that writes the WAL and fdatasyncs it, in the order the operations were
//! submitted, and publishes how far the log is durable ([`Durability`]).
//!
//! Why a thread of its own: openraft 0.9's core awaits each `append` before it replicates the entries,
//! so a leader that flushed before returning wrote its own log first and only then sent the entries
//! to the followers: two fsyncs one after the other on every write. The log store now hands the
//! entries to this thread and returns at once, so the leader's fsync and the followers' overlap, as in
//! etcd, where the leader writes its WAL in parallel with sending (Raft thesis §10.2.1). Appends that
//! queue up while one is being written go out in the next write and fsync together. A follower's small
//! appends skip the thread when it is idle ([`Writer::append_now`]): nothing overlaps their fsync.
//!
//! What keeps this safe is in storage/log.rs (module docs): nothing that depends on an entry being on
//! disk here (a follower's acknowledgement, applying it, telling followers it is committed) happens
//! before [`Durability`] says so.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use openraft::{Entry, LogId};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::raft::types::{NodeId, TypeConfig};
use crate::storage::wal::Wal;

/// Bytes of entries handed to the writer and not yet durable before `append` waits. Kept under the
/// log store's in-memory window of recent entries, so that every entry not yet in the WAL can still be
/// read from memory.
pub const PENDING_BYTES: usize = 2 << 20;

/// A WAL write and fdatasync slower than this (µs) sends the next appends to the writer thread, not
/// in place: on such a disk the two thread wake-ups saved are lost in the sync, and the member's worker
/// would stop serving its clients' reads for the whole of it. Once the thread writes fast again, appends
/// go in place again.
const SLOW_WRITE_US: u64 = 1000;

/// How far the log is durable, as the writer last published it.
#[derive(Debug, Clone, Default)]
pub struct Flushed {
    /// Operations done (written and synced), counted from 1 in submission order.
    pub seq: u64,
    /// The last entry on disk (or the purge point, if the WAL holds nothing newer).
    pub last: Option<LogId<NodeId>>,
    /// The write that failed; nothing is written after it.
    pub failed: Option<String>,
}

/// How far the log is durable; waits for it to get further.
pub struct Durability {
    state: watch::Sender<Flushed>,
    /// The failure alone: [`Durability::failure`]'s waiter (the member's main loop) is woken by it
    /// only, not at every fsync as a subscriber of `state` is.
    failure: watch::Sender<Option<String>>,
    /// How long the last WAL write and fdatasync took, in microseconds.
    last_write_us: AtomicU64,
}

impl Durability {
    fn new(last: Option<LogId<NodeId>>) -> Durability {
        Durability {
            state: watch::Sender::new(Flushed {
                seq: 0,
                last,
                failed: None,
            }),
            failure: watch::Sender::new(None),
            last_write_us: AtomicU64::new(0),
        }
    }

    /// Note how long a WAL write and fdatasync took (the metric, and [`Writer::append_now`]'s check).
    fn wrote(&self, took: std::time::Duration) {
        crate::metrics::WAL_FSYNC.observe(took);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.last_write_us.store(us, Ordering::Relaxed);
    }

    /// The last durable log id.
    pub fn last(&self) -> Option<LogId<NodeId>> {
        self.state.borrow().last
    }

    /// The failure that stopped the writer, if any.
    pub fn failed(&self) -> Option<String> {
        self.state.borrow().failed.clone()
    }

    async fn until(&self, done: impl Fn(&Flushed) -> bool) -> Result<(), String> {
        let mut rx = self.state.subscribe();
        let seen = rx
            .wait_for(|f| f.failed.is_some() || done(f))
            .await
            .map_err(|_| "the log writer has stopped".to_string())?;
        match &seen.failed {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Wait until the entry at `index` (and everything before it) is durable.
    pub async fn until_index(&self, index: u64) -> Result<(), String> {
        self.until(|f| f.last.is_some_and(|l| l.index >= index))
            .await
    }

    /// Wait until the operations submitted up to `seq` are durable.
    pub async fn until_seq(&self, seq: u64) -> Result<(), String> {
        self.until(|f| f.seq >= seq).await
    }

    /// Publish that the operations up to `seq` are done and the log is durable up to `last`, or
    /// that a write failed (the first failure is kept).
    fn publish(&self, seq: u64, last: Option<LogId<NodeId>>, failed: &Option<String>) {
        self.state.send_modify(|f| {
            f.seq = seq;
            f.last = last;
            if f.failed.is_none() {
                f.failed = failed.clone();
            }
        });
        if let Some(why) = failed {
            self.failure.send_if_modified(|f| {
                let first = f.is_none();
                if first {
                    *f = Some(why.clone());
                }
                first
            });
        }
    }

    /// Resolves with the reason once a write has failed.
    pub async fn failure(&self) -> String {
        let mut rx = self.failure.subscribe();
        let why = match rx.wait_for(|f| f.is_some()).await {
            Ok(f) => f.clone().unwrap_or_default(),
            Err(_) => "the log writer has stopped".into(),
        };
        why
    }
}

/// What a caller is told when its operation is done.
type Done = oneshot::Sender<Result<(), String>>;

/// One operation on the WAL.
pub enum Op {
    /// Append entries (and the committed id, if it moved); `permits` go back to [`Writer::room`].
    Append {
        entries: Vec<Entry<TypeConfig>>,
        committed: Option<LogId<NodeId>>,
        permits: u32,
    },
    /// Remove entries at and after `index`.
    Truncate { index: u64, done: Done },
    /// Forget entries up to `upto` (its purge point is already recorded).
    Purge { upto: LogId<NodeId>, done: Done },
    /// Nothing: done once everything submitted before it is.
    Barrier { done: Done },
}

/// The submitting side of the writer thread.
pub struct Writer {
    /// The channel, with the sequence number of the last operation sent on it (one lock: numbers
    /// follow the channel's order).
    tx: Mutex<(u64, mpsc::Sender<(u64, Op)>)>,
    /// That sequence number, readable without waiting for an inline write holding `tx`.
    submitted: AtomicU64,
    /// The WAL, for appends written on the caller's thread ([`Writer::append_now`]).
    wal: Arc<Mutex<Wal>>,
    /// Bytes of appends that may wait to be written ([`PENDING_BYTES`]).
    pub room: Arc<Semaphore>,
    /// How far the log is durable.
    pub durability: Arc<Durability>,
}

impl Writer {
    /// Start the writer thread over `wal`, durable as it is, whose purge point is `purged`.
    pub fn start(wal: Arc<Mutex<Wal>>, purged: Option<LogId<NodeId>>) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let last = wal.lock().last_log_id().max(purged);
        let durability = Arc::new(Durability::new(last));
        let room = Arc::new(Semaphore::new(PENDING_BYTES));
        let thread = Thread {
            wal: wal.clone(),
            purged,
            durability: durability.clone(),
            room: room.clone(),
        };
        std::thread::Builder::new()
            .name("cairn-wal".into())
            .spawn(move || thread.run(rx))?;
        Ok(Writer {
            tx: Mutex::new((0, tx)),
            submitted: AtomicU64::new(0),
            wal,
            room,
            durability,
        })
    }

    /// Queue `op`; returns its sequence number (for [`Durability::until_seq`]).
    pub fn submit(&self, op: Op) -> Result<u64, String> {
        self.queue(&mut self.tx.lock(), op)
    }

    /// Send `op` to the thread under the `tx` lock held, numbered next.
    fn queue(&self, tx: &mut (u64, mpsc::Sender<(u64, Op)>), op: Op) -> Result<u64, String> {
        let seq = tx.0 + 1;
        tx.1.send((seq, op))
            .map_err(|_| "the log writer has stopped".to_string())?;
        self.numbered(tx, seq);
        Ok(seq)
    }

    /// Record `seq` as the last operation submitted.
    fn numbered(&self, tx: &mut (u64, mpsc::Sender<(u64, Op)>), seq: u64) {
        tx.0 = seq;
        self.submitted.store(seq, Ordering::Release);
    }

    /// Append on the calling thread: written and synced when this returns, if the writer thread has
    /// nothing queued and the last write was not slow ([`SLOW_WRITE_US`]); otherwise queued, as
    /// [`Writer::submit`] does (behind what is queued, to keep the order).
    ///
    /// For a follower: it answers an AppendEntries only once the entries are durable, and openraft
    /// 0.9 sends it one AppendEntries at a time, so nothing would overlap this fsync; handing it to
    /// the writer thread only added two thread wake-ups (the writer's, then the runtime's) to every
    /// round trip a write waits for.
    pub fn append_now(
        &self,
        entries: Vec<Entry<TypeConfig>>,
        committed: Option<LogId<NodeId>>,
        permits: u32,
    ) -> Result<u64, String> {
        let mut tx = self.tx.lock();
        let busy = self.durability.state.borrow().seq != tx.0;
        let slow = self.durability.last_write_us.load(Ordering::Relaxed) > SLOW_WRITE_US;
        if busy || slow {
            let op = Op::Append {
                entries,
                committed,
                permits,
            };
            return self.queue(&mut tx, op);
        }
        // Nothing queued and `tx` held: no operation can come between.
        let seq = tx.0 + 1;
        let mut failed = self.durability.failed();
        let last = {
            let mut wal = self.wal.lock();
            write_appends(&mut wal, &self.durability, &entries, committed, &mut failed);
            wal.last_log_id()
        };
        self.room.add_permits(permits as usize);
        let last = last.max(self.durability.last());
        self.durability.publish(seq, last, &failed);
        self.numbered(&mut tx, seq);
        match failed {
            Some(why) => Err(why),
            None => Ok(seq),
        }
    }

    /// The sequence number of the last operation submitted.
    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// Queue `op` (made with the `done` channel given) and wait until it is done.
    pub async fn run(&self, op: impl FnOnce(Done) -> Op) -> Result<(), String> {
        let (done, rx) = oneshot::channel();
        self.submit(op(done))?;
        rx.await
            .map_err(|_| "the log writer has stopped".to_string())?
    }
}

/// The writer thread's state.
struct Thread {
    wal: Arc<Mutex<Wal>>,
    /// The last purge point, which stands for the durable end once the WAL holds nothing newer.
    purged: Option<LogId<NodeId>>,
    durability: Arc<Durability>,
    room: Arc<Semaphore>,
}

impl Thread {
    fn run(mut self, rx: mpsc::Receiver<(u64, Op)>) {
        while let Ok(first) = rx.recv() {
            let mut ops = vec![first];
            while let Ok(next) = rx.try_recv() {
                ops.push(next);
            }
            self.write(ops);
        }
    }

    /// Do `ops` in order, merging consecutive appends into one write and fsync, then publish.
    fn write(&mut self, ops: Vec<(u64, Op)>) {
        let mut last_seq = 0;
        let mut permits = 0u32;
        let mut dones = Vec::new();
        let mut entries = Vec::new();
        let mut committed = None;
        let mut failed = self.durability.failed();
        for (seq, op) in ops {
            last_seq = seq;
            match op {
                Op::Append {
                    entries: mut e,
                    committed: c,
                    permits: p,
                } => {
                    permits += p;
                    entries.append(&mut e);
                    committed = c.or(committed);
                }
                other => {
                    self.flush(&mut entries, &mut committed, &mut failed);
                    let ok = failed.is_none();
                    let (res, done) = match other {
                        Op::Truncate { index, done } if ok => {
                            (self.wal.lock().truncate(index), done)
                        }
                        Op::Purge { upto, done } if ok => {
                            self.purged = Some(upto);
                            (self.wal.lock().purge(upto.index), done)
                        }
                        Op::Truncate { done, .. }
                        | Op::Purge { done, .. }
                        | Op::Barrier { done } => (Ok(()), done),
                        Op::Append { .. } => continue,
                    };
                    if let Err(e) = res {
                        tracing::error!("writing the Raft log: {e}");
                        failed = Some(e.to_string());
                    }
                    dones.push(done);
                }
            }
        }
        self.flush(&mut entries, &mut committed, &mut failed);
        let last = self.wal.lock().last_log_id().max(self.purged);
        // Room first: whoever sees the new durability may count on it.
        self.room.add_permits(permits as usize);
        self.durability.publish(last_seq, last, &failed);
        for done in dones {
            let _ = done.send(match &failed {
                Some(why) => Err(why.clone()),
                None => Ok(()),
            });
        }
    }

    /// Write the appends gathered so far (nothing once a write has failed: the WAL is then in an
    /// unknown state).
    fn flush(
        &mut self,
        entries: &mut Vec<Entry<TypeConfig>>,
        committed: &mut Option<LogId<NodeId>>,
        failed: &mut Option<String>,
    ) {
        if entries.is_empty() && committed.is_none() {
            return;
        }
        write_appends(
            &mut self.wal.lock(),
            &self.durability,
            entries,
            *committed,
            failed,
        );
        entries.clear();
        *committed = None;
    }
}

/// Write and sync `entries` (nothing once a write has failed: the WAL is then in an unknown state),
/// noting the time it took and a failure.
fn write_appends(
    wal: &mut Wal,
    durability: &Durability,
    entries: &[Entry<TypeConfig>],
    committed: Option<LogId<NodeId>>,
    failed: &mut Option<String>,
) {
    let started = std::time::Instant::now();
    if failed.is_none() {
        if let Err(e) = wal.append(entries, committed) {
            tracing::error!("writing the Raft log: {e}");
            *failed = Some(e.to_string());
        }
    }
    durability.wrote(started.elapsed());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Command;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Command::Put(vec![index as u8; 100])),
        }
    }

    /// (term, index) of every entry in the WAL.
    fn written(wal: &Mutex<Wal>) -> Vec<(u64, u64)> {
        wal.lock()
            .read(0, None)
            .expect("read")
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    /// `append_now` of `e` while the test holds the WAL: it must queue, not write in place (which
    /// would wait for the lock forever: reported as a failure, not a hung test).
    fn queued(w: &Arc<Writer>, e: Entry<TypeConfig>) -> u64 {
        let (tx, rx) = std::sync::mpsc::channel();
        let w = w.clone();
        std::thread::spawn(move || tx.send(w.append_now(vec![e], None, 0)));
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("append_now wrote in place instead of queueing")
            .expect("queued")
    }

    fn append(w: &Writer, entries: Vec<Entry<TypeConfig>>) -> u64 {
        w.submit(Op::Append {
            entries,
            committed: None,
            permits: 0,
        })
        .expect("submit")
    }

    #[tokio::test]
    async fn operations_are_written_in_order_and_durability_follows_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Arc::new(Mutex::new(Wal::open(dir.path()).expect("open")));
        let w = Writer::start(wal.clone(), None).expect("start");
        assert_eq!(w.durability.last(), None);
        append(&w, (1..=3).map(|i| entry(1, i)).collect());
        w.run(|done| Op::Truncate { index: 3, done })
            .await
            .expect("truncate");
        assert_eq!(w.durability.last().map(|l| l.index), Some(2));
        let seq = append(&w, vec![entry(2, 3), entry(2, 4)]);
        assert_eq!(w.submitted(), seq);
        w.durability.until_seq(seq).await.expect("written");
        assert_eq!(written(&wal), vec![(1, 1), (1, 2), (2, 3), (2, 4)]);
        assert_eq!(w.durability.last().map(|l| l.index), Some(4));
        // A purge of everything leaves the purge point as the durable end.
        let upto = LogId::new(CommittedLeaderId::new(2, 1), 4);
        w.run(|done| Op::Purge { upto, done }).await.expect("purge");
        assert_eq!(w.durability.last(), Some(upto));
        assert_eq!(w.durability.failed(), None);
    }

    #[tokio::test]
    async fn append_now_writes_at_once_when_idle_and_queues_behind_a_busy_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Arc::new(Mutex::new(Wal::open(dir.path()).expect("open")));
        let w = Arc::new(Writer::start(wal.clone(), None).expect("start"));
        // Idle: durable when it returns, on this thread.
        let seq = w.append_now(vec![entry(1, 1)], None, 0).expect("inline");
        assert_eq!(w.submitted(), seq);
        assert_eq!(w.durability.state.borrow().seq, seq);
        assert_eq!(w.durability.last().map(|l| l.index), Some(1));
        // Busy (the thread is held up on the WAL): queued behind what it is writing, not ahead.
        let held = wal.lock();
        let first = append(&w, vec![entry(1, 2)]);
        let second = queued(&w, entry(1, 3));
        assert_eq!(second, first + 1);
        assert_eq!(w.durability.last().map(|l| l.index), Some(1));
        drop(held);
        w.durability.until_seq(second).await.expect("written");
        assert_eq!(written(&wal), vec![(1, 1), (1, 2), (1, 3)]);
        // After a slow write: queued for the thread, which writes it (and notes its time).
        w.durability
            .last_write_us
            .store(SLOW_WRITE_US + 1, Ordering::Relaxed);
        let held = wal.lock();
        let seq = queued(&w, entry(1, 4));
        assert_eq!(w.durability.last().map(|l| l.index), Some(3));
        drop(held);
        w.durability.until_seq(seq).await.expect("written");
        assert_eq!(written(&wal).last(), Some(&(1, 4)));
    }

    #[tokio::test]
    async fn appends_return_their_room_once_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Arc::new(Mutex::new(Wal::open(dir.path()).expect("open")));
        let w = Writer::start(wal, None).expect("start");
        w.room.acquire_many(1000).await.expect("room").forget();
        assert_eq!(w.room.available_permits(), PENDING_BYTES - 1000);
        let seq = w
            .submit(Op::Append {
                entries: vec![entry(1, 1)],
                committed: None,
                permits: 1000,
            })
            .expect("submit");
        w.durability.until_seq(seq).await.expect("written");
        assert_eq!(w.room.available_permits(), PENDING_BYTES);
    }
}
