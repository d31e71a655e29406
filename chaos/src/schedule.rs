//! The fault schedule of a run, drawn from a seeded RNG: which faults, for how long, with what gaps.
//! Targets named by role (the leader, a random member) are resolved when the fault is injected, from
//! the same RNG, so a seed replays the same sequence of decisions.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::disk::Damage;

/// Who a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A member chosen at random.
    Random,
    /// Whoever leads when the fault starts.
    Leader,
    /// This member (index), whatever its role: e.g. the one the watches are on.
    Member(usize),
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 one member, restarted after `restart_ms` (0: at once).
    Kill { who: Target, restart_ms: u64 },
    /// kill -9 every member, restarted after `restart_ms`.
    KillAll { restart_ms: u64 },
    /// SIGSTOP for `ms` (beyond the election timeout), then SIGCONT.
    Pause { who: Target, ms: u64 },
    /// One member cut off from every other member.
    Isolate { who: Target, ms: u64 },
    /// A random minority cut off from the majority.
    Split { ms: u64 },
    /// Packets from one random member to another dropped (one direction only).
    OneWay { ms: u64 },
    /// A member removed, its data wiped, and added back as a new member, while clients write.
    Replace { who: Target },
    /// A member's data dir filled up for `ms`.
    DiskFull { who: Target, ms: u64 },
    /// Members killed, their last WAL segment damaged, restarted: the expected outcome is a refusal
    /// to start (or a start that loses nothing).
    Corrupt { members: usize, damage: Damage },
}

impl Fault {
    /// Short name for tables (`kill-leader`, `partition-split`, ...).
    pub fn name(&self) -> String {
        let who = |t: &Target| match t {
            Target::Random => "random".to_string(),
            Target::Leader => "leader".to_string(),
            Target::Member(i) => format!("m{i}"),
        };
        let when = |ms: &u64| if *ms == 0 { "now" } else { "later" };
        match self {
            Fault::Kill { who: w, restart_ms } => {
                format!("kill-{}-restart-{}", who(w), when(restart_ms))
            }
            Fault::KillAll { restart_ms } => format!("kill-all-restart-{}", when(restart_ms)),
            Fault::Pause { who: w, .. } => format!("pause-{}", who(w)),
            Fault::Isolate { who: w, .. } => format!("partition-isolate-{}", who(w)),
            Fault::Split { .. } => "partition-split".into(),
            Fault::OneWay { .. } => "partition-one-way".into(),
            Fault::Replace { who: w } => format!("member-replace-{}", who(w)),
            Fault::DiskFull { who: w, .. } => format!("disk-full-{}", who(w)),
            Fault::Corrupt { members, damage } => format!(
                "wal-{}-{members}-member{}",
                match damage {
                    Damage::Flip => "flip",
                    Damage::Truncate => "truncate",
                },
                if *members > 1 { "s" } else { "" }
            ),
        }
    }
}

/// Timing of faults relative to the cluster's election timeout.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The members' `--election-timeout` in ms.
    pub election_ms: u64,
}

/// Every fault kind once, with durations drawn from `rng`. The two-member corruption is not here:
/// it usually costs the quorum, so it only ever ends a run.
fn kinds(rng: &mut impl Rng, t: Timing) -> Vec<Fault> {
    let e = t.election_ms;
    // Beyond the election timeout, so pauses and partitions cost the leader its role.
    let mut hold = || rng.random_range(3 * e / 2..=3 * e);
    let delay = 2 * e;
    vec![
        Fault::Kill {
            who: Target::Random,
            restart_ms: 0,
        },
        Fault::Kill {
            who: Target::Random,
            restart_ms: delay,
        },
        Fault::Kill {
            who: Target::Leader,
            restart_ms: 0,
        },
        Fault::Kill {
            who: Target::Leader,
            restart_ms: delay,
        },
        Fault::KillAll { restart_ms: 0 },
        Fault::KillAll { restart_ms: delay },
        Fault::Pause {
            who: Target::Random,
            ms: hold(),
        },
        Fault::Pause {
            who: Target::Leader,
            ms: hold(),
        },
        Fault::Isolate {
            who: Target::Leader,
            ms: hold(),
        },
        Fault::Split { ms: hold() },
        Fault::OneWay { ms: hold() },
        Fault::Replace {
            who: Target::Random,
        },
        Fault::Replace {
            who: Target::Leader,
        },
        Fault::DiskFull {
            who: Target::Random,
            ms: hold(),
        },
        Fault::DiskFull {
            who: Target::Leader,
            ms: hold(),
        },
        Fault::Corrupt {
            members: 1,
            damage: Damage::Flip,
        },
        Fault::Corrupt {
            members: 1,
            damage: Damage::Truncate,
        },
    ]
}

