//! Watch guarantees (etcd's api/v3rpc watch contract): events arrive in revision order, none twice, none
//! outside the watched range or before the start revision, a revision never split across responses;
//! no event of the range is skipped from the start revision on, so a watcher that reconnects at its
//! last revision + 1 misses nothing; and a watch whose start revision was compacted away is canceled
//! with the compaction's revision, never served with a silent hole. (A watch is not linearizable: a
//! member that has not yet applied an acknowledged compaction may still serve the full history from
//! below it; what it serves is held to the no-gap rule like everything else.)

use std::collections::HashSet;

use super::log::EventLog;
use crate::history::{History, Outcome, Req, WatchEnd, WatchSession};

/// Checks every session; returns the anomalies.
pub fn check(h: &History, log: &EventLog) -> Vec<String> {
    let mut out = log.conflicts.clone();
    for s in &h.watches {
        check_session(h, log, s, &mut out);
    }
    out
}

fn who(s: &WatchSession) -> String {
    format!(
        "watcher {} (via member {}, {:?} from revision {}{})",
        s.watcher,
        s.member,
        s.range,
        s.start_rev,
        if s.resumed { ", resumed" } else { "" }
    )
}

/// One session's violations of one kind: how many, and the first few.
#[derive(Default)]
struct Tally(usize, Vec<String>);

impl Tally {
    fn add(&mut self, what: String) {
        self.0 += 1;
        if self.1.len() < 3 {
            self.1.push(what);
        }
    }

    fn report(self, s: &WatchSession, what: &str, out: &mut Vec<String>) {
        if self.0 > 0 {
            out.push(format!(
                "{}: {} {what}: {}{}",
                who(s),
                self.0,
                self.1.join(", "),
                if self.0 > 3 { ", ..." } else { "" }
            ));
        }
    }
}

