//! Automatic history compaction (etcd's `--auto-compaction-mode` / `--auto-compaction-retention`, read
//! into [`Retention`] by config): which revision to compact to, and when. Pure schedule logic fed with times and revisions; the member's
//! loop (member/auto_compact.rs) samples the store and proposes the compaction through Raft on the leader.
//!
//! Without it every version of every key stays in memory forever: RSS grows with history.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use crate::config::Retention;

/// etcd's revision compactor looks every five minutes.
pub const REVISION_CHECK: Duration = Duration::from_secs(5 * 60);

/// etcd's periodic compactor: sample the revision every tick (a tenth of the period, at most 6 min),
/// compact to the revision sampled one period ago, first after one period, then every
/// min(period, 1 h) after the last success; a failure is retried at the next tick.
#[derive(Debug)]
pub struct Periodic {
    period: Duration,
    samples: VecDeque<i64>,
    last_success: Instant,
    first_done: bool,
}

impl Periodic {
    /// A schedule for `period` starting at `now`.
    pub fn new(period: Duration, now: Instant) -> Self {
        Periodic {
            period,
            samples: VecDeque::new(),
            last_success: now,
            first_done: false,
        }
    }

    fn interval(&self) -> Duration {
        self.period.min(Duration::from_secs(3600))
    }

    /// How often to sample (and retry).
    pub fn tick(&self) -> Duration {
        (self.interval() / 10).max(Duration::from_millis(1))
    }

    fn max_samples(&self) -> usize {
        (self.period.as_nanos() / self.tick().as_nanos()) as usize + 1
    }

    /// Record the revision at the start of a tick.
    pub fn sample(&mut self, revision: i64) {
        self.samples.push_back(revision);
        while self.samples.len() > self.max_samples() {
            self.samples.pop_front();
        }
    }

    /// At the end of a tick: the revision to compact to, if a compaction is due.
    pub fn due(&self, now: Instant) -> Option<i64> {
        let wait = if self.first_done {
            self.interval()
        } else {
            self.period
        };
        if now.saturating_duration_since(self.last_success) < wait {
            return None;
        }
        self.samples.front().copied().filter(|r| *r > 0)
    }

    /// The compaction proposed by `due` succeeded (or the revision was already compacted).
    pub fn succeeded(&mut self, now: Instant) {
        self.last_success = now;
        self.first_done = true;
    }
}

/// etcd's revision compactor: every [`REVISION_CHECK`], compact to `current - keep` unless that was
/// the last compaction or is not positive.
#[derive(Debug)]
pub struct ByRevision {
    keep: i64,
    last: i64,
}

impl ByRevision {
    /// Keep the last `keep` revisions.
    pub fn new(keep: i64) -> Self {
        ByRevision { keep, last: 0 }
    }

    /// The revision to compact to at a check, given the current revision.
    pub fn due(&self, current: i64) -> Option<i64> {
        let rev = current - self.keep;
        (rev > 0 && rev != self.last).then_some(rev)
    }

    /// The compaction to `rev` succeeded (or it was already compacted).
    pub fn succeeded(&mut self, rev: i64) {
        self.last = rev;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_compacts_to_the_revision_of_one_period_ago() {
        let t0 = Instant::now();
        let mut p = Periodic::new(Duration::from_secs(10), t0);
        assert_eq!(p.tick(), Duration::from_secs(1));
        // Revision grows by 100 a second; nothing is due before a whole period has passed.
        let mut compacted = Vec::new();
        for s in 0..=35u64 {
            let now = t0 + Duration::from_secs(s);
            p.sample(1 + 100 * s as i64);
            if let Some(rev) = p.due(now + p.tick()) {
                compacted.push((s + 1, rev));
                p.succeeded(now + p.tick());
            }
        }
        // First at 10 s to the revision of 0 s, then every 10 s to the revision of 10 s before.
        assert_eq!(compacted, vec![(10, 1), (20, 901), (30, 1901)]);
    }

    #[test]
    fn periodic_longer_than_an_hour_compacts_hourly_after_the_first() {
        let t0 = Instant::now();
        let mut p = Periodic::new(Duration::from_secs(2 * 3600), t0);
        assert_eq!(p.tick(), Duration::from_secs(360));
        let mut compacted = Vec::new();
        for i in 0..=40u64 {
            let now = t0 + p.tick() * i as u32;
            p.sample(1 + i as i64);
            let end = now + p.tick();
            if let Some(rev) = p.due(end) {
                compacted.push(((end - t0).as_secs() / 60, rev));
                p.succeeded(end);
            }
        }
        // At 2 h (the revision of 0 min), then at 3 h and 4 h, each to the revision sampled 2 h before
        // the latest sample (54 and 114 min).
        assert_eq!(compacted, vec![(120, 1), (180, 10), (240, 20)]);
    }

    #[test]
    fn by_revision_keeps_the_last_n_and_skips_repeats() {
        let mut r = ByRevision::new(1000);
        assert_eq!(r.due(500), None);
        assert_eq!(r.due(1000), None);
        assert_eq!(r.due(1500), Some(500));
        r.succeeded(500);
        assert_eq!(r.due(1500), None, "nothing new since the last compaction");
        assert_eq!(r.due(4000), Some(3000));
    }
}
