//! Figures of a run and of a whole invocation: operations, faults, anomalies, lost writes, detected
//! corruption, and how long writes were unavailable after leader kills and partitions.

use std::path::PathBuf;

use crate::check::Verdict;
use crate::history::{FaultRecord, History, Outcome, Req};

/// One run's figures.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Seed.
    pub seed: u64,
    /// Operations recorded, and how they ended.
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Watch events received.
    pub events: usize,
    /// Faults injected.
    pub faults: usize,
    /// Anomalies (checker, text).
    pub anomalies: Vec<(&'static str, String)>,
    /// Acknowledged writes lost.
    pub lost: usize,
    /// Members damaged by WAL corruption, and how many of them refused to start.
    pub corrupted: usize,
    pub detected: usize,
    /// Exits and refusals with no corruption injected.
    pub refusals: Vec<String>,
    /// Members that had not converged at the end.
    pub not_converged: Vec<String>,
    /// Keys whose linearizability was not decided.
    pub inconclusive: Vec<String>,
    /// Seconds writes were unavailable after each leader kill.
    pub after_leader_kill: Vec<f64>,
    /// Seconds writes were unavailable after each partition.
    pub after_partition: Vec<f64>,
    /// The run ended early (no quorum left after detected corruption).
    pub ended_without_quorum: bool,
    /// The harness itself failed (not a finding about the server).
    pub harness_error: Option<String>,
    /// Where the run's files were kept.
    pub kept: Option<PathBuf>,
}

impl RunSummary {
    /// Whether this run must be looked at (its files are kept).
    pub fn failed(&self) -> bool {
        !self.anomalies.is_empty()
            || self.lost > 0
            || !self.not_converged.is_empty()
            || !self.inconclusive.is_empty()
            || self.harness_error.is_some()
    }
}

/// Seconds from `f`'s start until the first write invoked after it was acknowledged.
fn unavailable(h: &History, f: &FaultRecord) -> Option<f64> {
    h.ops
        .iter()
        .filter(|o| o.invoke >= f.start && matches!(o.req, Req::Put { .. } | Req::Delete { .. }))
        .filter(|o| matches!(o.outcome, Outcome::Ok(_)))
        .map(|o| o.complete)
        .min()
        .map(|c| (c - f.start) as f64 / 1e6)
}

/// Figures of `h` as checked into `v`.
pub fn summarize(h: &History, v: Verdict) -> RunSummary {
    let mut s = RunSummary {
        seed: h.seed,
        ops: h.ops.len(),
        events: h.watches.iter().map(|w| w.events.len()).sum(),
        faults: h.faults.len(),
        lost: v.lost.len(),
        anomalies: v.anomalies,
        detected: h.detected.len(),
        refusals: h.refusals.clone(),
        not_converged: v.not_converged,
        inconclusive: v.inconclusive,
        ended_without_quorum: h.final_state.is_none(),
        ..RunSummary::default()
    };
    for o in &h.ops {
        match o.outcome {
            Outcome::Ok(_) => s.ok += 1,
            Outcome::Fail(_) => s.failed += 1,
            Outcome::Unknown(_) => s.unknown += 1,
        }
    }
    for f in &h.faults {
        if f.kind.starts_with("wal-") && !f.note.contains("nothing was damaged") {
            s.corrupted += f.targets.len();
        }
        let d = unavailable(h, f);
        if f.kind.starts_with("kill-leader") {
            s.after_leader_kill.extend(d);
        } else if f.kind.starts_with("partition-") {
            s.after_partition.extend(d);
        }
    }
    s
}

fn longest(v: &[f64]) -> String {
    match v
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    {
        Some(m) => format!("{m:.1} s (longest of {})", v.len()),
        None => "none measured".into(),
    }
}

