//! The watch hub: watchers registered on key ranges receive every event of their range in revision
//! order, starting with replayed history, with no gap and no duplicate.
//!
//! Like etcd's synced/unsynced watcher groups: apply hands each synced watcher its events with a
//! non-blocking send on a bounded channel. A watcher whose buffer is full (a slow client) is marked
//! lagging from that revision and skipped by apply from then on; its stream drains the buffer and
//! then catches up from the store's history under the write lock (the lock `apply` holds, so the
//! history ends exactly where live events resume). A new watcher with a past start revision starts
//! out lagging. So a slow watcher never delays apply and its memory stays bounded.

use std::collections::HashMap;
use std::sync::Arc;

use etcd_client::proto::PbEvent;
use tokio::sync::mpsc::{channel, Receiver, Sender};
use tokio::sync::Notify;

use super::{Command, KeyRange, Store};

/// Identifies a watcher inside the hub.
pub type WatchId = u64;

/// What a watcher watches.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
}

/// The events of one revision that match a watcher.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchBatch {
    pub revision: i64,
    pub events: Vec<PbEvent>,
}

/// The outcome of registering a watcher.
#[derive(Debug)]
pub enum WatchStart {
    /// Registered; history (if any) is fetched through [`Store::catch_up`] when `feed.lagging` fires.
    Watching(WatchId, WatchFeed),
    /// `start_revision` is older than the last compaction (carried here).
    Compacted(i64),
}

/// Watchers a compaction would cancel ([`Store::stranded_by`]); two values differ when one of them
/// drained its buffer or caught up meanwhile.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Behind {
    watchers: usize,
    room: usize,
}

/// How many revisions' batches a watcher may have queued before it is switched to catching up.
const WATCH_BUFFER: usize = 256;

/// The receiving side of one watcher.
#[derive(Debug)]
pub struct WatchFeed {
    /// Live batches, in revision order.
    pub rx: Receiver<WatchBatch>,
    /// Fires when the watcher stopped receiving live batches: drain `rx`, then call
    /// [`Store::catch_up`].
    pub lagging: Arc<Notify>,
}

/// The result of [`Store::catch_up`].
#[derive(Debug)]
pub enum CatchUp {
    /// The missed batches, in order; live delivery resumes after them.
    Batches(Vec<WatchBatch>),
    /// The missed revisions were compacted away (carries the compact revision); the watcher is gone.
    Compacted(i64),
    /// The history could not be read (the value file failed); the watcher is gone.
    Failed(super::MvccError),
}

struct Watcher {
    spec: WatchSpec,
    tx: Sender<WatchBatch>,
    lagging: Arc<Notify>,
    /// First revision not delivered live, while the watcher is catching up.
    behind_from: Option<i64>,
    /// The first revision this watcher has not been handed yet. A member behind the cluster
    /// (restarted, or a follower catching up) applies revisions below a start revision a client
    /// asked for, and those must not reach the watcher; and when a snapshot replaces the state, the
    /// watcher catches up from here through history (or is canceled if that was compacted).
    next: i64,
}

#[derive(Default)]
pub(super) struct Hub {
    next: WatchId,
    watchers: HashMap<WatchId, Watcher>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hub({} watchers)", self.watchers.len())
    }
}

impl WatchSpec {
    fn matches(&self, ev: &PbEvent) -> bool {
        let Some(kv) = &ev.kv else { return false };
        let wanted = if ev.r#type == 0 {
            !self.no_put
        } else {
            !self.no_delete
        };
        wanted && KeyRange::new(&self.key, &self.range_end).contains(&kv.key)
    }

    fn shape(&self, ev: &PbEvent) -> PbEvent {
        let mut ev = ev.clone();
        if !self.prev_kv {
            ev.prev_kv = None;
        }
        ev
    }
}

