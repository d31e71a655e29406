//! Per-process memory and CPU figures read from /proc, the same numbers `ps` and `top` show.

use anyhow::{Context, Result};

/// Resident set size now (`VmRSS`) and its peak so far (`VmHWM`), in KiB.
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Result<u64> {
        let line = text.lines().find(|l| l.starts_with(name));
        let value = line.and_then(|l| l.split_whitespace().nth(1));
        value
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in {path}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) the process has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may contain spaces and is wrapped in parentheses: count fields after it.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("malformed {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (utime, stime) = (num(11), num(12));
    utime
        .zip(stime)
        .map(|(u, s)| u + s)
        .with_context(|| format!("no utime/stime in {path}"))
}

/// Total CPU seconds used by all `pids`.
pub fn cpu_seconds(pids: &[u32], ticks_per_second: f64) -> Result<f64> {
    let ticks = pids.iter().map(|&p| cpu_ticks(p)).sum::<Result<u64>>()?;
    Ok(ticks as f64 / ticks_per_second)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), 100 on every Linux we run on.
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_rss_and_cpu_figures() {
        let pid = std::process::id();
        let (rss, hwm) = rss_kib(pid).expect("own /proc status");
        assert!(rss > 0 && hwm >= rss, "rss {rss} hwm {hwm}");
        // Burn a little CPU so the tick counter is readable and non-decreasing.
        let before = cpu_ticks(pid).expect("own /proc stat");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x != 1);
        assert!(cpu_ticks(pid).expect("own /proc stat") >= before);
    }
}
