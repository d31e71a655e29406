//! A snapshot by volume as well as by count. `--snapshot-count` counts Raft entries, but one entry
//! carries a batch of client writes, so a member under load could write gigabytes of log without
//! reaching the count. etcd does not mind (its backend persists the state); cairn's restart replays
//! the log since the last snapshot, a joining member receives that log entry by entry, and the WAL
//! is purged only behind a snapshot. So a member also snapshots once the commands applied since its
//! last snapshot outweigh its live values (at least [`MIN_LOG_BYTES`]): writing the snapshot then
//! costs no more bytes than the log grew by, and a restart replays at most that much. (With half the
//! live values as the bar, a 300k-key scale run snapshotted every minute or two, and puts during
//! those snapshots stalled for up to 1.5 s.) It also snapshots once its last snapshot holds more
//! than a quarter as much again as the live values: a compaction made the rest garbage, and only a
//! new snapshot gives that space back (a value-file rewrite copies the live values, but the old
//! snapshot file stays until the next one; 1 GiB runs kept 1.84 GB and 1.30 GB snapshots beside 979
//! MiB of live values, and the second was what a learner received from that member, then leader).
//!
//! Members apply the same log, so with one bar they would all snapshot at once: three snapshot files
//! written together to the disks while every capture holds its store, and a cluster whose quorum is
//! all busy at the same moment (a 1 GiB scale run lost its leader that way). So a voter that reaches
//! the bar waits [`STAGGER`] times its rank among the voters (0, 10 and 20 s with three) before it
//! triggers, unless its log reaches three times the bar first (at twice, a compaction that halved the
//! bar let a voter skip its turn in a 1 GiB run). A share of the bar instead of a time did not
//! hold: a compaction lowers the live values, and so the bar, for every member at once, and a 1 GiB
//! run saw all three snapshot within half a second again.
//!
//! A member also waits while it carries out a compaction and rewrites its value file after it
//! (unless its log reaches three times the bar): both write out the live values, and not at the
//! same moment.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::member::{App, Inner};

/// The least log volume that triggers a snapshot.
const MIN_LOG_BYTES: u64 = 256 << 20;
/// How often the volume is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a trigger waits for its snapshot before it may trigger again.
const WAIT_AT_MOST: Duration = Duration::from_secs(120);

/// How long a voter waits per rank once it reaches the bar.
const STAGGER: Duration = Duration::from_secs(10);

/// The bar: bytes of commands applied since the last snapshot that call for one, with `live` bytes
/// of values in the store.
fn bar(live: u64) -> u64 {
    MIN_LOG_BYTES.max(live)
}

/// Whether `applied` bytes of commands since the last snapshot call for one, with `live` bytes of
/// values in the store and `snapshot` bytes of values in the last snapshot.
pub fn wants_snapshot(applied: u64, live: u64, snapshot: u64) -> bool {
    applied >= bar(live) || holds_garbage(snapshot, live)
}

/// Whether a snapshot with `snapshot` bytes of values is more than a quarter as large again as the
/// `live` values (and large enough to bother).
fn holds_garbage(snapshot: u64, live: u64) -> bool {
    snapshot >= MIN_LOG_BYTES && u128::from(snapshot) * 4 > u128::from(live) * 5
}

/// Whether a voter of `rank` that has wanted a snapshot for `waited` triggers it now.
fn triggers(rank: u32, waited: Duration, applied: u64, live: u64) -> bool {
    waited >= STAGGER * rank || applied >= bar(live).saturating_mul(3)
}

/// The rank of `me` among `voters` by ID (0 for a learner: it waits for nobody).
fn rank_among(me: u64, voters: impl IntoIterator<Item = u64>) -> u32 {
    let mut voters: Vec<u64> = voters.into_iter().collect();
    voters.sort_unstable();
    voters.dedup();
    voters.iter().position(|v| *v == me).unwrap_or(0) as u32
}

