//! Per-key linearizability: Wing & Gong's search with Lowe's memoisation (the algorithm of Knossos and
//! Porcupine), written for this model rather than taken from a crate. stateright's
//! `LinearizabilityTester` searches every interleaving without a cache and wants every operation
//! completed or still in flight at the end; here thousands of operations per key must be checked, and a
//! write that failed or timed out in the middle of the run stays open for ever (it may have taken effect
//! at any later time, or never).
//!
//! Every operation touches one key, so each key's history is checked on its own (linearizability is
//! local); a lease revoke appears in the history of every key a put attached that lease to.
//!
//! Two reductions keep open-ended writes cheap. A value no read ever returned is indistinguishable from
//! any other such value, so they all become one "unobserved" value. And unknown writes that write an
//! unobserved value (or delete, or revoke) are interchangeable within their kind: each kind becomes
//! one generator that may apply any number of times from the earliest one's invocation on. That
//! over-approximates (a kind's writes applied more often than there were writes) in the permissive
//! direction only: it can hide an anomaly that needs counting them, never invent one; in exchange the
//! search stays small even when the history is not linearizable and every order must be tried. An
//! optional operation whose effect would not change the state is never applied at all.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::history::{Op, Outcome, Req, Resp};

/// A value as the model sees it: an index into the key's observed values, or [`UNOBSERVED`].
type Value = u32;
/// Any value that no read observed.
const UNOBSERVED: Value = 0;
/// The model's state of one key: absent, or a value with its lease.
type State = Option<(Value, i64)>;

/// What a Txn answered, as far as the model is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CasResult {
    Succeeded,
    Failed { seen: Option<Value> },
}

/// One operation of one key's history, in the model's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum MOp {
    Read {
        value: Option<Value>,
    },
    Put {
        value: Value,
        lease: i64,
    },
    Delete {
        deleted: Option<bool>,
    },
    Cas {
        expect: Option<Value>,
        value: Value,
        result: Option<CasResult>,
    },
    Revoke {
        lease: i64,
    },
}

/// The model: `None` when `op` cannot return what it returned in state `s`.
fn step(s: State, op: &MOp) -> Option<State> {
    let current = s.map(|(v, _)| v);
    match *op {
        MOp::Read { value } => (current == value).then_some(s),
        MOp::Put { value, lease } => Some(Some((value, lease))),
        MOp::Delete { deleted } => match deleted {
            Some(d) if d != s.is_some() => None,
            _ => Some(None),
        },
        MOp::Cas {
            expect,
            value,
            result,
        } => {
            // A compare on the value of an absent key is false (etcd's applyCompare); a compare of
            // mod_revision 0 on an absent key is true, which is `expect: None` here.
            let holds = current == expect;
            match result {
                Some(CasResult::Succeeded) => holds.then_some(Some((value, 0))),
                Some(CasResult::Failed { seen }) => (!holds && current == seen).then_some(s),
                None if holds => Some(Some((value, 0))),
                None => Some(s),
            }
        }
        MOp::Revoke { lease } => match s {
            Some((_, l)) if l == lease => Some(None),
            _ => Some(s),
        },
    }
}

/// An operation of the key's history with its place in time.
#[derive(Debug, Clone)]
struct KeyOp {
    /// Index into the run's operations (for reports).
    source: usize,
    mop: MOp,
    invoke: u64,
    /// `None`: open-ended (may apply at any time after `invoke`, or never).
    complete: Option<u64>,
    /// Stands for every open-ended operation of its kind: applies any number of times, never lifted.
    generator: bool,
}

/// Why a key's history is not linearizable, or why the search gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// A linearization exists.
    Linearizable,
    /// None exists; the text explains where the search got stuck.
    Violation(String),
    /// The search exceeded its budget (neither verdict).
    Inconclusive(String),
}

