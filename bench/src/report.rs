//! The Markdown report: one table of workloads per system, ratios cairn/etcd, memory, durability.

use crate::ledger::Verdict;
use crate::workload::Outcome;
use std::fmt::Write;

/// One workload's figures for one system.
pub struct Row {
    pub workload: String,
    pub outcome: Outcome,
    /// CPU seconds used by all members during the workload.
    pub cpu_seconds: f64,
}

/// Everything measured for one system.
pub struct SystemRun {
    pub system: &'static str,
    pub rows: Vec<Row>,
    /// Per member: (idle VmRSS, peak VmHWM) in KiB.
    pub rss_kib: Vec<(u64, u64)>,
    pub verdicts: Vec<(String, Verdict)>,
    pub check_perf: Vec<(String, String)>,
    /// Set when the run stopped early.
    pub failure: Option<String>,
}

/// The `q` quantile (0..1) of sorted latencies, in ms.
fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[idx]) / 1000.0
}

impl Row {
    fn ops_per_sec(&self) -> f64 {
        self.outcome.ops as f64 / self.outcome.elapsed.as_secs_f64().max(1e-9)
    }
    fn p(&self, q: f64) -> f64 {
        quantile_ms(&self.outcome.latencies, q)
    }
    fn cpu_ms_per_op(&self) -> f64 {
        self.cpu_seconds * 1000.0 / self.outcome.ops.max(1) as f64
    }
}

/// Header facts: date, machine, the fsync floor.
pub struct Context {
    pub date: String,
    pub nproc: usize,
    pub cpu_model: String,
    pub command: String,
    pub fsync_us: Vec<u32>,
}

/// Renders the whole report. Latency vectors must be sorted.
pub fn render(ctx: &Context, runs: &[SystemRun]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmark: cairn vs etcd 3.4\n");
    let _ = writeln!(
        s,
        "- date: {}\n- machine: {} cores, {}",
        ctx.date, ctx.nproc, ctx.cpu_model
    );
    let _ = writeln!(s, "- topology: 3 members per system on loopback, mutual TLS on client and peer ports, data dirs on the same disk, load generator on the same machine");
    let _ = writeln!(s, "- command: `{}`", ctx.command);
    let f = &ctx.fsync_us;
    let _ = writeln!(
        s,
        "- physical floor: 4 KiB write + fdatasync in the data dirs' file system: p50 {:.3} ms, p99 {:.3} ms ({} rounds)\n",
        quantile_ms(f, 0.5),
        quantile_ms(f, 0.99),
        f.len()
    );
    let _ = writeln!(s, "| workload | system | ops/s | p50 ms | p99 ms | p99.9 ms | CPU ms/op (all members) | errors | note |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---|");
    let workloads: Vec<&str> = runs
        .iter()
        .flat_map(|r| r.rows.iter().map(|w| w.workload.as_str()))
        .fold(Vec::new(), |mut v, w| {
            if !v.contains(&w) {
                v.push(w);
            }
            v
        });
    for w in &workloads {
        for run in runs {
            if let Some(r) = run.rows.iter().find(|r| r.workload == *w) {
                let _ = writeln!(
                    s,
                    "| {w} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.3} | {} | {} |",
                    run.system,
                    r.ops_per_sec(),
                    r.p(0.5),
                    r.p(0.99),
                    r.p(0.999),
                    r.cpu_ms_per_op(),
                    r.outcome.errors,
                    r.outcome.note
                );
            }
        }
    }
    let etcd = runs.iter().find(|r| r.system == "etcd");
    let cairn = runs.iter().find(|r| r.system == "cairn");
    if let (Some(e), Some(c)) = (etcd, cairn) {
        let _ = writeln!(s, "\n## Ratio cairn / etcd\n\n| workload | ops/s | p99 latency | CPU per op |\n|---|---:|---:|---:|");
        for w in &workloads {
            let pair = (
                e.rows.iter().find(|r| r.workload == *w),
                c.rows.iter().find(|r| r.workload == *w),
            );
            if let (Some(er), Some(cr)) = pair {
                let _ = writeln!(
                    s,
                    "| {w} | {:.2}× | {:.2}× | {:.2}× |",
                    cr.ops_per_sec() / er.ops_per_sec(),
                    cr.p(0.99) / er.p(0.99),
                    cr.cpu_ms_per_op() / er.cpu_ms_per_op()
                );
            }
        }
    }
    let _ = writeln!(s, "\n## Memory per member (MiB)\n\n| system | member | idle RSS | peak RSS (VmHWM) |\n|---|---|---:|---:|");
    for run in runs {
        for (i, (idle, peak)) in run.rss_kib.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {} | m{i} | {:.1} | {:.1} |",
                run.system,
                *idle as f64 / 1024.0,
                *peak as f64 / 1024.0
            );
        }
    }
    let _ = writeln!(s, "\n## Durability: every acknowledged put read back\n");
    for run in runs {
        for (when, v) in &run.verdicts {
            let _ = writeln!(
                s,
                "- {} ({when}): {} keys with acknowledged puts, {} intact, {} missing, {} wrong value/revision",
                run.system, v.keys, v.intact, v.missing, v.wrong
            );
        }
        if let Some(f) = &run.failure {
            let _ = writeln!(s, "- {}: run stopped early: {f}", run.system);
        }
    }
    for run in runs {
        for (load, out) in &run.check_perf {
            let _ = writeln!(
                s,
                "\n## `etcdctl check perf --load={load}` against {}\n\n```\n{}\n```",
                run.system,
                out.trim_end()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::quantile_ms;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let lat: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(quantile_ms(&lat, 0.5), 500.0);
        assert_eq!(quantile_ms(&lat, 0.99), 990.0);
        assert_eq!(quantile_ms(&lat, 0.999), 999.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }
}