/// One line per run.
pub fn run_line(run: usize, s: &RunSummary) -> String {
    if let Some(e) = &s.harness_error {
        return format!("run {run} (seed {}): harness error: {e}", s.seed);
    }
    format!(
        "run {run} (seed {}): {} ops ({} ok, {} failed, {} unknown), {} watch events, {} faults, {} anomalies, {} lost, corruption detected {}/{}{}{} -> {}",
        s.seed,
        s.ops,
        s.ok,
        s.failed,
        s.unknown,
        s.events,
        s.faults,
        s.anomalies.len(),
        s.lost,
        s.detected,
        s.corrupted,
        if s.ended_without_quorum { ", ended without quorum" } else { "" },
        if s.not_converged.is_empty() { String::new() } else { format!(", not converged: {}", s.not_converged.join("; ")) },
        if s.failed() { "FAILED" } else { "ok" }
    )
}

/// The closing figures over every run.
pub fn totals(server: &str, runs: &[RunSummary]) -> String {
    let sum = |f: &dyn Fn(&RunSummary) -> usize| runs.iter().map(f).sum::<usize>();
    let all = |f: &dyn Fn(&RunSummary) -> &Vec<f64>| {
        runs.iter().flat_map(f).copied().collect::<Vec<f64>>()
    };
    let failed: Vec<String> = runs
        .iter()
        .filter_map(|r| r.kept.as_ref().map(|p| p.display().to_string()))
        .collect();
    let mut out = format!(
        "==> {server}: {} runs\n\
         runs: {}\n\
         operations: {} ({} ok, {} failed, {} unknown outcome); watch events: {}\n\
         faults: {}\n\
         anomalies: {}\n\
         acknowledged writes lost: {}\n\
         WAL corruption detected (member refused to start): {} of {} damaged members\n\
         runs ended without quorum after detected corruption: {}\n\
         exits or refusals with no corruption injected: {}\n\
         runs whose members did not converge: {}\n\
         keys whose linearizability was undecided: {}\n\
         harness errors: {}\n\
         longest unavailability after a leader kill: {}\n\
         longest unavailability after a partition: {}\n",
        runs.len(),
        runs.len(),
        sum(&|r| r.ops),
        sum(&|r| r.ok),
        sum(&|r| r.failed),
        sum(&|r| r.unknown),
        sum(&|r| r.events),
        sum(&|r| r.faults),
        sum(&|r| r.anomalies.len()),
        sum(&|r| r.lost),
        sum(&|r| r.detected),
        sum(&|r| r.corrupted),
        sum(&|r| usize::from(r.ended_without_quorum)),
        sum(&|r| r.refusals.len()),
        sum(&|r| usize::from(!r.not_converged.is_empty())),
        sum(&|r| r.inconclusive.len()),
        sum(&|r| usize::from(r.harness_error.is_some())),
        longest(&all(&|r| &r.after_leader_kill)),
        longest(&all(&|r| &r.after_partition)),
    );
    if !failed.is_empty() {
        out.push_str(&format!(
            "failing runs' histories: {} (check again: cairn-chaos check DIR)\n",
            failed.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::summarize;
    use crate::check::testkit::H;
    use crate::check::Verdict;
    use crate::history::FaultRecord;

    #[test]
    fn unavailability_runs_from_the_fault_to_the_first_write_sent_after_it_that_succeeded() {
        let mut h = H::new();
        // In flight when the leader died (not counted), refused, then the first success.
        h.put(0, "x", "a", (900_000, 3_000_000), 2)
            .put_unknown(1, "x", "b", (1_100_000, 2_100_000))
            .put(1, "x", "c", (2_200_000, 3_500_000), 3)
            .put(0, "x", "d", (3_600_000, 3_700_000), 4);
        h.h.faults.push(FaultRecord {
            kind: "kill-leader-restart-now".into(),
            targets: vec!["m0".into()],
            start: 1_000_000,
            end: 1_200_000,
            note: String::new(),
        });
        let s = summarize(&h.h, Verdict::default());
        assert_eq!(s.after_leader_kill, vec![2.5]);
        assert!(s.after_partition.is_empty());
    }
}