/// Checks every key; returns the keys that are not linearizable or not decided, with the reason.
pub fn check(ops: &[Op], budget: usize) -> Vec<(String, KeyVerdict)> {
    let keys: BTreeSet<&str> = ops.iter().filter_map(|o| o.req.key()).collect();
    let mut out = Vec::new();
    for key in keys {
        let v = check_key(ops, key, budget);
        if v != KeyVerdict::Linearizable {
            out.push((key.to_string(), v));
        }
    }
    out
}

/// The values of `key` that some operation observed (read, compare-failed answer, compare operand).
fn observed_values<'a>(ops: &'a [Op], key: &str) -> HashMap<&'a str, Value> {
    let mut seen: Vec<&str> = Vec::new();
    for o in ops.iter().filter(|o| o.req.key() == Some(key)) {
        match &o.req {
            Req::CasRev { seen: Some(v), .. } | Req::CasValue { expect: v, .. } => seen.push(v),
            _ => {}
        }
        match o.ok() {
            Some(Resp::Read { kv: Some(kv), .. }) | Some(Resp::Txn { kv: Some(kv), .. }) => {
                seen.push(&kv.value)
            }
            _ => {}
        }
    }
    let mut ids = HashMap::new();
    for v in seen {
        let next = ids.len() as Value + 1;
        ids.entry(v).or_insert(next);
    }
    ids
}

/// The key's operations in the model's terms.
fn key_ops<'a>(ops: &'a [Op], key: &str) -> (Vec<KeyOp>, HashMap<&'a str, Value>) {
    let ids = observed_values(ops, key);
    let id = |v: &str| ids.get(v).copied().unwrap_or(UNOBSERVED);
    let leases: HashSet<i64> = ops
        .iter()
        .filter_map(|o| match &o.req {
            Req::Put { key: k, lease, .. } if k == key && *lease != 0 => Some(*lease),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        let mop = match (&o.req, &o.outcome) {
            (_, Outcome::Fail(_)) => continue,
            (Req::Revoke { lease }, _) if leases.contains(lease) => MOp::Revoke { lease: *lease },
            (r, _) if r.key() != Some(key) => continue,
            (Req::Get { .. }, Outcome::Ok(Resp::Read { kv, .. })) => MOp::Read {
                value: kv.as_ref().map(|kv| id(&kv.value)),
            },
            (Req::Put { value, lease, .. }, _) => MOp::Put {
                value: id(value),
                lease: *lease,
            },
            (Req::Delete { .. }, Outcome::Ok(Resp::Deleted { deleted, .. })) => MOp::Delete {
                deleted: Some(*deleted > 0),
            },
            (Req::Delete { .. }, _) => MOp::Delete { deleted: None },
            (Req::CasRev { seen, value, .. }, out) => {
                cas(seen.as_deref().map(id), id(value), out, &id)
            }
            (Req::CasValue { expect, value, .. }, out) => {
                cas(Some(id(expect)), id(value), out, &id)
            }
            // Stale reads are checked against the revision history, not here.
            _ => continue,
        };
        let complete = (!o.is_unknown()).then_some(o.complete);
        out.push(KeyOp {
            source: i,
            mop,
            invoke: o.invoke,
            complete,
            generator: false,
        });
    }
    (generators(out), ids)
}

fn cas(expect: Option<Value>, value: Value, out: &Outcome, id: &dyn Fn(&str) -> Value) -> MOp {
    let result = match out {
        Outcome::Ok(Resp::Txn {
            succeeded: true, ..
        }) => Some(CasResult::Succeeded),
        Outcome::Ok(Resp::Txn { kv, .. }) => Some(CasResult::Failed {
            seen: kv.as_ref().map(|kv| id(&kv.value)),
        }),
        _ => None,
    };
    MOp::Cas {
        expect,
        value,
        result,
    }
}

/// Replaces the open-ended operations whose effect names no observed value by one generator per
/// kind: the earliest-invoked of them.
fn generators(ops: Vec<KeyOp>) -> Vec<KeyOp> {
    let mut first: HashMap<MOp, usize> = HashMap::new();
    for (i, o) in ops.iter().enumerate() {
        let interchangeable = o.complete.is_none()
            && matches!(
                o.mop,
                MOp::Put {
                    value: UNOBSERVED,
                    ..
                } | MOp::Cas {
                    value: UNOBSERVED,
                    ..
                } | MOp::Delete { .. }
                    | MOp::Revoke { .. }
            );
        if interchangeable {
            let e = first.entry(o.mop.clone()).or_insert(i);
            if ops[*e].invoke > o.invoke {
                *e = i;
            }
        }
    }
    let keep: HashSet<usize> = first.values().copied().collect();
    ops.into_iter()
        .enumerate()
        .filter_map(|(i, mut o)| {
            if keep.contains(&i) {
                o.generator = true;
                Some(o)
            } else if first.contains_key(&o.mop) && o.complete.is_none() {
                None
            } else {
                Some(o)
            }
        })
        .collect()
}

/// A doubly linked list of call and return entries, in time order.
struct Entries {
    /// (key op, is call)
    item: Vec<(usize, bool)>,
    prev: Vec<usize>,
    next: Vec<usize>,
    /// For a call entry, its return entry (if the op completed).
    matching: Vec<Option<usize>>,
}

const HEAD: usize = 0;
const NIL: usize = usize::MAX;

impl Entries {
    fn new(ops: &[KeyOp]) -> Entries {
        // (time, call before return: an op invoked at the instant another returns counts as
        // concurrent with it, which only ever allows more orders), op, is call
        let mut ev: Vec<(u64, u8, usize)> = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            ev.push((o.invoke, 0, i));
            if let Some(c) = o.complete {
                ev.push((c.max(o.invoke), 1, i));
            }
        }
        ev.sort();
        let n = ev.len() + 1;
        let mut e = Entries {
            item: vec![(usize::MAX, false); n],
            prev: vec![NIL; n],
            next: vec![NIL; n],
            matching: vec![None; n],
        };
        let mut call_of = vec![0usize; ops.len()];
        for (pos, &(_, kind, op)) in ev.iter().enumerate() {
            let at = pos + 1;
            e.item[at] = (op, kind == 0);
            e.prev[at] = pos;
            e.next[pos] = at;
            if kind == 0 {
                call_of[op] = at;
            } else {
                e.matching[call_of[op]] = Some(at);
            }
        }
        e
    }

    fn unlink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = at;
        if n != NIL {
            self.prev[n] = at;
        }
    }

    /// Removes a call entry and its return entry.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        if let Some(r) = self.matching[call] {
            self.unlink(r);
        }
    }

    /// Undoes [`Entries::lift`] (in reverse order).
    fn unlift(&mut self, call: usize) {
        if let Some(r) = self.matching[call] {
            self.relink(r);
        }
        self.relink(call);
    }
}

