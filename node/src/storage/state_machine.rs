//! The Raft state machine: applies committed commands to the shared mvcc store in log order, keeps the
//! last-applied log id and membership with it, and builds / installs snapshots. The key index lives
//! in memory; values live in the snapshot file and the store's value file (a cache). Durability comes
//! from the Raft log plus the snapshot file: a restart opens the snapshot (reading its key index, not
//! its values) and openraft re-applies the committed log after it. Snapshots travel as that file, or,
//! when much log was applied since it, as the current state encoded while it is sent.

// openraft's storage traits fix the error type (StorageError, ~224 bytes); helpers share it.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::RwLock;
use tokio::sync::Notify;

use crate::blocking::off_worker_if;
use crate::mvcc::{Behind, Capture, Command, CommandResponse};
use crate::mvcc::{SharedStore, Store};
use crate::raft::types::{NodeId, PeerNode, TypeConfig};
use crate::storage::log_writer::Durability;
use crate::storage::snapshot::{MemberAttrs, Opened, SnapshotDir};

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn sm_err(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

/// State the API side reads while the state machine writes it.
#[derive(Debug, Default)]
pub struct Shared {
    /// The replicated key-value store.
    pub store: SharedStore,
    /// Names and client URLs members published (`Command::PublishMember`).
    pub members: RwLock<BTreeMap<NodeId, MemberAttrs>>,
    /// The index of the last log entry applied, for reads and forwarded writes that wait on an index.
    pub applied_index: AppliedIndex,
    /// Bytes of commands applied since the last snapshot captured the state (or was installed).
    applied_bytes: AtomicU64,
    /// Snapshots captured or installed so far.
    snapshots: AtomicU64,
    /// Bytes of values in the last snapshot captured or installed.
    snapshot_values: AtomicU64,
    /// Set once openraft has started: from then on a snapshot asked for is one to send.
    raft_started: AtomicBool,
}

impl Shared {
    /// Bytes of commands applied since the last snapshot (what a restart would replay).
    pub fn applied_since_snapshot(&self) -> u64 {
        self.applied_bytes.load(Ordering::Relaxed)
    }

    /// Snapshots captured or installed so far (changes when [`Shared::applied_since_snapshot`]
    /// restarts from zero).
    pub fn snapshots(&self) -> u64 {
        self.snapshots.load(Ordering::Relaxed)
    }

    /// Bytes of values in the last snapshot captured or installed: more than the store's live
    /// values once a compaction made part of them garbage, which only a new snapshot gives back.
    pub fn snapshot_values(&self) -> u64 {
        self.snapshot_values.load(Ordering::Relaxed)
    }

    /// openraft has started (`Raft::new` returned): its start, which re-applies the committed log
    /// and then reads the saved snapshot's metadata, is over.
    pub fn raft_started(&self) {
        self.raft_started.store(true, Ordering::Release);
    }

    fn snapshot_taken(&self, values: u64) {
        self.applied_bytes.store(0, Ordering::Relaxed);
        self.snapshot_values.store(values, Ordering::Relaxed);
        self.snapshots.fetch_add(1, Ordering::Relaxed);
    }
}

/// The state machine's last applied log index, published after every apply so that waiters wake
/// only when it moves (openraft's metrics watch wakes a waiter on every change of any metric, and
/// clones the whole metrics struct for each check).
#[derive(Debug, Default)]
pub struct AppliedIndex {
    index: AtomicU64,
    moved: Notify,
}

impl AppliedIndex {
    /// The last applied index (0: nothing applied yet).
    pub fn get(&self) -> u64 {
        self.index.load(Ordering::Acquire)
    }

    /// Record that everything up to `index` is applied and wake the waiters.
    pub fn publish(&self, index: u64) {
        self.index.store(index, Ordering::Release);
        self.moved.notify_waiters();
    }

    /// Return once the applied index is at least `index`.
    pub async fn wait_at_least(&self, index: u64) {
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            // Registered before the check: a publish between the check and the await still wakes
            // this waiter (`notify_waiters` only reaches registered futures).
            moved.as_mut().enable();
            if self.get() >= index {
                return;
            }
            moved.await;
        }
    }
}

/// How long an apply waits at most for watchers a compaction would cancel (see
/// `Store::stranded_by`), and how long for any of them to make progress.
const WATCHERS_AT_MOST: Duration = Duration::from_secs(1);
const WATCHERS_STILL: Duration = Duration::from_millis(100);

