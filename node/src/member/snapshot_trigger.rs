//! A snapshot by volume as well as by count. `--snapshot-count` counts Raft entries, but one entry
//! carries a batch of client writes, so a member under load could write gigabytes of log without
//! reaching the count. etcd does not mind (its backend persists the state); cairn's restart replays
//! the log since the last snapshot, a joining member receives that log entry by entry, and the WAL
//! is purged only behind a snapshot. So a member also snapshots once the commands applied since its
//! last snapshot outweigh its live values (at least [`MIN_LOG_BYTES`]): writing the snapshot then
//! costs no more bytes than the log grew by, and a restart replays at most that much. (With half the
//! live values as the bar, a 300k-key scale run snapshotted every minute or two, and puts during
//! those snapshots stalled for up to 1.5 s.)

use std::sync::Weak;
use std::time::Duration;

use crate::member::{App, Inner};

/// The least log volume that triggers a snapshot.
const MIN_LOG_BYTES: u64 = 256 << 20;
/// How often the volume is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a trigger waits for its snapshot before it may trigger again.
const WAIT_AT_MOST: Duration = Duration::from_secs(120);

/// Whether `applied` bytes of commands since the last snapshot call for one, with `live` bytes of
/// values in the store.
pub fn wants_snapshot(applied: u64, live: u64) -> bool {
    applied >= MIN_LOG_BYTES.max(live)
}

impl App {
    /// Start the loop; it ends with the member.
    pub(super) fn spawn_snapshot_trigger(&self) {
        tokio::spawn(watch(std::sync::Arc::downgrade(&self.inner)));
    }
}

async fn watch(me: Weak<Inner>) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(inner) = me.upgrade() else {
            return;
        };
        let app = App { inner };
        let applied = app.inner.shared.applied_since_snapshot();
        let live = app.store().read().live_value_bytes();
        if wants_snapshot(applied, live) {
            tracing::info!(
                applied_mib = applied >> 20,
                live_mib = live >> 20,
                "snapshot triggered by the log's volume"
            );
            // The count restarts when the snapshot captures the state; until then (or for at most
            // WAIT_AT_MOST, should openraft drop the trigger) this waits.
            let before = app.inner.shared.snapshots();
            if let Err(e) = app.inner.raft.trigger().snapshot().await {
                tracing::warn!("could not trigger a snapshot: {e}");
                return;
            }
            let shared = app.inner.shared.clone();
            drop(app);
            let waited = tokio::time::Instant::now();
            while shared.snapshots() == before && waited.elapsed() < WAIT_AT_MOST {
                tokio::time::sleep(CHECK_EVERY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_scales_with_the_live_values() {
        assert!(!wants_snapshot(200 << 20, 0));
        assert!(wants_snapshot(256 << 20, 0));
        assert!(!wants_snapshot(700 << 20, 1 << 30));
        assert!(wants_snapshot(1 << 30, 1 << 30));
    }
}
