//! The faults of an API-server workload run, drawn from a seed: the leader killed, the member the
//! watches are on cut off, compactions while lists page. Durations follow the election timeout.

use std::time::Duration;

use rand::Rng;

use crate::schedule::Timing;

/// One fault of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// kill -9 of the leader, started again after `restart_ms`.
    KillLeader { restart_ms: u64 },
    /// The member most watch streams are open on, cut off from the others for `ms`.
    IsolateWatchMember { ms: u64 },
    /// Compactions to the newest revision, `rounds` of them, while lists page at older revisions.
    CompactDuringLists { rounds: usize },
}

impl Step {
    /// Short name for the output.
    pub fn name(&self) -> &'static str {
        match self {
            Step::KillLeader { restart_ms: 0 } => "kill-leader-restart-now",
            Step::KillLeader { .. } => "kill-leader-restart-later",
            Step::IsolateWatchMember { .. } => "partition-isolate-watch-member",
            Step::CompactDuringLists { .. } => "compact-during-lists",
        }
    }

    /// About how long the step takes, the cluster's recovery included (the workload is sized by it).
    pub fn planned(&self, t: Timing) -> Duration {
        let e = t.election_ms;
        Duration::from_millis(match self {
            Step::KillLeader { restart_ms } => restart_ms + 5 * e,
            Step::IsolateWatchMember { ms } => ms + 3 * e,
            Step::CompactDuringLists { rounds } => 400 * *rounds as u64 + 1000,
        })
    }
}

/// How long a require-leader watch on a cut-off member may stay open: etcd's member notices the lost
/// leader within two election timeouts (a follower's randomised timeout), then cancels after three
/// checks one election timeout apart; plus slack for a loaded machine.
pub fn end_limit(t: Timing) -> Duration {
    Duration::from_millis(6 * t.election_ms + 2000)
}

/// A partition long enough for every watch to end, and resume elsewhere, before it heals.
fn hold(t: Timing) -> u64 {
    end_limit(t).as_millis() as u64 + 2 * t.election_ms + 2000
}

/// The CI schedule: each kind once, the partition first (so every watch is on the cut member).
pub fn short(t: Timing) -> Vec<Step> {
    vec![
        Step::IsolateWatchMember { ms: hold(t) },
        Step::KillLeader {
            restart_ms: 2 * t.election_ms,
        },
        Step::CompactDuringLists { rounds: 4 },
    ]
}

/// `count` faults: the partition first, a leader kill second, a compaction third (so a run has each
/// kind), then each kind equally likely.
pub fn random(rng: &mut impl Rng, t: Timing, count: usize) -> Vec<Step> {
    let mut out = vec![Step::IsolateWatchMember {
        ms: hold(t) + rng.random_range(0..=2 * t.election_ms),
    }];
    while out.len() < count {
        let kind = match out.len() {
            1 => 0,
            2 => 2,
            _ => rng.random_range(0..3),
        };
        out.push(match kind {
            0 => Step::KillLeader {
                restart_ms: if rng.random_bool(0.5) {
                    0
                } else {
                    2 * t.election_ms
                },
            },
            1 => Step::IsolateWatchMember {
                ms: hold(t) + rng.random_range(0..=2 * t.election_ms),
            },
            _ => Step::CompactDuringLists {
                rounds: rng.random_range(3..=8),
            },
        });
    }
    out
}

/// The pause after a step: the clients see the healed cluster work before the next fault.
pub fn gap(rng: &mut impl Rng, t: Timing) -> Duration {
    Duration::from_millis(rng.random_range(2 * t.election_ms..=3 * t.election_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const T: Timing = Timing { election_ms: 1000 };

    #[test]
    fn a_seed_gives_the_same_faults_and_the_partition_outlasts_the_end_limit() {
        let a = random(&mut ChaCha8Rng::seed_from_u64(5), T, 12);
        assert_eq!(a, random(&mut ChaCha8Rng::seed_from_u64(5), T, 12));
        assert_ne!(a, random(&mut ChaCha8Rng::seed_from_u64(6), T, 12));
        assert_eq!(a.len(), 12);
        for s in a.iter().chain(&short(T)) {
            if let Step::IsolateWatchMember { ms } = s {
                assert!(Duration::from_millis(*ms) > end_limit(T) + Duration::from_secs(2));
            }
        }
        let kinds: std::collections::BTreeSet<_> = a.iter().map(Step::name).collect();
        assert!(kinds.len() >= 3, "{kinds:?}");
    }
}
