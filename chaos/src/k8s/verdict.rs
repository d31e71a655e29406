//! What a partition of the member the watches are on must do to them (issue 22): every require-leader
//! watch stream open there ends with "etcdserver: no leader" within a bound, and its watch resumes on
//! another member while the partition lasts (that it misses no event is the workload's own check).
//! Pure: it reads the streams the workload recorded and the partition's times.

use std::time::{Duration, Instant};

use cairn_tests::apiserver::WatchStream;

/// One partition of a member from the others.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// The member cut off (index).
    pub member: usize,
    /// When the cut was in place.
    pub at: Instant,
    /// When it was healed.
    pub healed: Instant,
}

/// What became of the watch streams open on a cut-off member.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Streams open on the member when it was cut off.
    pub open: usize,
    /// Of those, how many ended with "no leader" before the heal.
    pub ended: usize,
    /// The longest time from the cut to such an end.
    pub slowest_end: Duration,
    /// Watches that opened a new stream on another member before the heal.
    pub resumed: usize,
    /// The longest time from the cut to the new stream's `created`.
    pub slowest_resume: Duration,
    /// What a control plane would suffer: stuck watches, wrong reasons, ends after `limit`.
    pub violations: Vec<String>,
}

/// Judges `cut` from `streams`; an end later than `limit` after the cut is a violation.
pub fn judge(streams: &[WatchStream], cut: &Cut, limit: Duration) -> Outcome {
    let mut out = Outcome::default();
    let open_at_cut = streams.iter().filter(|s| {
        s.member == cut.member
            && s.opened <= cut.at
            && s.ended.as_ref().is_none_or(|e| e.0 > cut.at)
    });
    for s in open_at_cut {
        out.open += 1;
        let end = match &s.ended {
            Some((t, why)) if *t <= cut.healed => (*t, why),
            _ => {
                out.violations.push(format!(
                    "watch {} stayed open on cut-off member {} until the heal ({:?})",
                    s.name,
                    cut.member,
                    cut.healed - cut.at
                ));
                continue;
            }
        };
        let took = end.0 - cut.at;
        if !end.1.contains("etcdserver: no leader") {
            out.violations.push(format!(
                "watch {} on cut-off member {} ended after {took:?} without \"etcdserver: no leader\": {}",
                s.name, cut.member, end.1
            ));
            continue;
        }
        out.ended += 1;
        out.slowest_end = out.slowest_end.max(took);
        if took > limit {
            out.violations.push(format!(
                "watch {} on cut-off member {} ended only after {took:?} (limit {limit:?})",
                s.name, cut.member
            ));
        }
        let next = streams.iter().find(|n| {
            n.name == s.name
                && n.member != cut.member
                && n.opened >= end.0
                && n.opened <= cut.healed
        });
        match next {
            Some(n) => {
                out.resumed += 1;
                out.slowest_resume = out.slowest_resume.max(n.opened - cut.at);
            }
            None => out.violations.push(format!(
                "watch {} was not resumed on another member while {} was cut off",
                s.name, cut.member
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(
        name: &str,
        member: usize,
        opened: Instant,
        ended: Option<(Instant, &str)>,
    ) -> WatchStream {
        WatchStream {
            name: name.into(),
            member,
            opened,
            from: 1,
            ended: ended.map(|(t, w)| (t, w.to_string())),
        }
    }

    #[test]
    fn a_watch_ended_with_no_leader_and_resumed_elsewhere_passes() {
        let t = Instant::now();
        let s = |n| t + Duration::from_secs(n);
        let cut = Cut {
            member: 0,
            at: s(10),
            healed: s(20),
        };
        let streams = [
            stream(
                "/a/",
                0,
                s(1),
                Some((
                    s(14),
                    "failed: status: Unavailable, message: \"etcdserver: no leader\"",
                )),
            ),
            stream("/a/", 1, s(15), None),
            // On another member, or closed before the cut: not concerned.
            stream("/b/", 1, s(1), None),
            stream("/c/", 0, s(1), Some((s(5), "transport error"))),
        ];
        let o = judge(&streams, &cut, Duration::from_secs(6));
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!((o.open, o.ended, o.resumed), (1, 1, 1));
        assert_eq!(o.slowest_end, Duration::from_secs(4));
        assert_eq!(o.slowest_resume, Duration::from_secs(5));
    }

    #[test]
    fn stuck_late_wrongly_ended_or_unresumed_watches_are_violations() {
        let t = Instant::now();
        let s = |n| t + Duration::from_secs(n);
        let cut = Cut {
            member: 0,
            at: s(10),
            healed: s(30),
        };
        let no_leader = "etcdserver: no leader";
        let streams = [
            stream("/stuck/", 0, s(1), None),
            stream("/late/", 0, s(1), Some((s(25), no_leader))),
            stream("/late/", 2, s(26), None),
            stream("/other/", 0, s(1), Some((s(12), "transport error"))),
            stream("/lost/", 0, s(1), Some((s(12), no_leader))),
            stream("/lost/", 0, s(13), None),
        ];
        let o = judge(&streams, &cut, Duration::from_secs(6));
        assert_eq!(o.open, 4);
        let v = o.violations.join("\n");
        assert!(v.contains("/stuck/ stayed open"), "{v}");
        assert!(
            v.contains("/late/ on cut-off member 0 ended only after 15s"),
            "{v}"
        );
        assert!(
            v.contains("/other/ on cut-off member 0 ended after 2s without"),
            "{v}"
        );
        assert!(v.contains("/lost/ was not resumed"), "{v}");
        assert_eq!(o.violations.len(), 4, "{v}");
    }
}
