//! The watch hub: watchers registered on key ranges receive every event of their range in revision
//! order, starting with replayed history, with no gap and no duplicate.
//!
//! Registration and replay happen under the store's write lock, the same lock `apply` holds, so a
//! watcher's history ends exactly where live events begin. Delivery is a non-blocking send on an
//! unbounded channel: a slow watcher costs memory, never apply latency.

use std::collections::HashMap;

use etcd_client::proto::PbEvent;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::{KeyRange, Store};

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
#[derive(Debug, Clone)]
pub struct WatchBatch {
    pub revision: i64,
    pub events: Vec<PbEvent>,
}

/// The outcome of registering a watcher.
#[derive(Debug)]
pub enum WatchStart {
    /// Registered; history (if any) is already queued on the receiver.
    Watching(WatchId, UnboundedReceiver<WatchBatch>),
    /// `start_revision` is older than the last compaction (carried here).
    Compacted(i64),
}

struct Watcher {
    spec: WatchSpec,
    tx: UnboundedSender<WatchBatch>,
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
    /// Deliver the events of revision `rev`; watchers whose receiver is gone are dropped.
    pub(super) fn notify(&mut self, rev: i64, events: &[PbEvent]) {
        self.watchers.retain(|_, w| {
            let mine: Vec<PbEvent> = events
                .iter()
                .filter(|e| w.spec.matches(e))
                .map(|e| w.spec.shape(e))
                .collect();
            mine.is_empty()
                || w.tx
                    .send(WatchBatch {
                        revision: rev,
                        events: mine,
                    })
                    .is_ok()
        });
    }
}

impl Store {
    /// Register a watcher from `start_revision` (0 or a future revision: from the next change).
    pub fn watch(&mut self, spec: WatchSpec, start_revision: i64) -> WatchStart {
        let compacted = self.state.compact_revision;
        if start_revision > 0 && start_revision < compacted {
            return WatchStart::Compacted(compacted);
        }
        let (tx, rx) = unbounded_channel();
        if start_revision > 0 && start_revision <= self.state.revision {
            let range = KeyRange::new(&spec.key, &spec.range_end);
            let mut batch: Option<WatchBatch> = None;
            for (k, v, prev) in self.state.keys.history_since(range, start_revision) {
                let ev = PbEvent {
                    r#type: i32::from(v.tombstone),
                    kv: Some(if v.tombstone {
                        etcd_client::proto::PbKeyValue {
                            key: k.to_vec(),
                            mod_revision: v.rev.main,
                            ..Default::default()
                        }
                    } else {
                        v.to_kv(k)
                    }),
                    prev_kv: prev.map(|p| p.to_kv(k)),
                };
                if !spec.matches(&ev) {
                    continue;
                }
                let ev = spec.shape(&ev);
                match &mut batch {
                    Some(b) if b.revision == v.rev.main => b.events.push(ev),
                    _ => {
                        if let Some(done) = batch.take() {
                            let _ = tx.send(done);
                        }
                        batch = Some(WatchBatch {
                            revision: v.rev.main,
                            events: vec![ev],
                        });
                    }
                }
            }
            if let Some(done) = batch {
                let _ = tx.send(done);
            }
        }
        let id = self.hub.next;
        self.hub.next += 1;
        self.hub.watchers.insert(id, Watcher { spec, tx });
        WatchStart::Watching(id, rx)
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
