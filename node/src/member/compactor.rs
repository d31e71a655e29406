//! Carries out the store's compactions, and swaps in the value file a rewrite made, a slice of the
//! key index at a time (etcd's compaction scheduler deletes its backend's old revisions in batches
//! with pauses between them for the same reason). Applying a `Compact` only records it (reads
//! answer as if it were done at once); this loop then walks the keys [`SLICE`] of the store's lock
//! at a time, with [`PAUSE`] between slices for applies and reads: it drops the superseded versions
//! and, after a rewrite, repoints references into the new file (see `mvcc::Store::walk_step`).
//! Done in one go inside apply at a million keys, each held every write for 0.3-0.8 s.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::member::{App, Inner};

/// How often an idle loop looks for work.
const IDLE_CHECK: Duration = Duration::from_millis(20);
/// How long one slice holds the store's write lock (about).
const SLICE: Duration = Duration::from_millis(4);
/// The lock is left free this long between slices.
const PAUSE: Duration = Duration::from_millis(4);

impl App {
    /// Start the loop; it ends with the member.
    pub(super) fn spawn_compactor(&self) {
        tokio::spawn(run(std::sync::Arc::downgrade(&self.inner)));
    }

    /// Wait until this member has carried out every compaction applied so far (a `Compact` with
    /// `physical` set answers only then, as etcd's does).
    pub async fn compactions_carried_out(&self) {
        while self.store().read().compacting() {
            tokio::time::sleep(IDLE_CHECK).await;
        }
    }
}

async fn run(me: Weak<Inner>) {
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        let Some(inner) = me.upgrade() else {
            return;
        };
        let app = App { inner };
        let compacting = {
            let store = app.store().read();
            if !store.walk_pending() {
                continue;
            }
            store.compacting()
        };
        drop(app);
        let (started, mut held, mut longest) = (Instant::now(), Duration::ZERO, Duration::ZERO);
        let (mut keys, mut slices) = (0usize, 0usize);
        loop {
            let Some(inner) = me.upgrade() else {
                return;
            };
            let store = App { inner }.store().clone();
            let t = Instant::now();
            let step = store.write().walk_step(SLICE);
            let took = t.elapsed();
            (held, longest) = (held + took, longest.max(took));
            (keys, slices) = (keys + step.keys, slices + 1);
            if step.done {
                break;
            }
            drop(store);
            tokio::time::sleep(PAUSE).await;
        }
        tracing::info!(
            what = if compacting {
                "compaction"
            } else {
                "repointing after a value-file rewrite"
            },
            keys,
            slices,
            lock_ms = held.as_millis() as u64,
            longest_slice_ms = longest.as_millis() as u64,
            took_ms = started.elapsed().as_millis() as u64,
            "walk over the key index done"
        );
    }
}