/// openraft's state machine over the mvcc store.
pub struct StateMachine {
    shared: Arc<Shared>,
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, PeerNode>,
    dir: SnapshotDir,
    /// The file openraft's InstallSnapshot chunks are being written to (cairn's peers stream whole
    /// snapshots instead: member/snapshot_receive.rs).
    receiving: Option<PathBuf>,
    counter: Arc<AtomicU64>,
    /// How far this member's log is durable: entries are applied only once they are on disk.
    log: Option<Arc<Durability>>,
}

impl StateMachine {
    /// Apply `entries[from..]` under one store lock (readers wait at most one apply), stopping before
    /// an entry whose compaction would cancel watchers (`Store::stranded_by`) unless it is the one at
    /// `waited` (they had their time): returns its position and those watchers then.
    fn apply_run(
        &mut self,
        entries: &[Entry<TypeConfig>],
        from: usize,
        waited: Option<usize>,
        out: &mut Vec<CommandResponse>,
        bytes: &mut u64,
    ) -> StoreResult<Option<(usize, Behind)>> {
        let mut store = self.shared.store.write();
        for (at, e) in entries.iter().enumerate().skip(from) {
            if let EntryPayload::Normal(cmd) = &e.payload {
                if waited != Some(at) {
                    if let Some(behind) = store.stranded_by(cmd) {
                        return Ok(Some((at, behind)));
                    }
                }
            }
            self.applied = Some(e.log_id);
            let resp = match &e.payload {
                EntryPayload::Normal(cmd) => {
                    if matches!(cmd, Command::PublishMember { .. } | Command::Batch(_)) {
                        self.publish_members(cmd)?;
                    }
                    *bytes += cmd.approx_size() as u64;
                    store.apply(cmd)
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m.clone());
                    CommandResponse::default()
                }
                EntryPayload::Blank => CommandResponse::default(),
            };
            out.push(resp);
        }
        if let Some(f) = store.failure() {
            // Stops this member (openraft treats a state machine error as fatal) before any reply.
            return Err(sm_err(format!("the value file failed: {f}")));
        }
        Ok(None)
    }

    /// Give the watchers that applying `cmd` (a compaction) would cancel time to catch up from the
    /// history it removes: at most [`WATCHERS_AT_MOST`], and only while one of them makes progress
    /// (a client that stopped reading is canceled after [`WATCHERS_STILL`], as etcd would).
    async fn let_watchers_catch_up(&self, cmd: &Command, mut behind: Behind) {
        let started = Instant::now();
        let mut moved = started;
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = self.shared.store.read().stranded_by(cmd);
            match now {
                None => break,
                Some(b) if b != behind => {
                    behind = b;
                    moved = Instant::now();
                }
                Some(_) => {}
            }
            if started.elapsed() >= WATCHERS_AT_MOST || moved.elapsed() >= WATCHERS_STILL {
                tracing::info!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "a compaction cancels watchers still catching up from the revisions it removes"
                );
                return;
            }
        }
        tracing::debug!(
            waited_ms = started.elapsed().as_millis() as u64,
            "watchers caught up before a compaction"
        );
    }

    /// Open the state machine, loading the latest snapshot from `dir` if there is one; the store's
    /// value file is made in `values_dir`.
    pub fn open(dir: SnapshotDir, values_dir: std::path::PathBuf) -> Result<Self, String> {
        let shared = Arc::new(Shared {
            store: Arc::new(RwLock::new(Store::in_dir(values_dir))),
            members: RwLock::default(),
            applied_index: AppliedIndex::default(),
            applied_bytes: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            snapshot_values: AtomicU64::new(0),
            raft_started: AtomicBool::new(false),
        });
        let mut sm = StateMachine {
            shared,
            applied: None,
            membership: StoredMembership::default(),
            dir,
            receiving: None,
            counter: Arc::new(AtomicU64::new(0)),
            log: None,
        };
        if let Some(snap) = sm.dir.open().map_err(|e| e.to_string())? {
            let started = std::time::Instant::now();
            sm.restore(snap).map_err(|e| e.to_string())?;
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "opened the snapshot"
            );
        }
        Ok(sm)
    }

    /// Apply entries only once `log` says they are durable (a member's own state machine; tools
    /// that only read a data dir need not).
    pub fn after_log(mut self, log: Arc<Durability>) -> Self {
        self.log = Some(log);
        self
    }

    /// The state shared with the API.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    fn restore(&mut self, snap: Opened) -> StoreResult<()> {
        let Opened { file, path, header } = snap;
        {
            let mut store = self.shared.store.write();
            store
                .restore_from(Arc::new(file), &path, &header.store)
                .map_err(snap_err)?;
            store.set_alarms(header.alarms.into_iter().collect());
        }
        *self.shared.members.write() = header.members;
        self.shared.snapshot_taken(header.store.values_len);
        let meta = header.meta;
        self.applied = meta.last_log_id;
        if let Some(l) = meta.last_log_id {
            self.shared.applied_index.publish(l.index);
        }
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    /// Record what `PublishMember` commands (possibly inside a batch) announce.
    fn publish_members(&self, cmd: &Command) -> StoreResult<()> {
        match cmd {
            Command::PublishMember {
                id,
                name,
                client_urls,
            } => {
                let attrs = MemberAttrs {
                    name: name.clone(),
                    client_urls: client_urls.clone(),
                };
                self.shared.members.write().insert(*id, attrs);
            }
            Command::Batch(cmds) => {
                for c in cmds {
                    self.publish_members(c)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a snapshot holds besides openraft's metadata, captured when the builder was made.
struct Captured {
    store: Capture,
    members: BTreeMap<NodeId, MemberAttrs>,
    alarms: Vec<(u64, i32)>,
}

/// Builds a snapshot from state captured when the builder was made (applies go on meanwhile: the
/// values are read while the file is written, without the store's lock).
pub struct Builder {
    meta: SnapshotMeta<NodeId, PeerNode>,
    /// The captured state (taken by `build_snapshot`).
    data: Option<Captured>,
    dir: SnapshotDir,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let data = self
            .data
            .take()
            .ok_or_else(|| snap_err("snapshot already built"))?;
        let (dir, meta) = (self.dir.clone(), self.meta.clone());
        let file = crate::writeback::in_background("snapshot-write", move || {
            dir.save(&meta, data.members, data.alarms, &data.store)
        })
        .await
        .map_err(snap_err)?
        .map_err(snap_err)?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerNode>)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<CommandResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        if let (Some(log), Some(last)) = (&self.log, entries.last()) {
            // Never ahead of this member's own log on disk (storage/log.rs module docs).
            log.until_index(last.log_id.index)
                .await
                .map_err(|why| sm_err(format!("the Raft log could not be written: {why}")))?;
        }
        let mut out = Vec::with_capacity(entries.len());
        let mut bytes = 0u64;
        let (mut next, mut waited) = (0, None);
        // Entries that may take long (a compaction, a delete over many keys) are applied without
        // holding up this member's other tasks, its Raft traffic above all (crate::blocking).
        let long = entries.iter().any(|e| match &e.payload {
            EntryPayload::Normal(cmd) => cmd.may_take_long(),
            _ => false,
        });
        while let Some((at, behind)) = off_worker_if(long, || {
            self.apply_run(&entries, next, waited, &mut out, &mut bytes)
        })? {
            if let EntryPayload::Normal(cmd) = &entries[at].payload {
                self.let_watchers_catch_up(cmd, behind).await;
            }
            (next, waited) = (at, Some(at));
        }
        self.shared
            .applied_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if let Some(l) = self.applied {
            self.shared.applied_index.publish(l.index);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        let (meta, data) = self.capture(true);
        Builder {
            meta,
            data: Some(data),
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<tokio::fs::File>> {
        let dir = self.dir.clone();
        let (file, path) = tokio::task::spawn_blocking(move || dir.receiving())
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        // A transfer that was replaced by this one will not be installed.
        if let Some(old) = self.receiving.replace(path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> StoreResult<()> {
        let mut file = *snapshot;
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(snap_err)?;
        let file = file.into_std().await;
        let path = match self.dir.received_path(&file) {
            Some(p) => p,
            None => self
                .receiving
                .take()
                .ok_or_else(|| snap_err("a snapshot was installed that was not being received"))?,
        };
        let (dir, m) = (self.dir.clone(), meta.clone());
        let started = std::time::Instant::now();
        let opened = tokio::task::spawn_blocking(move || dir.install(&path, file, &m))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        let synced = started.elapsed();
        self.restore(opened)?;
        // etcd's line, so an operator (and the system test) sees that a member caught up by snapshot.
        let index = meta.last_log_id.map(|l| l.index).unwrap_or_default();
        tracing::info!(
            sync_ms = synced.as_millis() as u64,
            open_ms = (started.elapsed() - synced).as_millis() as u64,
            "finished applying incoming snapshot at index {index}"
        );
        Ok(())
    }

    /// What replication sends to a member too far behind: the saved snapshot, or the state as it is
    /// now, streamed, when the log applied since the saved one is worth more than its replay
    /// ([`worth_streaming`]).
    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        // At its start openraft re-applies the committed log and then asks for the snapshot: it must
        // get the saved one, whose metadata it keeps as this member's snapshot (the log is purged
        // behind it). A scale run's restarted member streamed here at start before this check.
        let since = self.shared.applied_since_snapshot();
        let saved = self.shared.snapshot_values();
        if self.shared.raft_started.load(Ordering::Acquire) && worth_streaming(since, saved) {
            let (meta, data) = self.capture(false);
            tracing::info!(
                log_since_saved_mib = since >> 20,
                saved_values_mib = saved >> 20,
                "sending the current state rather than the saved snapshot and the log after it"
            );
            let file = self
                .dir
                .stream(meta.clone(), data.members, data.alarms, data.store)
                .map_err(snap_err)?;
            return Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(tokio::fs::File::from_std(file)),
            }));
        }
        let dir = self.dir.clone();
        let current = tokio::task::spawn_blocking(move || dir.open())
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        Ok(current.map(|o| Snapshot {
            meta: o.header.meta,
            snapshot: Box::new(tokio::fs::File::from_std(o.file)),
        }))
    }
}

/// Whether a member that needs a snapshot gets the current state streamed rather than the saved
/// snapshot: once the commands applied since the saved one (`since` bytes) reach an eighth of its
/// values (`saved` bytes). The receiver would replay that log after the saved snapshot (a 1 GiB
/// scale run's learner replayed ~700 MB in 3.7 s after a 4 s transfer, where etcd's learner, sent the
/// database as it is, replays almost nothing); the price is a capture on the leader (the store's lock
/// for up to ~0.4 s at a million keys), worth it only for more than a little log.
fn worth_streaming(since: u64, saved: u64) -> bool {
    since > 0 && since >= saved / 8
}

impl StateMachine {
    /// The state as it is now, for a snapshot; `saving` when it becomes the saved snapshot (what a
    /// restart replays from then on starts here).
    fn capture(&mut self, saving: bool) -> (SnapshotMeta<NodeId, PeerNode>, Captured) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let data = {
            let (s, m) = (self.shared.store.read(), self.shared.members.read());
            // Applies wait for this lock. The snapshot's values are the kept versions'
            // (Capture::write_to).
            if saving {
                self.shared.snapshot_taken(s.live_value_bytes());
            }
            Captured {
                store: s.capture(),
                members: m.clone(),
                alarms: s.alarm_set().iter().copied().collect(),
            }
        };
        // Applies wait for the capture: how long is worth seeing.
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "captured the state for a snapshot"
        );
        let id = match self.applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, n),
            None => format!("0-0-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: id,
        };
        (meta, data)
    }
}