fn check_session(h: &History, log: &EventLog, s: &WatchSession, out: &mut Vec<String>) {
    let mut seen = HashSet::new();
    let mut last = 0;
    let mut batch_of_last = None;
    let (mut split, mut late, mut twice, mut early, mut outside) = (
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    );
    for e in &s.events {
        let at = format!("{}@{}", e.key, e.rev);
        if e.rev == last && batch_of_last.is_some_and(|b| b != e.batch) {
            split.add(at.clone());
        }
        batch_of_last = Some(e.batch);
        if e.rev < last {
            late.add(format!("{at} after {last}"));
        }
        if !seen.insert((e.rev, e.key.as_str())) {
            twice.add(at.clone());
        }
        if e.rev < s.start_rev {
            early.add(at.clone());
        }
        if !s.range.contains(&e.key) {
            outside.add(at);
        }
        last = last.max(e.rev);
    }
    split.report(
        s,
        "revisions split across responses (a response must carry whole revisions)",
        out,
    );
    late.report(s, "events arrived out of revision order", out);
    twice.report(s, "events arrived twice", out);
    early.report(s, "events from before its start revision", out);
    outside.report(s, "events outside its range", out);

    match &s.end {
        WatchEnd::Canceled { compact_rev, .. } if *compact_rev > 0 => {
            let requested = h.ops.iter().any(|o| {
                matches!(o.req, Req::Compact { rev } if rev == *compact_rev)
                    && o.invoke < s.end_at
                    && !matches!(o.outcome, Outcome::Fail(_))
            });
            if s.start_rev >= *compact_rev || !requested {
                out.push(format!(
                    "{}: canceled as compacted at revision {compact_rev}, which {}",
                    who(s),
                    if requested {
                        "is not above its start revision"
                    } else {
                        "no compaction request reached"
                    }
                ));
            }
            if !s.events.is_empty() {
                out.push(format!(
                    "{}: delivered {} events and then was canceled as compacted",
                    who(s),
                    s.events.len()
                ));
            }
            return;
        }
        _ => {}
    }
    // No gap: every change of the range that the log knows in [start, last delivered] arrived.
    let (lo, hi) = (s.start_rev.max(1), last);
    if hi < lo {
        return;
    }
    // etcd's compaction at revision R keeps no deletion made at R (its key index drops a generation's
    // closing tombstone), so a watch starting exactly at a compacted revision cannot replay a delete
    // made there; etcd 3.4 does the same.
    let compacted_at_start = h.ops.iter().any(|o| {
        matches!(o.req, Req::Compact { rev } if rev == s.start_rev)
            && o.invoke < s.end_at
            && !matches!(o.outcome, Outcome::Fail(_))
    });
    let mut missed = Vec::new();
    for (rev, changes) in log.by_rev.range(lo..=hi) {
        if !log.covers(*rev, *rev) {
            continue;
        }
        for (key, change) in changes.iter().filter(|(k, _)| s.range.contains(k)) {
            if *rev == s.start_rev && compacted_at_start && change.is_none() {
                continue;
            }
            if !seen.contains(&(*rev, key.as_str())) {
                missed.push(format!("{key}@{rev}"));
            }
        }
    }
    if !missed.is_empty() {
        let n = missed.len();
        missed.truncate(5);
        out.push(format!(
            "{}: skipped {n} events it should have delivered (received up to revision {last}): {}",
            who(s),
            missed.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::check::log::EventLog;
    use crate::check::testkit::H;
    use crate::history::{WatchEnd, WatchRange};

    fn run(h: &H) -> Vec<String> {
        check(&h.h, &EventLog::build(&h.h))
    }

    fn must_fail(h: &H, what: &str) {
        let r = run(h);
        assert!(
            r.iter().any(|a| a.contains(what)),
            "expected {what:?} in {r:?}"
        );
    }

    const ALL: &[(i64, &str, Option<&str>)] = &[
        (2, "x", Some("a")),
        (3, "y", Some("b")),
        (4, "x", Some("c")),
        (5, "x", None),
    ];

    fn recorded() -> H {
        let mut h = H::new();
        h.watch(0, 1, ALL);
        h
    }

    #[test]
    fn complete_ordered_sessions_and_a_resume_at_last_plus_one_pass() {
        let mut h = recorded();
        h.watch(1, 1, &ALL[..2]).watch(1, 4, &ALL[2..]);
        h.watch_session(
            2,
            WatchRange::Key("x".into()),
            3,
            &[(4, "x", Some("c")), (5, "x", None)],
            0,
            WatchEnd::Stopped,
        );
        assert_eq!(run(&h), Vec::<String>::new());
    }

    #[test]
    fn out_of_order_and_duplicate_events_fail() {
        let mut h = recorded();
        h.watch(1, 1, &[ALL[0], ALL[2], ALL[1], ALL[2]]);
        must_fail(&h, "out of revision order");
        must_fail(&h, "arrived twice");
    }

    #[test]
    fn a_skipped_event_fails() {
        let mut h = recorded();
        h.watch(1, 1, &[ALL[0], ALL[2], ALL[3]]);
        must_fail(&h, "skipped 1 events");
        // Also when the first event after a resume is not the first one from the resume revision.
        let mut h = recorded();
        h.watch(1, 3, &[ALL[2], ALL[3]]);
        must_fail(&h, "y@3");
    }

    #[test]
    fn a_delete_at_a_compacted_start_revision_may_be_missing_but_nothing_else() {
        // Compacted at 5, where x was deleted: a watch from 5 cannot replay that delete (nor can etcd's).
        const MORE: (i64, &str, Option<&str>) = (6, "y", Some("d"));
        let log = [ALL, &[MORE]].concat();
        let mut h = H::new();
        h.watch(0, 1, &log);
        h.compact(5, (0, 1));
        h.watch(1, 5, &[MORE]);
        // Any other skipped event still fails.
        h.watch(2, 2, &[ALL[0], ALL[2], ALL[3], MORE]);
        let found = run(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("y@3"), "{found:?}");
        // Without that compaction the delete must arrive.
        let mut h = H::new();
        h.watch(0, 1, &log);
        h.watch(1, 5, &[MORE]);
        must_fail(&h, "x@5");
    }

    #[test]
    fn a_revision_split_across_responses_fails() {
        let mut h = recorded();
        h.watch(1, 1, &[ALL[0], (3, "y", Some("b")), (3, "z", None)]);
        h.h.watches[1].events[2].batch = 99;
        must_fail(&h, "split across responses");
    }

    #[test]
    fn events_outside_the_range_or_before_the_start_fail() {
        let mut h = recorded();
        h.watch_session(
            1,
            WatchRange::Key("x".into()),
            3,
            &[(2, "x", Some("a")), (3, "y", Some("b"))],
            0,
            WatchEnd::Stopped,
        );
        must_fail(&h, "outside its range");
        must_fail(&h, "before its start revision");
    }

    #[test]
    fn watchers_that_disagree_fail() {
        let mut h = recorded();
        h.watch(1, 1, &[(2, "x", Some("a")), (3, "y", Some("other"))]);
        must_fail(&h, "watchers disagree");
    }

    #[test]
    fn a_watch_from_a_compacted_revision_must_be_canceled_with_the_compaction() {
        let canceled = WatchEnd::Canceled {
            compact_rev: 4,
            reason: "compacted".into(),
        };
        let mut h = recorded();
        h.compact(4, (100, 200));
        h.watch_session(1, WatchRange::All, 2, &[], 300, canceled.clone());
        assert_eq!(run(&h), Vec::<String>::new());
        // Serving what is left after the compaction as if it were the whole history from 2.
        let mut h = recorded();
        h.compact(4, (100, 200));
        h.watch_session(1, WatchRange::All, 2, &ALL[2..], 300, WatchEnd::Stopped);
        must_fail(&h, "skipped 2 events");
        // A member that had not applied the compaction yet may serve the whole history.
        let mut h = recorded();
        h.compact(4, (100, 200));
        h.watch_session(1, WatchRange::All, 2, ALL, 300, WatchEnd::Stopped);
        assert_eq!(run(&h), Vec::<String>::new());
        // Canceled as compacted with no compaction requested.
        let mut h = recorded();
        h.watch_session(1, WatchRange::All, 2, &[], 300, canceled);
        must_fail(&h, "no compaction request reached");
    }
}