/// Checks one key's history.
pub fn check_key(ops: &[Op], key: &str, budget: usize) -> KeyVerdict {
    let (kops, ids) = key_ops(ops, key);
    let mut e = Entries::new(&kops);
    let words = kops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    // (call entry, state before it)
    let mut stack: Vec<(usize, State)> = Vec::new();
    let gen_bit = |op: usize, k: &KeyOp| (!k.generator).then_some((op / 64, 1u64 << (op % 64)));
    let mut state: State = None;
    let mut steps = 0usize;
    let completed_total = kops.iter().filter(|o| o.complete.is_some()).count();
    let mut completed_done = 0usize;
    let mut deepest = (0usize, NIL, None::<State>);
    let mut at = e.next[HEAD];
    loop {
        if at == NIL {
            // No return entry is left: every completed operation is placed; what remains are
            // open-ended writes, which may apply later or never.
            return KeyVerdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return KeyVerdict::Inconclusive(format!(
                "key {key}: search budget of {budget} steps exhausted ({} operations, {} open-ended)",
                kops.len(),
                kops.len() - completed_total
            ));
        }
        let (op, is_call) = e.item[at];
        if is_call {
            let k = &kops[op];
            let optional = k.complete.is_none();
            match step(state, &k.mop) {
                Some(s) if !(optional && s == state) => {
                    let bit = gen_bit(op, k);
                    if let Some((w, b)) = bit {
                        linearized[w] |= b;
                    }
                    if cache.insert((linearized.clone(), s)) {
                        stack.push((at, state));
                        state = s;
                        if !optional {
                            completed_done += 1;
                        }
                        if !k.generator {
                            e.lift(at);
                        }
                        at = e.next[HEAD];
                    } else {
                        if let Some((w, b)) = bit {
                            linearized[w] &= !b;
                        }
                        at = e.next[at];
                    }
                }
                _ => at = e.next[at],
            }
        } else {
            // A completed operation that nothing before it could be ordered to allow: backtrack.
            if deepest.1 == NIL || completed_done > deepest.0 {
                deepest = (completed_done, op, Some(state));
            }
            let Some((call, before)) = stack.pop() else {
                return KeyVerdict::Violation(explain(
                    ops,
                    key,
                    &kops,
                    &ids,
                    deepest,
                    completed_total,
                ));
            };
            let (undo, _) = e.item[call];
            if let Some((w, b)) = gen_bit(undo, &kops[undo]) {
                linearized[w] &= !b;
            }
            if kops[undo].complete.is_some() {
                completed_done -= 1;
            }
            state = before;
            if !kops[undo].generator {
                e.unlift(call);
            }
            at = e.next[call];
        }
    }
}