/// Every kind's name (the two-member corruption included).
pub fn names(t: Timing) -> Vec<String> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut v: Vec<String> = kinds(&mut rng, t).iter().map(Fault::name).collect();
    v.push(TWO_MEMBER_CORRUPTION.name());
    v
}

/// Damages two members at once: without a quorum of intact members it ends the run.
const TWO_MEMBER_CORRUPTION: Fault = Fault::Corrupt {
    members: 2,
    damage: Damage::Flip,
};

/// The faults of one run: `count` drawn at random (each kind equally likely, or only those named in
/// `only`), and with probability `final_corruption` a two-member corruption at the end.
pub fn random(
    rng: &mut impl Rng,
    t: Timing,
    count: usize,
    final_corruption: f64,
    only: &[String],
) -> Vec<Fault> {
    let mut out = Vec::new();
    let wanted = |f: &Fault| only.is_empty() || only.contains(&f.name());
    for _ in 0..count {
        let all: Vec<Fault> = kinds(rng, t).into_iter().filter(wanted).collect();
        if let Some(f) = all.choose(rng) {
            out.push(f.clone());
        }
    }
    if rng.random_bool(final_corruption) && wanted(&TWO_MEMBER_CORRUPTION) {
        out.push(Fault::Corrupt {
            members: 2,
            damage: Damage::Flip,
        });
    }
    out
}

/// The short schedule (CI): every kind exactly once, spread over `runs` runs in a shuffled order,
/// the two-member corruption ending the last run.
pub fn covering(rng: &mut impl Rng, t: Timing, runs: usize) -> Vec<Vec<Fault>> {
    use rand::seq::SliceRandom;
    let mut all = kinds(rng, t);
    all.shuffle(rng);
    let runs = runs.max(1);
    let per = all.len().div_ceil(runs);
    let mut out: Vec<Vec<Fault>> = all.chunks(per).map(<[Fault]>::to_vec).collect();
    out.resize(runs, Vec::new());
    if let Some(last) = out.last_mut() {
        last.push(Fault::Corrupt {
            members: 2,
            damage: Damage::Flip,
        });
    }
    out
}

/// A pause between faults: long enough for clients to see the healed cluster work.
pub fn gap_ms(rng: &mut impl Rng, t: Timing) -> u64 {
    rng.random_range(t.election_ms / 2..=t.election_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeSet;

    const T: Timing = Timing { election_ms: 2000 };

    #[test]
    fn a_seed_gives_the_same_schedule_every_time() {
        let a = random(&mut ChaCha8Rng::seed_from_u64(7), T, 10, 0.5, &[]);
        let b = random(&mut ChaCha8Rng::seed_from_u64(7), T, 10, 0.5, &[]);
        let c = random(&mut ChaCha8Rng::seed_from_u64(8), T, 10, 0.5, &[]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_short_schedule_covers_every_kind_and_ends_with_two_corrupt_members() {
        let runs = covering(&mut ChaCha8Rng::seed_from_u64(1), T, 3);
        assert_eq!(runs.len(), 3);
        let names: BTreeSet<String> = runs.iter().flatten().map(Fault::name).collect();
        let every: BTreeSet<String> = kinds(&mut ChaCha8Rng::seed_from_u64(1), T)
            .iter()
            .map(Fault::name)
            .collect();
        assert!(every.is_subset(&names), "{names:?}");
        assert_eq!(
            runs[2].last().map(Fault::name).as_deref(),
            Some("wal-flip-2-members")
        );
        assert!(runs.iter().all(|r| !r.is_empty()));
    }

    #[test]
    fn pauses_and_partitions_last_beyond_the_election_timeout() {
        for f in random(&mut ChaCha8Rng::seed_from_u64(3), T, 200, 0.0, &[]) {
            if let Fault::Pause { ms, .. }
            | Fault::Isolate { ms, .. }
            | Fault::Split { ms }
            | Fault::OneWay { ms } = f
            {
                assert!(ms > T.election_ms, "{f:?}");
            }
        }
    }
}