impl Hub {
    /// True when nobody watches: writes then build no events at all.
    pub(super) fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Deliver the events of revision `rev` without blocking; watchers whose receiver is gone are
    /// dropped, watchers whose buffer is full switch to catching up.
    pub(super) fn notify(&mut self, rev: i64, events: &[PbEvent]) {
        use tokio::sync::mpsc::error::TrySendError;
        self.watchers.retain(|_, w| {
            if w.behind_from.is_some() {
                return !w.tx.is_closed();
            }
            if rev < w.next {
                return !w.tx.is_closed();
            }
            w.next = rev + 1;
            let mine: Vec<PbEvent> = events
                .iter()
                .filter(|e| w.spec.matches(e))
                .map(|e| w.spec.shape(e))
                .collect();
            if mine.is_empty() {
                return true;
            }
            let batch = WatchBatch {
                revision: rev,
                events: mine,
            };
            match w.tx.try_send(batch) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    w.behind_from = Some(rev);
                    w.lagging.notify_one();
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }
}

impl Hub {
    /// The watchers a compaction to `rev` would cancel: those catching up from a revision below it
    /// (their streams still open), counted with their buffers' free room, which grows as they drain.
    fn behind(&self, rev: i64) -> Option<Behind> {
        let mut out = Behind::default();
        for w in self.watchers.values() {
            if w.behind_from.is_some_and(|from| from < rev) && !w.tx.is_closed() {
                out.watchers += 1;
                out.room += w.tx.capacity();
            }
        }
        (out.watchers > 0).then_some(out)
    }

    /// A snapshot replaced the state: every watcher catches up from the first revision it has not
    /// been handed, through history, like a lagging one (etcd moves its synced watchers to unsynced).
    pub(super) fn state_replaced(&mut self) {
        for w in self.watchers.values_mut() {
            if w.behind_from.is_none() {
                w.behind_from = Some(w.next);
                w.lagging.notify_one();
            }
        }
    }
}

impl Store {
    /// Register a watcher from `start_revision` (0 or a future revision: from the next change).
    pub fn watch(&mut self, spec: WatchSpec, start_revision: i64) -> WatchStart {
        let compacted = self.state.compact_revision;
        if start_revision > 0 && start_revision < compacted {
            return WatchStart::Compacted(compacted);
        }
        let (tx, rx) = channel(WATCH_BUFFER);
        let lagging = Arc::new(Notify::new());
        let behind_from =
            (start_revision > 0 && start_revision <= self.state.revision).then_some(start_revision);
        if behind_from.is_some() {
            lagging.notify_one();
        }
        let id = self.hub.next;
        self.hub.next += 1;
        let watcher = Watcher {
            spec,
            tx,
            lagging: lagging.clone(),
            behind_from,
            next: start_revision.max(self.state.revision + 1),
        };
        self.hub.watchers.insert(id, watcher);
        WatchStart::Watching(id, WatchFeed { rx, lagging })
    }

    /// The batches a lagging watcher missed, read from history; it receives live batches again
    /// afterwards. Call only after draining the watcher's receiver. Empty if it is not lagging.
    pub fn catch_up(&mut self, id: WatchId) -> CatchUp {
        let compacted = self.state.compact_revision;
        let Some(w) = self.hub.watchers.get_mut(&id) else {
            return CatchUp::Batches(Vec::new());
        };
        let Some(from) = w.behind_from.take() else {
            return CatchUp::Batches(Vec::new());
        };
        if from < compacted {
            self.hub.watchers.remove(&id);
            return CatchUp::Compacted(compacted);
        }
        match history(&self.state.keys, &w.spec, from) {
            Ok(batches) => {
                w.next = w.next.max(self.state.revision + 1);
                CatchUp::Batches(batches)
            }
            Err(e) => {
                self.hub.watchers.remove(&id);
                CatchUp::Failed(e)
            }
        }
    }

    /// The watchers `cmd` would cancel if it were applied now: `cmd` compacts (alone, in a batch, or
    /// on behalf of a user) to a revision some watcher still has to catch up from.
    ///
    /// A member applying many entries at once (catching up, or after a pause) holds the store's lock
    /// for all of them; a watcher that keeps up is then switched to catching up (its buffer fills
    /// while it cannot drain) and a compaction in the same run would cancel it, which etcd does only
    /// to a watcher that fell behind the compacted revision. The state machine lets such watchers
    /// catch up before it applies the compaction.
    pub fn stranded_by(&self, cmd: &Command) -> Option<Behind> {
        let rev = compacts_to(cmd)?;
        self.hub.behind(rev)
    }

    /// True when the watcher receives live events (it is not catching up from history).
    pub fn watcher_synced(&self, id: WatchId) -> bool {
        self.hub
            .watchers
            .get(&id)
            .is_some_and(|w| w.behind_from.is_none())
    }

    /// Remove a watcher (cancel, or its stream ended).
    pub fn unwatch(&mut self, id: WatchId) {
        self.hub.watchers.remove(&id);
    }

    /// Number of registered watchers (for metrics).
    pub fn watcher_count(&self) -> usize {
        self.hub.watchers.len()
    }
}

/// The highest revision `cmd` compacts to, if it compacts.
fn compacts_to(cmd: &Command) -> Option<i64> {
    match cmd.unwrapped().0 {
        Command::Compact(b) => {
            use prost::Message;
            etcd_client::proto::PbCompactionRequest::decode(b.as_slice())
                .ok()
                .map(|r| r.revision)
        }
        Command::Batch(cmds) => cmds.iter().filter_map(compacts_to).max(),
        _ => None,
    }
}

/// The events matching `spec` from revision `from` on, grouped by revision.
fn history(
    keys: &super::Keyspace,
    spec: &WatchSpec,
    from: i64,
) -> Result<Vec<WatchBatch>, super::MvccError> {
    let range = KeyRange::new(&spec.key, &spec.range_end);
    let mut out: Vec<WatchBatch> = Vec::new();
    for (k, v, prev) in keys.history_since(range, from) {
        let ev = PbEvent {
            r#type: i32::from(v.tombstone),
            kv: Some(if v.tombstone {
                etcd_client::proto::PbKeyValue {
                    key: k.to_vec(),
                    mod_revision: v.rev.main,
                    ..Default::default()
                }
            } else {
                keys.kv(k, v)?
            }),
            prev_kv: prev.map(|p| keys.kv(k, p)).transpose()?,
        };
        if !spec.matches(&ev) {
            continue;
        }
        let ev = spec.shape(&ev);
        match out.last_mut() {
            Some(b) if b.revision == v.rev.main => b.events.push(ev),
            _ => out.push(WatchBatch {
                revision: v.rev.main,
                events: vec![ev],
            }),
        }
    }
    Ok(out)
}
