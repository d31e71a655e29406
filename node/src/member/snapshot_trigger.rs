//! A snapshot by volume as well as by count. `--snapshot-count` counts Raft entries, but one entry
//! carries a batch of client writes, so a member under load could write gigabytes of log without
//! reaching the count. etcd does not mind (its backend persists the state); cairn's restart replays
//! the log since the last snapshot, a joining member receives that log entry by entry, and the WAL
//! is purged only behind a snapshot. So a member also snapshots once the commands applied since its
//! last snapshot outweigh its live values (at least [`MIN_LOG_BYTES`]): writing the snapshot then
//! costs no more bytes than the log grew by, and a restart replays at most that much. (With half the
//! live values as the bar, a 300k-key scale run snapshotted every minute or two, and puts during
//! those snapshots stalled for up to 1.5 s.)
//!
//! Members apply the same log, so with one bar they would all snapshot at once: three snapshot files
//! written together to the disks while every capture holds its store, and a cluster whose quorum is
//! all busy at the same moment (a 1 GiB scale run lost its leader that way). So each voter waits for
//! an extra share of the bar before its first snapshot since it started, by its rank among the voters: with three, 0,
//! 1/3 and 2/3. Afterwards every member uses the same bar, so the shares keep them apart.

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
/// values in the store, for a member that must first wait `share` of the bar more.
pub fn wants_snapshot(applied: u64, live: u64, share: Share) -> bool {
    let bar = MIN_LOG_BYTES.max(live);
    let extra = (u128::from(bar) * u128::from(share.rank) / u128::from(share.of.max(1))) as u64;
    applied >= bar.saturating_add(extra)
}

/// `rank`/`of` of the bar: the extra a voter waits before its first snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub rank: u64,
    pub of: u64,
}

impl Share {
    /// No extra.
    pub const NONE: Share = Share { rank: 0, of: 1 };

    /// The share of `me` among `voters` (NONE for a learner).
    pub fn among(me: u64, voters: impl IntoIterator<Item = u64>) -> Share {
        let mut voters: Vec<u64> = voters.into_iter().collect();
        voters.sort_unstable();
        voters.dedup();
        match voters.iter().position(|v| *v == me) {
            Some(rank) => Share {
                rank: rank as u64,
                of: voters.len() as u64,
            },
            None => Share::NONE,
        }
    }
}

impl App {
    /// Start the loop; it ends with the member.
    pub(super) fn spawn_snapshot_trigger(&self) {
        tokio::spawn(watch(std::sync::Arc::downgrade(&self.inner)));
    }
}

async fn watch(me: Weak<Inner>) {
    // Until this member's first snapshot (captured or installed), its share of the bar waits too.
    let mut first = true;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(inner) = me.upgrade() else {
            return;
        };
        let app = App { inner };
        if first && app.inner.shared.snapshots() > 0 {
            first = false;
        }
        let share = if first {
            let m = app.inner.raft.metrics();
            let voters = m
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect::<Vec<_>>();
            Share::among(app.inner.id, voters)
        } else {
            Share::NONE
        };
        let applied = app.inner.shared.applied_since_snapshot();
        let live = app.store().read().live_value_bytes();
        if wants_snapshot(applied, live, share) {
            first = false;
            tracing::info!(
                applied_mib = applied >> 20,
                live_mib = live >> 20,
                share = format!("{}/{}", share.rank, share.of),
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
        assert!(!wants_snapshot(200 << 20, 0, Share::NONE));
        assert!(wants_snapshot(256 << 20, 0, Share::NONE));
        assert!(!wants_snapshot(700 << 20, 1 << 30, Share::NONE));
        assert!(wants_snapshot(1 << 30, 1 << 30, Share::NONE));
    }

    #[test]
    fn voters_wait_for_their_share_of_the_bar_first() {
        let voters = [30, 10, 20];
        let shares: Vec<Share> = voters.iter().map(|v| Share::among(*v, voters)).collect();
        assert_eq!(shares[1], Share { rank: 0, of: 3 });
        assert_eq!(shares[2], Share { rank: 1, of: 3 });
        assert_eq!(shares[0], Share { rank: 2, of: 3 });
        assert_eq!(Share::among(40, voters), Share::NONE);
        let gib = 1u64 << 30;
        // With 1 GiB live: the bar, 4/3 and 5/3 of it.
        assert!(wants_snapshot(gib, gib, shares[1]));
        assert!(!wants_snapshot(gib, gib, shares[2]));
        assert!(wants_snapshot(gib + gib / 3, gib, shares[2]));
        assert!(!wants_snapshot(gib + gib / 2, gib, shares[0]));
        assert!(wants_snapshot(gib + gib * 2 / 3, gib, shares[0]));
    }
}
