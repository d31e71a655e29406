//! etcd's revision model: one global revision that grows by one per change; every acknowledged write is
//! in the history at the revision its answer named; a read answers what the history held at its header
//! revision (a read at an old revision, what it held then); no value appears that nobody wrote, none
//! twice; and revisions never go back in real time: an operation started after another finished never
//! answers an older revision (a write, never the same one).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::log::{EventLog, KeyState};
use crate::history::{History, Kv, Op, Outcome, Req, Resp};

/// The model checker's findings.
#[derive(Debug, Default)]
pub struct ModelReport {
    /// Wrong results.
    pub anomalies: Vec<String>,
    /// IDs of acknowledged writes the cluster lost.
    pub lost: BTreeSet<u64>,
}

/// Checks `h` against its merged event log.
pub fn check(h: &History, log: &EventLog) -> ModelReport {
    let mut r = ModelReport::default();
    for op in &h.ops {
        match &op.outcome {
            Outcome::Ok(resp) => check_answer(op, resp, log, &mut r),
            Outcome::Fail(e) => check_refusal(op, e, h, &mut r),
            Outcome::Unknown(_) => {}
        }
    }
    check_log_origins(h, log, &mut r);
    check_revision_steps(log, &mut r);
    check_real_time(&h.ops, &mut r);
    check_final(h, log, &mut r);
    r
}

fn same(a: &Option<Kv>, b: &Option<Kv>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.value == b.value && a.mod_rev == b.mod_rev && a.lease == b.lease,
        _ => false,
    }
}

fn show(kv: &Option<Kv>) -> String {
    match kv {
        None => "absent".into(),
        Some(kv) => format!("{} (mod revision {})", kv.value, kv.mod_rev),
    }
}

/// An acknowledged put of `value` at `rev` must be in the log there.
fn check_put(
    op: &Op,
    key: &str,
    value: &str,
    lease: i64,
    rev: i64,
    log: &EventLog,
    r: &mut ModelReport,
) {
    match log.change(rev, key) {
        Some(Some(kv)) if kv.value == value && kv.lease == lease => {}
        _ if !log.covers(rev, rev) => {}
        other => {
            let elsewhere = log.revisions_of(value);
            if elsewhere.is_empty() {
                r.lost.insert(op.id);
                r.anomalies.push(format!(
                    "acknowledged write lost: {} is not in the history (revision {rev} holds {:?} for that key)",
                    op.describe(),
                    other
                ));
            } else {
                r.anomalies.push(format!(
                    "acknowledged at the wrong revision: {} was applied at {:?}",
                    op.describe(),
                    elsewhere
                ));
            }
        }
    }
}

/// Compares an answered read with the history.
fn check_read(op: &Op, key: &str, at: i64, kv: &Option<Kv>, log: &EventLog, r: &mut ModelReport) {
    if let KeyState::Known(expected) = log.state_at(key, at) {
        if !same(&expected, kv) {
            r.anomalies.push(format!(
                "read does not match the history at revision {at}: {} returned {}, the history holds {}",
                op.describe(),
                show(kv),
                show(&expected)
            ));
        }
    }
}