fn explain(
    ops: &[Op],
    key: &str,
    kops: &[KeyOp],
    ids: &HashMap<&str, Value>,
    deepest: (usize, usize, Option<State>),
    total: usize,
) -> String {
    let (done, op, state) = deepest;
    let name = |v: Value| {
        ids.iter()
            .find(|(_, &id)| id == v)
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| "<a value no read returned>".into())
    };
    let state = match state.flatten() {
        None => "absent".to_string(),
        Some((v, l)) => format!(
            "{}{}",
            name(v),
            if l != 0 {
                format!(" (lease {l:x})")
            } else {
                String::new()
            }
        ),
    };
    let stuck = kops
        .get(op)
        .map(|k| ops[k.source].describe())
        .unwrap_or_default();
    format!(
        "key {key}: not linearizable: at best {done} of {total} completed operations could be ordered \
         (the key then held {state}); this one could not follow: {stuck}"
    )
}

#[cfg(test)]
mod tests {
    use super::{check_key, KeyVerdict};
    use crate::check::testkit::{kv, H};
    use crate::history::Resp;

    const BUDGET: usize = 1_000_000;

    fn verdict(h: &H) -> KeyVerdict {
        check_key(&h.h.ops, "x", BUDGET)
    }

    fn must_fail(h: &H) -> String {
        match verdict(h) {
            KeyVerdict::Violation(why) => why,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn must_pass(h: &H) {
        assert_eq!(verdict(h), KeyVerdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_a_newer_write_finished_fails() {
        let why = must_fail(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .put(0, "x", "b", (20, 30), 3)
                .get(1, "x", (40, 50), 3, kv("a", 2)),
        );
        assert!(why.contains("key x") && why.contains("Get"), "{why}");
    }

    #[test]
    fn a_read_that_misses_an_acknowledged_write_fails() {
        must_fail(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .get(1, "x", (20, 30), 2, None),
        );
    }

    #[test]
    fn a_value_nobody_wrote_fails() {
        must_fail(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .get(1, "x", (20, 30), 2, kv("zzz", 2)),
        );
    }

    #[test]
    fn reading_a_write_before_it_was_invoked_fails() {
        must_fail(
            H::new()
                .get(1, "x", (0, 10), 2, kv("a", 2))
                .put_unknown(0, "x", "a", (20, 30)),
        );
    }

    #[test]
    fn an_older_value_coming_back_fails() {
        // Both puts span the reads, but once b was read, a cannot return: each is written once.
        must_fail(
            H::new()
                .put(0, "x", "a", (0, 100), 2)
                .put(1, "x", "b", (0, 100), 3)
                .get(2, "x", (10, 20), 2, kv("a", 2))
                .get(2, "x", (30, 40), 3, kv("b", 3))
                .get(2, "x", (50, 60), 3, kv("a", 2)),
        );
    }

    #[test]
    fn a_txn_that_succeeded_on_a_value_already_replaced_fails() {
        let succeeded = Resp::Txn {
            rev: 4,
            succeeded: true,
            kv: None,
        };
        must_fail(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .get(0, "x", (11, 12), 2, kv("a", 2))
                .put(0, "x", "b", (20, 30), 3)
                .cas(1, "x", "a", "c", (40, 50), succeeded),
        );
    }

    #[test]
    fn a_txn_that_failed_while_its_compare_held_fails() {
        let failed = Resp::Txn {
            rev: 2,
            succeeded: false,
            kv: kv("a", 2),
        };
        must_fail(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .cas(1, "x", "a", "c", (20, 30), failed),
        );
    }

    #[test]
    fn deleting_an_absent_key_that_reports_a_deletion_fails() {
        must_fail(H::new().del(0, "x", (0, 10), 2, 1));
    }

    #[test]
    fn a_key_that_survives_its_leases_revoke_fails() {
        must_fail(
            H::new()
                .put_lease(0, "x", "a", 5, (0, 10), 2)
                .revoke(0, 5, (20, 30), 3)
                .get(1, "x", (40, 50), 3, kv("a", 2)),
        );
    }

    #[test]
    fn a_revoke_deletes_its_keys_and_spares_others() {
        must_pass(
            H::new()
                .put_lease(0, "x", "a", 5, (0, 10), 2)
                .revoke(0, 5, (20, 30), 3)
                .get(1, "x", (40, 50), 3, None)
                .put(0, "x", "b", (60, 70), 4)
                .revoke(0, 5, (80, 90), 4)
                .get(1, "x", (100, 110), 4, kv("b", 4)),
        );
    }

    #[test]
    fn concurrent_reads_may_see_either_side_of_a_write() {
        must_pass(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .get(1, "x", (5, 15), 1, None),
        );
        must_pass(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .get(1, "x", (5, 15), 2, kv("a", 2)),
        );
    }

    #[test]
    fn a_timed_out_write_may_apply_later_or_never() {
        must_pass(
            H::new()
                .put_unknown(0, "x", "a", (0, 10))
                .get(1, "x", (20, 30), 1, None),
        );
        must_pass(
            H::new()
                .put_unknown(0, "x", "a", (0, 10))
                .get(1, "x", (20, 30), 1, None)
                .get(1, "x", (1000, 1010), 2, kv("a", 2)),
        );
    }

    #[test]
    fn an_unobserved_timed_out_delete_explains_a_failed_compare() {
        let failed = Resp::Txn {
            rev: 3,
            succeeded: false,
            kv: None,
        };
        must_pass(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .del_unknown(1, "x", (15, 16))
                .cas(0, "x", "a", "c", (20, 30), failed.clone()),
        );
        // Without that delete nothing explains it.
        must_fail(
            H::new()
                .put(0, "x", "a", (0, 10), 2)
                .cas(0, "x", "a", "c", (20, 30), failed),
        );
    }

    #[test]
    fn an_open_ended_write_whose_value_was_read_applies_at_most_once() {
        // u was read, then b, then u again: u was written once, so it cannot come back.
        let mut h = H::new();
        h.put_unknown(1, "x", "u", (0, 1))
            .get(0, "x", (10, 20), 2, kv("u", 2))
            .put(0, "x", "b", (30, 40), 3)
            .get(0, "x", (50, 60), 3, kv("b", 3));
        must_pass(&h);
        h.get(0, "x", (70, 80), 3, kv("u", 2));
        must_fail(&h);
    }

    #[test]
    fn unobserved_open_ended_writes_of_one_kind_may_stand_for_each_other() {
        // Two deletes that each found something after one put: the open put u1 explains the second.
        let mut h = H::new();
        h.put(0, "x", "a", (0, 10), 2)
            .put_unknown(1, "x", "u1", (11, 12))
            .del(0, "x", (20, 30), 3, 1)
            .del(0, "x", (40, 50), 5, 1);
        must_pass(&h);
        // Nothing before its invocation can use it.
        let mut h = H::new();
        h.put(0, "x", "a", (0, 10), 2)
            .del(0, "x", (20, 30), 3, 1)
            .del(0, "x", (40, 50), 5, 1)
            .put_unknown(1, "x", "u1", (60, 61));
        must_fail(&h);
    }

    #[test]
    fn hundreds_of_open_ended_writes_stay_cheap() {
        let mut h = H::new();
        let mut t = 0;
        for i in 0..300 {
            h.put_unknown(1, "x", &format!("lost{i}"), (t, t + 1));
            h.put(0, "x", &format!("v{i}"), (t + 2, t + 3), i + 2);
            h.get(0, "x", (t + 4, t + 5), i + 2, kv(&format!("v{i}"), i + 2));
            t += 10;
        }
        must_pass(&h);
    }

    #[test]
    fn a_long_sequential_history_is_decided_within_budget() {
        let mut h = H::new();
        for i in 0..3000u64 {
            let t = i * 10;
            h.put(0, "x", &format!("v{i}"), (t, t + 3), i as i64 + 2);
            h.get(
                1,
                "x",
                (t + 1, t + 5),
                i as i64 + 2,
                kv(&format!("v{i}"), i as i64 + 2),
            );
        }
        must_pass(&h);
    }

    /// Histories made linearizable by construction: each operation takes effect at a random instant
    /// inside its interval on a real register; some writes time out (applied or not). All must pass.
    #[test]
    fn random_linearizable_histories_pass() {
        use crate::history::{Kv, Outcome, Req};
        use rand::{Rng, SeedableRng};
        for seed in 0..20 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            // (instant, client, request, invoke, complete, unknown, applied)
            let mut planned = Vec::new();
            let mut n = 0;
            for client in 0..5u32 {
                let mut t = rng.random_range(0..50u64);
                for _ in 0..300 {
                    let d = rng.random_range(1..200u64);
                    let instant = t + rng.random_range(0..=d);
                    let req = match rng.random_range(0..4) {
                        0 | 1 => Req::Get { key: "x".into() },
                        2 => {
                            n += 1;
                            Req::Put {
                                key: "x".into(),
                                value: format!("v{n}"),
                                lease: 0,
                            }
                        }
                        _ => Req::Delete { key: "x".into() },
                    };
                    let unknown = req.is_write() && rng.random_bool(0.15);
                    let applied = !unknown || rng.random_bool(0.5);
                    planned.push((instant, client, req, t, t + d, unknown, applied));
                    t += d + rng.random_range(1..30);
                }
            }
            planned.sort_by_key(|p| p.0);
            let mut reg: Option<Kv> = None;
            let mut rev = 1;
            let mut h = H::new();
            for (_, client, req, invoke, complete, unknown, applied) in planned {
                let resp = match &req {
                    Req::Get { .. } => Resp::Read {
                        rev,
                        kv: reg.clone(),
                    },
                    Req::Put { value, .. } if applied => {
                        rev += 1;
                        reg = kv(value, rev);
                        Resp::Done { rev }
                    }
                    Req::Delete { .. } if applied => {
                        let deleted = i64::from(reg.take().is_some());
                        rev += deleted;
                        Resp::Deleted { rev, deleted }
                    }
                    _ => Resp::Done { rev },
                };
                let outcome = if unknown {
                    Outcome::Unknown("timeout".into())
                } else {
                    Outcome::Ok(resp)
                };
                h.op(client, req, (invoke, complete), outcome);
            }
            h.h.ops.sort_by_key(|o| o.invoke);
            assert_eq!(verdict(&h), KeyVerdict::Linearizable, "seed {seed}");
        }
    }
}
