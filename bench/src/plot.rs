//! The put curve as a PNG: ops/s and p99 latency against clients, one line per system, drawn by
//! gnuplot (Debian's gnuplot-nox). gnuplot rather than the plotters crate: no crates and no font
//! libraries to build on a 2-core machine, and the data and script it is given stay readable (both are
//! written next to the work dir's results, so the picture can be redrawn or restyled without a rerun).

use crate::report::SystemRun;
use anyhow::{bail, Context, Result};
use std::fmt::Write;
use std::path::Path;

/// gnuplot's data: one block per system (`clients ops/s p99-ms`), blocks separated by two blank lines.
pub fn data(runs: &[SystemRun]) -> String {
    let mut s = String::new();
    for run in runs {
        let _ = writeln!(s, "# {}", run.system);
        let mut points: Vec<_> = run
            .rows
            .iter()
            .filter_map(|r| r.curve.map(|c| (c, r.ops_per_sec(), r.p(0.99))))
            .collect();
        points.sort_by_key(|p| p.0);
        for (c, ops, p99) in points {
            let _ = writeln!(s, "{c} {ops:.1} {p99:.3}");
        }
        s.push_str("\n\n");
    }
    s
}

/// The gnuplot script that draws `data_file` into `png`: two panels side by side, log-scaled clients.
pub fn script(runs: &[SystemRun], data_file: &Path, png: &Path, title: &str) -> String {
    let quote = |p: &Path| p.display().to_string().replace('\'', "");
    let lines = |col: u32| {
        runs.iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "'{}' index {i} using 1:{col} with linespoints lw 2 pt 7 title '{}'",
                    quote(data_file),
                    r.system.replace('\'', "")
                )
            })
            .collect::<Vec<_>>()
            .join(", \\\n  ")
    };
    format!(
        "set terminal pngcairo size 1400,560 font 'sans,11'\n\
         set output '{png}'\n\
         set multiplot layout 1,2 title '{title}'\n\
         set logscale x 2\n\
         set xlabel 'concurrent clients'\n\
         set grid\n\
         set key top left\n\
         set title 'put throughput (higher is better)'\n\
         set ylabel 'ops/s'\n\
         set yrange [0:*]\n\
         plot {ops}\n\
         set title 'put p99 latency (lower is better)'\n\
         set ylabel 'p99 ms'\n\
         set logscale y 10\n\
         set yrange [*:*]\n\
         plot {p99}\n\
         unset multiplot\n",
        png = quote(png),
        title = title.replace('\'', ""),
        ops = lines(2),
        p99 = lines(3),
    )
}

/// Writes the data and script into `work` and runs gnuplot to draw `png`.
pub fn draw(runs: &[SystemRun], work: &Path, png: &Path, title: &str) -> Result<()> {
    let data_file = work.join("put-curve.dat");
    let script_file = work.join("put-curve.gp");
    std::fs::write(&data_file, data(runs))
        .with_context(|| format!("writing {}", data_file.display()))?;
    std::fs::write(&script_file, script(runs, &data_file, png, title))
        .with_context(|| format!("writing {}", script_file.display()))?;
    let out = std::process::Command::new("gnuplot")
        .arg(&script_file)
        .output()
        .context("running gnuplot (apt-get install gnuplot-nox; scripts/deps.sh bench)")?;
    if !out.status.success() {
        bail!(
            "gnuplot {} failed: {}",
            script_file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::data;
    use crate::report::{Row, SystemRun};
    use crate::workload::Outcome;
    use std::time::Duration;

    fn row(clients: Option<usize>, ops: u64, lat_ms: u32) -> Row {
        Row {
            workload: format!("put {clients:?}"),
            outcome: Outcome {
                ops,
                elapsed: Duration::from_secs(1),
                latencies: vec![lat_ms * 1000; 100],
                ..Outcome::default()
            },
            cpu_seconds: 0.0,
            curve: clients,
        }
    }

    #[test]
    fn only_curve_rows_become_points_in_client_order() {
        let mut run = SystemRun::new("cairn".into());
        run.rows = vec![
            row(Some(16), 300, 5),
            row(None, 999, 1),
            row(Some(1), 100, 2),
        ];
        assert_eq!(data(&[run]), "# cairn\n1 100.0 2.000\n16 300.0 5.000\n\n\n");
    }
}