#[cfg(test)]
mod tests {
    use super::{worth_streaming, AppliedIndex};

    #[test]
    fn the_current_state_is_sent_once_the_log_since_the_saved_snapshot_is_an_eighth_of_it() {
        let mib = 1u64 << 20;
        assert!(
            !worth_streaming(0, 0),
            "nothing applied since: the saved one"
        );
        assert!(worth_streaming(1, 0), "no values saved: any log");
        assert!(!worth_streaming(100 * mib, 1024 * mib));
        assert!(worth_streaming(128 * mib, 1024 * mib));
        // The 1 GiB run's learner: ~700 MB of log after a 1.07 GB snapshot.
        assert!(worth_streaming(700 * mib, 1020 * mib));
    }

    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiter_on_the_applied_index_wakes_when_it_is_reached_and_not_before() {
        let applied = Arc::new(AppliedIndex::default());
        let waiter = tokio::spawn({
            let applied = applied.clone();
            async move { applied.wait_at_least(5).await }
        });
        tokio::task::yield_now().await;
        applied.publish(3);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "woke at index 3 while waiting for 5");
        applied.publish(7);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("publishing 7 did not wake the waiter for 5")
            .expect("waiter task");
        // Already reached: returns without a publish.
        tokio::time::timeout(Duration::from_secs(5), applied.wait_at_least(7))
            .await
            .expect("an index already applied must not wait");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_publish_is_lost_between_the_check_and_the_wait() {
        // Publisher and waiters race on two threads; a lost wake-up leaves a waiter stuck.
        let applied = Arc::new(AppliedIndex::default());
        for i in 1..=2000u64 {
            let waiter = tokio::spawn({
                let applied = applied.clone();
                async move { applied.wait_at_least(i).await }
            });
            applied.publish(i);
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .unwrap_or_else(|_| panic!("waiter for {i} missed its publish"))
                .expect("waiter task");
        }
    }
}
