//! The checkers: per-key linearizability, etcd's revision model, watch guarantees and convergence, run
//! over a recorded [`History`]. Only wrong results count as anomalies; slowness, timeouts and refusals
//! are recorded but never counted.

pub mod linear;
pub mod log;
pub mod model;
pub mod watch;

use std::collections::BTreeSet;

use crate::history::History;
use linear::KeyVerdict;

/// Steps the linearizability search may take per key before it answers "inconclusive".
pub const SEARCH_BUDGET: usize = 5_000_000;

/// What the checkers found in one history.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Wrong results, each with its checker's name.
    pub anomalies: Vec<(&'static str, String)>,
    /// IDs of acknowledged writes that were lost.
    pub lost: BTreeSet<u64>,
    /// Keys whose linearizability search ran out of budget.
    pub inconclusive: Vec<String>,
    /// Members that had not caught up when the run ended (not a wrong result by itself).
    pub not_converged: Vec<String>,
}

/// Runs every checker over `h`.
pub fn check(h: &History, budget: usize) -> Verdict {
    let mut v = Verdict::default();
    for (_, kv) in linear::check(&h.ops, budget) {
        match kv {
            KeyVerdict::Violation(why) => v.anomalies.push(("linearizability", why)),
            KeyVerdict::Inconclusive(why) => v.inconclusive.push(why),
            KeyVerdict::Linearizable => {}
        }
    }
    let log = log::EventLog::build(h);
    let m = model::check(h, &log);
    v.anomalies
        .extend(m.anomalies.into_iter().map(|a| ("revisions", a)));
    v.lost = m.lost;
    v.anomalies
        .extend(watch::check(h, &log).into_iter().map(|a| ("watch", a)));
    if let Some(f) = &h.final_state {
        v.not_converged = f.not_converged.clone();
    }
    v
}

#[cfg(test)]
pub mod testkit;