impl App {
    /// Start the loop; it ends with the member.
    pub(super) fn spawn_snapshot_trigger(&self) {
        tokio::spawn(watch(std::sync::Arc::downgrade(&self.inner)));
    }
}

async fn watch(me: Weak<Inner>) {
    // Since when this member has wanted a snapshot.
    let mut wanted_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(inner) = me.upgrade() else {
            return;
        };
        let app = App { inner };
        let applied = app.inner.shared.applied_since_snapshot();
        let (live, rewriting) = {
            let store = app.store().read();
            let busy = store.walk_pending() || store.value_rewrite_running();
            (store.live_value_bytes(), busy)
        };
        let snapshot = app.inner.shared.snapshot_values();
        if !wants_snapshot(applied, live, snapshot) {
            wanted_since = None;
            continue;
        }
        let rank = {
            let m = app.inner.raft.metrics();
            let voters = m
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect::<Vec<_>>();
            rank_among(app.inner.id, voters)
        };
        if rewriting && applied < bar(live).saturating_mul(3) {
            // Held back while this member rewrites its value file: both are ~the live values
            // written out, and at 1 GiB the two at once (on each member, right after a compaction
            // of all history) doubled the writes that puts' fsyncs queued behind. The snapshot
            // then reads the compact file. Every member rewrites after the same compaction, so
            // the turns by rank count from the rewrite's end (counted from the compaction, two
            // followers' 1 GiB snapshots overlapped and the leader lost its quorum).
            wanted_since = None;
            continue;
        }
        let waited = wanted_since.get_or_insert_with(Instant::now).elapsed();
        if triggers(rank, waited, applied, live) {
            wanted_since = None;
            tracing::info!(
                applied_mib = applied >> 20,
                live_mib = live >> 20,
                last_snapshot_mib = snapshot >> 20,
                rank,
                waited_s = waited.as_secs(),
                "snapshot triggered by the log's volume or the last snapshot's garbage"
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
        assert!(!wants_snapshot(200 << 20, 0, 0));
        assert!(wants_snapshot(256 << 20, 0, 0));
        assert!(!wants_snapshot(700 << 20, 1 << 30, 1 << 30));
        assert!(wants_snapshot(1 << 30, 1 << 30, 1 << 30));
    }

    #[test]
    fn a_snapshot_mostly_garbage_after_a_compaction_calls_for_a_new_one() {
        let (mib, gib) = (1u64 << 20, 1u64 << 30);
        // The 1 GiB run: a 1838 MiB snapshot taken before a compaction left 979 MiB live.
        assert!(wants_snapshot(0, 979 * mib, 1838 * mib));
        assert!(wants_snapshot(0, 979 * mib, 1300 * mib));
        assert!(
            !wants_snapshot(0, gib, gib + gib / 8),
            "an eighth garbage is not enough"
        );
        assert!(!wants_snapshot(0, 0, 200 * mib), "too small to bother");
    }

    #[test]
    fn voters_take_turns_by_rank_unless_the_log_triples() {
        let voters = [30, 10, 20];
        assert_eq!(rank_among(10, voters), 0);
        assert_eq!(rank_among(20, voters), 1);
        assert_eq!(rank_among(30, voters), 2);
        assert_eq!(rank_among(40, voters), 0, "a learner waits for nobody");
        let gib = 1u64 << 30;
        let secs = Duration::from_secs;
        assert!(triggers(0, secs(0), gib, gib));
        assert!(!triggers(1, secs(9), gib, gib));
        assert!(triggers(1, secs(10), gib, gib));
        assert!(!triggers(2, secs(19), gib, gib));
        assert!(triggers(2, secs(20), gib, gib));
        assert!(
            !triggers(2, secs(0), 2 * gib, gib),
            "a compaction that halved the bar"
        );
        assert!(triggers(2, secs(0), 3 * gib, gib), "three times the bar");
    }
}