fn check_answer(op: &Op, resp: &Resp, log: &EventLog, r: &mut ModelReport) {
    match (&op.req, resp) {
        (Req::Put { key, value, lease }, Resp::Done { rev }) => {
            check_put(op, key, value, *lease, *rev, log, r)
        }
        (Req::Get { key }, Resp::Read { rev, kv }) => check_read(op, key, *rev, kv, log, r),
        (Req::GetAt { key, rev: at }, Resp::Read { rev, kv }) => {
            if rev < at {
                r.anomalies.push(format!(
                    "read at revision {at} answered with header revision {rev}: {}",
                    op.describe()
                ));
            }
            check_read(op, key, *at, kv, log, r);
        }
        (Req::Delete { key }, Resp::Deleted { rev, deleted }) => {
            if *deleted > 0 {
                match log.change(*rev, key) {
                    Some(None) => {}
                    _ if !log.covers(*rev, *rev) => {}
                    other => {
                        r.lost.insert(op.id);
                        r.anomalies.push(format!(
                            "acknowledged delete lost: {} (revision {rev} holds {other:?} for that key)",
                            op.describe()
                        ));
                    }
                }
            } else if let KeyState::Known(Some(kv)) = log.state_at(key, *rev) {
                r.anomalies.push(format!(
                    "delete found nothing although the key held {} at revision {rev}: {}",
                    kv.value,
                    op.describe()
                ));
            }
        }
        (
            Req::CasRev { key, value, .. } | Req::CasValue { key, value, .. },
            Resp::Txn { rev, succeeded, kv },
        ) => {
            let before = if *succeeded { rev - 1 } else { *rev };
            let state = log.state_at(key, before);
            if *succeeded {
                check_put(op, key, value, 0, *rev, log, r);
            } else if compare_holds(&op.req, kv) {
                // The answer itself says the compare should have held.
                r.anomalies.push(format!(
                    "txn compare failed although the value it returned satisfies it: {}",
                    op.describe()
                ));
            } else if let KeyState::Known(expected) = &state {
                if !same(expected, kv) {
                    r.anomalies.push(format!(
                        "failed txn's read does not match the history at revision {rev}: {} returned {}, the history holds {}",
                        op.describe(),
                        show(kv),
                        show(expected)
                    ));
                }
            }
            if let (true, KeyState::Known(expected)) = (*succeeded, &state) {
                if !compare_holds(&op.req, expected) {
                    r.anomalies.push(format!(
                        "txn succeeded although its compare did not hold at revision {before} (key held {}): {}",
                        show(expected),
                        op.describe()
                    ));
                }
            }
        }
        (Req::Revoke { lease }, Resp::Done { rev }) => {
            // Whether it deleted keys (at `rev`) or found none left (`rev` is then just the current
            // revision), no key may carry the lease at `rev`.
            for key in log.by_key.keys() {
                if let KeyState::Known(Some(kv)) = log.state_at(key, *rev) {
                    if kv.lease == *lease {
                        r.lost.insert(op.id);
                        r.anomalies.push(format!(
                            "acknowledged revoke did not delete key {key} (it still holds {} with the lease at revision {rev}): {}",
                            kv.value,
                            op.describe()
                        ));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Whether a txn's compare holds for the key state `kv`.
fn compare_holds(req: &Req, kv: &Option<Kv>) -> bool {
    match req {
        Req::CasRev { rev, .. } => kv.as_ref().map_or(0, |kv| kv.mod_rev) == *rev,
        Req::CasValue { expect, .. } => kv.as_ref().is_some_and(|kv| &kv.value == expect),
        _ => false,
    }
}

/// A refusal that contradicts the history.
fn check_refusal(op: &Op, error: &str, h: &History, r: &mut ModelReport) {
    let Req::GetAt { rev: at, .. } = op.req else {
        return;
    };
    if error.contains("future revision") {
        let seen = h
            .ops
            .iter()
            .filter(|o| o.complete < op.invoke)
            .filter_map(|o| o.ok().map(Resp::rev))
            .max()
            .unwrap_or(0);
        if at <= seen {
            r.anomalies.push(format!(
                "stale: revision {at} called a future revision after revision {seen} was answered: {}",
                op.describe()
            ));
        }
    } else if error.contains("compacted") {
        let compacted = h.ops.iter().any(|o| {
            matches!(o.req, Req::Compact { rev } if rev > at)
                && o.invoke < op.complete
                && !matches!(o.outcome, Outcome::Fail(_))
        });
        if !compacted {
            r.anomalies.push(format!(
                "revision {at} called compacted though no compaction past it was requested: {}",
                op.describe()
            ));
        }
    }
}

/// Every put in the log comes from one write someone attempted and none is applied twice; every
/// delete from a delete or a revoke; no write refused as not applied shows up.
fn check_log_origins(h: &History, log: &EventLog, r: &mut ModelReport) {
    let mut writes: HashMap<(&str, &str), &Op> = HashMap::new();
    let mut deleters: HashSet<&str> = HashSet::new();
    let mut revoked: HashSet<i64> = HashSet::new();
    for op in &h.ops {
        if let (Some(k), Some(v)) = (op.req.key(), op.req.written_value()) {
            writes.insert((k, v), op);
        }
        match &op.req {
            Req::Delete { key } => {
                deleters.insert(key);
            }
            Req::Revoke { lease } => {
                revoked.insert(*lease);
            }
            _ => {}
        }
    }
    for (value, places) in log.values() {
        if places.len() > 1 {
            r.anomalies.push(format!(
                "value {value} was applied more than once: at {places:?}"
            ));
        }
        for (rev, key) in places {
            match writes.get(&(key.as_str(), value.as_str())) {
                None => r.anomalies.push(format!(
                    "phantom value: key {key} got {value} at revision {rev}, which no client wrote to it"
                )),
                Some(op) => {
                    if let Outcome::Fail(e) = &op.outcome {
                        r.anomalies.push(format!(
                            "a write refused with \"{e}\" took effect at revision {rev}: {}",
                            op.describe()
                        ));
                    }
                    if let Some(kv) = log.change(*rev, key).and_then(Option::as_ref) {
                        if kv.mod_rev != *rev {
                            r.anomalies.push(format!(
                                "event at revision {rev} for key {key} carries mod revision {}",
                                kv.mod_rev
                            ));
                        }
                    }
                }
            }
        }
    }
    for (key, changes) in &log.by_key {
        let mut prev: Option<(i64, &Option<Kv>)> = None;
        for (rev, c) in changes {
            if c.is_none() && !deleters.contains(key.as_str()) {
                let lease = prev.and_then(|(_, p)| p.as_ref()).map_or(0, |kv| kv.lease);
                // Only when nothing between the previous change and this one is unknown.
                let from = prev.map_or(1, |(r, _)| r + 1);
                if log.covers(from, rev - 1) && (lease == 0 || !revoked.contains(&lease)) {
                    r.anomalies.push(format!(
                        "phantom delete: key {key} deleted at revision {rev}, but no client deleted it or revoked its lease"
                    ));
                }
            }
            prev = Some((*rev, c));
        }
    }
}

/// Within what is known, each revision after the first holds at least one change (etcd's revision
/// grows by one per change; a revision without a change means one was lost or the count skipped).
fn check_revision_steps(log: &EventLog, r: &mut ModelReport) {
    for &(a, b) in log.covered() {
        for rev in a.max(2)..=b {
            if !log.by_rev.contains_key(&rev) {
                r.anomalies.push(format!(
                    "revision {rev} has no change although every watcher covering it was caught up (revisions skipped or a change lost)"
                ));
                return;
            }
        }
    }
}

/// Header revisions never go back in real time.
fn check_real_time(ops: &[Op], r: &mut ModelReport) {
    let counted = |o: &&Op| {
        o.ok().is_some()
            && matches!(
                o.req,
                Req::Get { .. }
                    | Req::GetAt { .. }
                    | Req::Put { .. }
                    | Req::Delete { .. }
                    | Req::CasRev { .. }
                    | Req::CasValue { .. }
                    | Req::Revoke { .. }
            )
    };
    let mut by_complete: Vec<&Op> = ops.iter().filter(counted).collect();
    by_complete.sort_by_key(|o| o.complete);
    let mut by_invoke: Vec<&Op> = ops.iter().filter(counted).collect();
    by_invoke.sort_by_key(|o| o.invoke);
    let mut i = 0;
    let mut best: Option<&Op> = None;
    let mut reported = 0;
    for b in by_invoke {
        while i < by_complete.len() && by_complete[i].complete < b.invoke {
            let a = by_complete[i];
            if best.is_none_or(|x| rev(a) > rev(x)) {
                best = Some(a);
            }
            i += 1;
        }
        let Some(a) = best else { continue };
        let changed = match b.ok() {
            Some(Resp::Done { .. }) => matches!(b.req, Req::Put { .. }),
            Some(Resp::Deleted { deleted, .. }) => *deleted > 0,
            Some(Resp::Txn { succeeded, .. }) => *succeeded,
            _ => false,
        };
        if rev(b) < rev(a) || (changed && rev(b) <= rev(a)) {
            reported += 1;
            if reported <= 5 {
                r.anomalies.push(format!(
                    "revision went back in real time: {} was invoked after {} had finished",
                    b.describe(),
                    a.describe()
                ));
            }
        }
    }
    if reported > 5 {
        r.anomalies.push(format!(
            "... and {} more operations whose revision went back",
            reported - 5
        ));
    }
}

fn rev(o: &Op) -> i64 {
    o.ok().map_or(0, Resp::rev)
}

/// Members that converged hold the same data, equal to the history at the final revision, and every
/// key's last acknowledged put is still there.
fn check_final(h: &History, log: &EventLog, r: &mut ModelReport) {
    let Some(f) = &h.final_state else { return };
    let done: Vec<_> = f.members.iter().filter(|m| m.hash.is_some()).collect();
    if let Some(first) = done.first() {
        for m in &done[1..] {
            if m.hash != first.hash || m.hash_compact_rev != first.hash_compact_rev {
                r.anomalies.push(format!(
                    "members diverge at revision {}: {} has HashKV {:?} (compact revision {}), {} has {:?} (compact revision {})",
                    f.revision, first.name, first.hash, first.hash_compact_rev, m.name, m.hash, m.hash_compact_rev
                ));
            }
            if m.kvs != first.kvs {
                let diff = first
                    .kvs
                    .iter()
                    .zip(&m.kvs)
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("{a:?} vs {b:?}"))
                    .unwrap_or_else(|| format!("{} vs {} keys", first.kvs.len(), m.kvs.len()));
                r.anomalies.push(format!(
                    "members hold different data at revision {}: {} and {} differ ({diff})",
                    f.revision, first.name, m.name
                ));
            }
        }
        for (key, kv) in &first.kvs {
            check_final_key(h, log, f.revision, key, Some(kv), r);
        }
        let present: HashSet<&str> = first.kvs.iter().map(|(k, _)| k.as_str()).collect();
        let keys: BTreeSet<&str> = h.ops.iter().filter_map(|o| o.req.key()).collect();
        for key in keys.into_iter().filter(|k| !present.contains(k)) {
            check_final_key(h, log, f.revision, key, None, r);
        }
    }
}

fn check_final_key(
    h: &History,
    log: &EventLog,
    at: i64,
    key: &str,
    kv: Option<&Kv>,
    r: &mut ModelReport,
) {
    let held = kv.cloned();
    if let KeyState::Known(expected) = log.state_at(key, at) {
        if !same(&expected, &held) {
            r.anomalies.push(format!(
                "the members' final data disagrees with the history: key {key} holds {}, the history {} at revision {at}",
                show(&held),
                show(&expected)
            ));
        }
    }
    // The last acknowledged put of the key must still be there, or something after it have removed
    // or replaced it.
    let last_put = h
        .ops
        .iter()
        .filter(|o| o.req.key() == Some(key))
        .filter_map(|o| match o.ok() {
            Some(Resp::Done { rev }) if matches!(o.req, Req::Put { .. }) => Some((*rev, o)),
            Some(Resp::Txn {
                rev,
                succeeded: true,
                ..
            }) => Some((*rev, o)),
            _ => None,
        })
        .max_by_key(|(rev, _)| *rev);
    let Some((rev, put)) = last_put else { return };
    let replaced = match kv {
        Some(kv) => kv.mod_rev >= rev,
        // Absent: a delete or revoke that may have run after the put explains it.
        None => h.ops.iter().any(|o| {
            o.complete > put.invoke
                && (matches!(&o.req, Req::Delete { key: k } if k == key)
                    || matches!(o.req, Req::Revoke { .. }))
        }),
    };
    if !replaced {
        r.lost.insert(put.id);
        r.anomalies.push(format!(
            "acknowledged write lost: the members end with key {key} {} after {}",
            show(&held),
            put.describe()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::{check, ModelReport};
    use crate::check::log::EventLog;
    use crate::check::testkit::{kv, H};
    use crate::history::{Outcome, Req, Resp};

    fn set_lease(h: &mut H, lease: i64) {
        if let Some(kv) = h.h.watches[0].events[0].kv.as_mut() {
            kv.lease = lease;
        }
    }

    fn run(h: &H) -> ModelReport {
        check(&h.h, &EventLog::build(&h.h))
    }

    fn must_fail(h: &H, what: &str) -> ModelReport {
        let r = run(h);
        assert!(
            r.anomalies.iter().any(|a| a.contains(what)),
            "expected an anomaly containing {what:?}, got {:?}",
            r.anomalies
        );
        r
    }

    /// x=a at 2, y=b at 3, x=c at 4, x deleted at 5; a recorder saw all of it.
    fn consistent() -> H {
        let mut h = H::new();
        h.put(0, "x", "a", (0, 10), 2)
            .put(1, "y", "b", (0, 10), 3)
            .put(0, "x", "c", (20, 30), 4)
            .get(1, "x", (40, 50), 4, kv("c", 4))
            .get_at(1, "x", 2, (60, 70), 4, kv("a", 2))
            .del(0, "x", (80, 90), 5, 1)
            .del(0, "x", (100, 110), 5, 0)
            .watch(
                0,
                1,
                &[
                    (2, "x", Some("a")),
                    (3, "y", Some("b")),
                    (4, "x", Some("c")),
                    (5, "x", None),
                ],
            );
        h
    }

    #[test]
    fn a_consistent_history_passes() {
        let r = run(&consistent());
        assert!(
            r.anomalies.is_empty() && r.lost.is_empty(),
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn an_acknowledged_put_missing_from_its_revision_is_lost() {
        let mut h = consistent();
        h.put(2, "z", "gone", (120, 130), 6)
            .put(2, "z", "next", (140, 150), 7)
            .watch(1, 6, &[(6, "z", Some("other")), (7, "z", Some("next"))]);
        let r = must_fail(&h, "acknowledged write lost");
        assert_eq!(r.lost.len(), 1);
    }

    #[test]
    fn an_acknowledged_put_applied_at_another_revision_fails() {
        let mut h = consistent();
        h.put(2, "z", "moved", (120, 130), 6).watch(
            1,
            6,
            &[(6, "z", Some("w")), (7, "z", Some("moved"))],
        );
        must_fail(&h, "wrong revision");
    }

    #[test]
    fn a_read_that_differs_from_the_history_at_its_revision_fails() {
        let mut h = consistent();
        h.get(2, "x", (120, 130), 3, kv("c", 4));
        must_fail(&h, "read does not match the history at revision 3");
    }

    #[test]
    fn a_stale_read_at_an_old_revision_returning_a_newer_value_fails() {
        let mut h = consistent();
        h.get_at(2, "x", 3, (120, 130), 5, kv("c", 4));
        must_fail(&h, "read does not match the history at revision 3");
    }

    #[test]
    fn phantom_and_duplicate_values_fail() {
        let mut h = consistent();
        h.watch(1, 5, &[(6, "y", Some("nobody")), (7, "x", Some("a"))]);
        must_fail(&h, "phantom value");
        must_fail(&h, "applied more than once");
    }

    #[test]
    fn a_delete_nobody_asked_for_fails() {
        let mut h = consistent();
        h.watch(1, 5, &[(6, "y", None)]);
        must_fail(&h, "phantom delete");
    }

    #[test]
    fn a_revision_going_back_in_real_time_fails() {
        let mut h = consistent();
        h.get(2, "y", (200, 210), 3, kv("b", 3));
        must_fail(&h, "revision went back");
        // A write must get a revision above every revision already answered.
        let mut h = consistent();
        h.put(2, "y", "b2", (200, 210), 5);
        must_fail(&h, "revision went back");
    }

    #[test]
    fn a_skipped_revision_fails() {
        let mut h = H::new();
        h.put(0, "x", "a", (0, 10), 2)
            .put(0, "x", "b", (20, 30), 4)
            .watch(0, 1, &[(2, "x", Some("a")), (4, "x", Some("b"))]);
        must_fail(&h, "revision 3 has no change");
    }

    #[test]
    fn refusing_a_revision_that_was_already_answered_as_future_is_stale() {
        let mut h = consistent();
        h.op(
            2,
            Req::GetAt {
                key: "x".into(),
                rev: 4,
            },
            (200, 210),
            Outcome::Fail("etcdserver: mvcc: required revision is a future revision".into()),
        );
        must_fail(&h, "stale");
    }

    #[test]
    fn a_compacted_error_without_any_compaction_fails_and_with_one_passes() {
        let mut h = consistent();
        h.op(
            2,
            Req::GetAt {
                key: "x".into(),
                rev: 2,
            },
            (200, 210),
            Outcome::Fail("etcdserver: mvcc: required revision has been compacted".into()),
        );
        must_fail(&h, "called compacted");
        h.compact(4, (150, 160));
        assert!(run(&h).anomalies.is_empty(), "{:?}", run(&h).anomalies);
    }

    #[test]
    fn a_write_refused_as_not_applied_that_shows_up_fails() {
        let mut h = consistent();
        h.op(
            2,
            Req::Put {
                key: "y".into(),
                value: "refused".into(),
                lease: 0,
            },
            (200, 210),
            Outcome::Fail("etcdserver: requested lease not found".into()),
        )
        .watch(1, 5, &[(6, "y", Some("refused"))]);
        must_fail(&h, "took effect");
    }

    #[test]
    fn a_txn_that_failed_on_a_holding_compare_fails() {
        let mut h = consistent();
        let failed = Resp::Txn {
            rev: 5,
            succeeded: false,
            kv: kv("b", 3),
        };
        h.cas(2, "y", "b", "b2", (200, 210), failed);
        must_fail(&h, "compare failed although");
    }

    #[test]
    fn a_revoke_that_leaves_its_key_fails() {
        let mut h = H::new();
        h.put_lease(0, "x", "a", 7, (0, 10), 2)
            .revoke(0, 7, (20, 30), 3);
        h.h.watches.clear();
        h.watch(0, 1, &[(2, "x", Some("a")), (3, "y", Some("b"))]);
        set_lease(&mut h, 7);
        h.put(1, "y", "b", (20, 30), 3);
        must_fail(&h, "revoke did not delete");
    }

    #[test]
    fn a_revoke_after_its_key_was_overwritten_deletes_nothing_and_passes() {
        // etcd answers such a revoke with the current revision, where the key holds another value.
        let mut h = H::new();
        h.put_lease(0, "x", "a", 7, (0, 10), 2)
            .put(1, "x", "b", (20, 30), 3)
            .revoke(0, 7, (40, 50), 3);
        h.watch(0, 1, &[(2, "x", Some("a")), (3, "x", Some("b"))]);
        set_lease(&mut h, 7);
        let r = run(&h);
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    }

    #[test]
    fn diverged_members_and_a_lost_final_write_fail() {
        let mut h = consistent();
        h.put(2, "y", "last", (200, 210), 6)
            .watch(1, 5, &[(6, "y", Some("last"))])
            .converged(6, &[(1, &[("y", "last", 6)]), (2, &[("y", "b", 3)])]);
        must_fail(&h, "members diverge");
        must_fail(&h, "hold different data");
        let mut h = consistent();
        h.put(2, "y", "last", (200, 210), 6)
            .converged(6, &[(1, &[("y", "b", 3)]), (1, &[("y", "b", 3)])]);
        let r = must_fail(&h, "acknowledged write lost: the members end with key y");
        assert_eq!(r.lost.len(), 1);
    }
}
