//! cairn-bench: drives cairn, etcd 3.4 and etcd 3.5 clusters with the same etcd v3 workloads and prints
//! a Markdown comparison (see docs/benchmark.md); `--scale` runs the scale suite instead.

mod auth;
mod fsync_floor;
mod ledger;
mod plot;
mod procstat;
mod report;
mod scale;
mod steps;
mod sut;
mod workload;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use sut::Sut;

/// Benchmark cairn against etcd 3.4 and 3.5: same topology (3 members, mutual TLS), same workloads,
/// one run, the systems interleaved workload by workload.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Systems to run: etcd (3.4, --etcd), etcd35 (3.5, --etcd35), cairn, cairn-before (--cairn-before).
    #[arg(long, value_delimiter = ',', default_value = "etcd,etcd35,cairn")]
    systems: Vec<String>,
    /// The etcd 3.4 server binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd: PathBuf,
    /// The etcd 3.5 server binary (scripts/etcd35.sh fetches it there).
    #[arg(long, default_value = "~/.cache/cairn/etcd-3.5/usr/bin/etcd")]
    etcd35: String,
    /// The cairn server binary.
    #[arg(long, default_value = "target/release/cairn")]
    cairn: PathBuf,
    /// Another cairn build, run as system `cairn-before` beside `cairn` (an A/B of two builds in
    /// one interleaved run; cairn's column is compared with it like with etcd's).
    #[arg(long)]
    cairn_before: Option<PathBuf>,
    /// The etcdctl binary, for `check perf`.
    #[arg(long, default_value = "/usr/bin/etcdctl")]
    etcdctl: PathBuf,
    /// Length of each workload, e.g. 5s, 500ms, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent clients of the put workloads (1 runs three ways: all endpoints, leader, follower);
    /// these are the points of the plot.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,128,512,1024")]
    put_clients: Vec<usize>,
    /// Concurrent clients of the get workloads.
    #[arg(long, default_value_t = 128)]
    get_clients: usize,
    /// Concurrent clients of the lease churn workload.
    #[arg(long, default_value_t = 16)]
    lease_clients: usize,
    /// Concurrent clients of the auth off / on puts.
    #[arg(long, default_value_t = 128)]
    auth_clients: usize,
    /// Rounds of the auth comparison (auth off, certificate user, token user, back to back in each):
    /// the report gives each mode's median, spread and the per-round ratios to auth off.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    auth_rounds: u32,
    /// gRPC connections (TLS channels) the clients share, spread over the members (etcd benchmark --conns).
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
    /// Watch streams in the fan-out workload.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Puts per second of the fan-out writer.
    #[arg(long, default_value_t = 50)]
    watch_rate: u32,
    /// `etcdctl check perf` loads to run against each system (s, m, l); each takes about a minute.
    #[arg(long, value_delimiter = ',')]
    check_perf: Vec<String>,
    /// Workloads to run (put, get, watch, lease, auth); the others are skipped, e.g. `--workloads put`
    /// while profiling the write path. auth switches auth on near the end and leaves it on.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "put,get,watch,lease,auth"
    )]
    workloads: Vec<String>,
    /// Where data dirs, certs and logs go (the fsync floor is measured here too).
    #[arg(long, default_value = "target/bench-work")]
    work_dir: PathBuf,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run the scale suite instead (dataset with history, restart, learner, compaction, defrag, big
    /// ranges, memory, disk, 10k watchers, 1 MiB values); scripts/bench.sh --scale.
    #[arg(long)]
    scale: bool,
    /// Keys of the scale suite's dataset (1 KiB values; 1M ≈ 1 GiB).
    #[arg(long, default_value_t = 1_000_000)]
    scale_keys: u64,
    /// Watchers of the scale suite's fan-out.
    #[arg(long, default_value_t = 10_000)]
    scale_watchers: usize,
    /// Steps of the scale suite to run, in the suite's order (load always runs first): e.g.
    /// `--scale-steps big-values,learner` to look at one cost without the whole suite. Default: all.
    #[arg(long, value_delimiter = ',')]
    scale_steps: Vec<String>,
    /// Draw the put curve (ops/s and p99 against clients) into this PNG with gnuplot; the report links
    /// it by file name, so put it next to --out.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 10s, 500ms or 1m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit '{unit}' in '{s}': use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("cairn-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns Ok(false) when a system failed or lost an acknowledged write.
async fn run(cli: Cli) -> Result<bool> {
    let etcd35 = sut::expand_home(&cli.etcd35);
    let systems = sut::resolve(
        &cli.systems,
        &cli.etcd,
        &etcd35,
        &cli.cairn,
        cli.cairn_before.as_deref(),
    )?;
    if let Some(w) = cli
        .workloads
        .iter()
        .find(|w| !["put", "get", "watch", "lease", "auth"].contains(&w.as_str()))
    {
        bail!("--workloads: unknown workload '{w}': use put, get, watch, lease and/or auth");
    }
    if cli.conns == 0 || cli.put_clients.contains(&0) || cli.keyspace == 0 {
        bail!("--conns, --put-clients and --keyspace must be at least 1");
    }
    let _ = std::fs::remove_dir_all(&cli.work_dir);
    std::fs::create_dir_all(&cli.work_dir)
        .with_context(|| format!("creating --work-dir {}", cli.work_dir.display()))?;
    let work = cli
        .work_dir
        .canonicalize()
        .context("resolving --work-dir")?;
    if cli.scale {
        let opts = scale::Options {
            keys: cli.scale_keys,
            duration: cli.duration,
            watchers: cli.scale_watchers,
            steps: scale::chosen_steps(&cli.scale_steps)?,
            conns: cli.conns,
            work,
            out: cli.out.clone(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        };
        return scale::run(&systems, &opts).await;
    }
    let load_at_start = loadavg();
    eprintln!("==> fsync floor in {}", work.display());
    let mut fsync_us = fsync_floor::measure(&work, 300)?;
    fsync_us.sort_unstable();

    let mut suts = Vec::new();
    for sys in &systems {
        suts.push(Sut::start(sys, &work, cli.conns).await?);
    }
    // Let elections and connection set-up settle before taking the idle memory figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in &mut suts {
        s.note_idle_rss()?;
    }
    let settings = steps::Settings {
        duration: cli.duration,
        keyspace: cli.keyspace,
        get_clients: cli.get_clients,
        lease_clients: cli.lease_clients,
        auth_clients: cli.auth_clients,
        conns: cli.conns,
        watchers: cli.watchers,
        watch_rate: cli.watch_rate,
        etcdctl: &cli.etcdctl,
    };
    let plan = steps::plan(
        &cli.workloads,
        &cli.put_clients,
        &cli.check_perf,
        cli.auth_rounds,
    );
    let n = suts.len();
    for (k, step) in plan.iter().enumerate() {
        // Rotate who goes first, so no system always runs right after the same other one.
        for j in 0..n {
            let s = &mut suts[(j + k) % n];
            if s.run.failure.is_some() {
                continue;
            }
            if let Err(e) = steps::run(&settings, s, step).await {
                eprintln!("{}: {e:#}", s.run.system);
                s.run.failure = Some(format!("{step:?}: {e:#}"));
            }
        }
    }
    let mut runs: Vec<report::SystemRun> = suts.into_iter().map(|s| s.run).collect();
    for run in &mut runs {
        for row in &mut run.rows {
            row.outcome.latencies.sort_unstable();
        }
    }
    let mut plotted = None;
    if let Some(png) = &cli.plot {
        let title = format!("put, 256-byte values, 3 members, mutual TLS ({})", date());
        match plot::draw(&runs, &work, png, &title) {
            Ok(()) => plotted = png.file_name().map(|f| f.to_string_lossy().into_owned()),
            Err(e) => eprintln!("cairn-bench: no plot: {e:#}"),
        }
    }
    let ctx = report::Context {
        date: date(),
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model: cpu_model(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        fsync_us,
        load: (load_at_start, loadavg()),
        duration_s: cli.duration.as_secs_f64(),
        plot: plotted,
    };
    let text = report::render(&ctx, &runs);
    println!("{text}");
    if let Some(out) = &cli.out {
        // Hand-written notes above the marker survive a re-run; the results below it are replaced.
        let previous = std::fs::read_to_string(out).unwrap_or_default();
        let notes = previous
            .split_once(report::MARKER)
            .map(|(n, _)| n)
            .unwrap_or("");
        let body = format!("{notes}{}\n\n{text}", report::MARKER);
        std::fs::write(out, body).with_context(|| format!("writing --out {}", out.display()))?;
    }
    let durable = runs.iter().all(|r| {
        r.verdicts
            .iter()
            .all(|(_, v)| v.missing == 0 && v.wrong == 0)
    });
    Ok(durable && runs.iter().all(|r| r.failure.is_none()))
}

/// The three load averages of /proc/loadavg.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Now, in UTC, to the minute.
pub fn date() -> String {
    command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let line = info.lines().find(|l| l.starts_with("model name"));
    line.and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
