//! Automatic history compaction (etcd's `--auto-compaction-mode` / `--auto-compaction-retention`): which
//! revision to compact to, and when. Pure schedule logic fed with times and revisions; the member's
//! loop (member/auto_compact.rs) samples the store and proposes the compaction through Raft on the leader.
//!
//! Without it every version of every key stays in memory forever: RSS grows with history.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How much history the leader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// No automatic compaction (retention "0", etcd's default).
    Off,
    /// Keep about this much time of history (`periodic` mode).
    Period(Duration),
    /// Keep the last N revisions (`revision` mode).
    Revisions(i64),
}

/// etcd's revision compactor looks every five minutes.
pub const REVISION_CHECK: Duration = Duration::from_secs(5 * 60);

impl Retention {
    /// Read `--auto-compaction-retention` as etcd does: in periodic mode a whole number means hours and
    /// anything else is a Go duration ("30m", "1h30m", "1.5h"); in revision mode a whole number of
    /// revisions. "0" turns compaction off. The error text says what is accepted.
    pub fn parse(revision_mode: bool, text: &str) -> Result<Retention, String> {
        let text = text.trim();
        if let Ok(n) = text.parse::<i64>() {
            return match n {
                0 => Ok(Retention::Off),
                n if n < 0 => Err(format!("{text:?} is negative")),
                n if revision_mode => Ok(Retention::Revisions(n)),
                n => Ok(Retention::Period(Duration::from_secs(n as u64 * 3600))),
            };
        }
        if revision_mode {
            return Err(format!(
                "{text:?} is not a whole number of revisions (revision mode keeps the last N revisions)"
            ));
        }
        match parse_go_duration(text) {
            Some(d) if d.is_zero() => Ok(Retention::Off),
            Some(d) => Ok(Retention::Period(d)),
            None => Err(format!(
                "{text:?} is neither a number of hours nor a duration such as 30m, 1h30m or 1.5h"
            )),
        }
    }
}

/// A Go `time.ParseDuration` string: one or more decimal numbers each with a unit (ns, us, µs, ms, s, m, h).
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

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
    fn retention_is_read_like_etcd() {
        let h = |n: u64| Retention::Period(Duration::from_secs(n * 3600));
        assert_eq!(Retention::parse(false, "0"), Ok(Retention::Off));
        assert_eq!(Retention::parse(false, "1"), Ok(h(1)));
        assert_eq!(Retention::parse(false, "72"), Ok(h(72)));
        assert_eq!(
            Retention::parse(false, "30m"),
            Ok(Retention::Period(Duration::from_secs(1800)))
        );
        assert_eq!(
            Retention::parse(false, "1h30m"),
            Ok(Retention::Period(Duration::from_secs(5400)))
        );
        assert_eq!(
            Retention::parse(false, "1.5h"),
            Ok(Retention::Period(Duration::from_secs(5400)))
        );
        assert_eq!(
            Retention::parse(false, "500ms"),
            Ok(Retention::Period(Duration::from_millis(500)))
        );
        assert_eq!(Retention::parse(false, "0s"), Ok(Retention::Off));
        assert_eq!(
            Retention::parse(true, "1000"),
            Ok(Retention::Revisions(1000))
        );
        assert_eq!(Retention::parse(true, "0"), Ok(Retention::Off));
        for bad in ["1d", "abc", "", "h", "1h3", "-1"] {
            assert!(Retention::parse(false, bad).is_err(), "{bad:?} accepted");
        }
        assert!(Retention::parse(true, "1h").is_err());
        assert!(Retention::parse(true, "-5").is_err());
    }

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
