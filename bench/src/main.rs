//! cairn-bench: drives a cairn and an etcd 3.4 cluster with the same etcd v3 workloads and prints a
//! Markdown comparison (see docs/benchmark.md).

mod fsync_floor;
mod ledger;
mod procstat;
mod report;
mod workload;

use anyhow::{bail, Context, Result};
use cairn_tests::cluster::{Cluster, Flavor, PkiSource};
use cairn_tests::grpc::connect;
use clap::Parser;
use etcd_client::Client;
use report::{Row, SystemRun};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Benchmark cairn against etcd 3.4: same topology (3 members, mutual TLS), same workloads, one run.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Systems to run, in order (etcd, cairn).
    #[arg(long, value_delimiter = ',', default_value = "etcd,cairn")]
    systems: Vec<String>,
    /// The etcd server binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd: PathBuf,
    /// The cairn server binary.
    #[arg(long, default_value = "target/release/cairn")]
    cairn: PathBuf,
    /// The etcdctl binary, for `check perf`.
    #[arg(long, default_value = "/usr/bin/etcdctl")]
    etcdctl: PathBuf,
    /// Length of each workload, e.g. 5s, 500ms, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent clients of the put workloads.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128,1024")]
    put_clients: Vec<usize>,
    /// Concurrent clients of the get workloads.
    #[arg(long, default_value_t = 128)]
    get_clients: usize,
    /// Concurrent clients of the lease churn workload.
    #[arg(long, default_value_t = 16)]
    lease_clients: usize,
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
    /// Workloads to run (put, get, watch, lease); the others are skipped, e.g. `--workloads put` while
    /// profiling the write path.
    #[arg(long, value_delimiter = ',', default_value = "put,get,watch,lease")]
    workloads: Vec<String>,
    /// Where data dirs, certs and logs go (the fsync floor is measured here too).
    #[arg(long, default_value = "target/bench-work")]
    work_dir: PathBuf,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
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
    let mut flavors = Vec::new();
    for name in &cli.systems {
        let (flavor, bin) = match name.as_str() {
            "etcd" => (Flavor::Etcd, &cli.etcd),
            "cairn" => (Flavor::Cairn, &cli.cairn),
            other => bail!("--systems: unknown system '{other}': use etcd and/or cairn"),
        };
        if !bin.is_file() {
            bail!(
                "--{name}: {} does not exist (build it, or pass its path)",
                bin.display()
            );
        }
        flavors.push((flavor, bin.clone()));
    }
    if let Some(w) = cli
        .workloads
        .iter()
        .find(|w| !["put", "get", "watch", "lease"].contains(&w.as_str()))
    {
        bail!("--workloads: unknown workload '{w}': use put, get, watch and/or lease");
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
    eprintln!("==> fsync floor in {}", work.display());
    let mut fsync_us = fsync_floor::measure(&work, 300)?;
    fsync_us.sort_unstable();

    let mut runs = Vec::new();
    for (flavor, bin) in flavors {
        let mut run = SystemRun {
            system: flavor.name(),
            rows: Vec::new(),
            rss_kib: Vec::new(),
            verdicts: Vec::new(),
            check_perf: Vec::new(),
            failure: None,
        };
        if let Err(e) = bench_system(&cli, flavor, &bin, &work, &mut run).await {
            eprintln!("{}: {e:#}", flavor.name());
            run.failure = Some(format!("{e:#}"));
        }
        runs.push(run);
    }
    for run in &mut runs {
        for row in &mut run.rows {
            row.outcome.latencies.sort_unstable();
        }
    }
    let ctx = report::Context {
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model: cpu_model(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        fsync_us,
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

async fn bench_system(
    cli: &Cli,
    flavor: Flavor,
    bin: &std::path::Path,
    work: &std::path::Path,
    run: &mut SystemRun,
) -> Result<()> {
    let name = flavor.name();
    eprintln!("==> {name}: starting 3 members");
    let mut cluster = Cluster::builder(flavor, 3)
        .binary(bin)
        .dir(work.join(name))
        .token(format!("bench-{name}"))
        .pki(PkiSource::Rcgen)
        .create()?;
    cluster.start_all()?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let endpoints: Vec<String> = cluster
        .members
        .iter()
        .map(|m| m.client_url.clone())
        .collect();
    // Let elections and connection set-up settle before taking the idle memory figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids = cluster.pids();
    let idle: Vec<u64> = pids
        .iter()
        .map(|&p| procstat::rss_kib(p).map(|r| r.0))
        .collect::<Result<_>>()?;
    let mut pool = Vec::with_capacity(cli.conns);
    for i in 0..cli.conns {
        pool.push(connect(&cluster.pki, &endpoints[i % endpoints.len()]).await?);
    }
    let hz = procstat::ticks_per_second();
    let ledger = Arc::new(ledger::Ledger::default());
    let d = cli.duration;
    let conns = |clients: usize| &pool[..clients.min(pool.len())];

    macro_rules! measure {
        ($label:expr, $body:expr) => {{
            eprintln!("==> {name}: {}", $label);
            let cpu0 = procstat::cpu_seconds(&pids, hz)?;
            let outcome = $body;
            let cpu_seconds = procstat::cpu_seconds(&pids, hz)? - cpu0;
            eprintln!(
                "    {} ops, {} errors in {:.1?}",
                outcome.ops, outcome.errors, outcome.elapsed
            );
            run.rows.push(Row {
                workload: $label,
                outcome,
                cpu_seconds,
            });
        }};
    }
    let wants = |w: &str| cli.workloads.iter().any(|x| x == w);
    for &c in cli.put_clients.iter().filter(|_| wants("put")) {
        if c == 1 {
            // Which member leads is chance, and a lone client's latency depends on it (a follower
            // forwards): measure both ways so runs compare like with like.
            let lead = cluster.leader_index().await?;
            let n = endpoints.len();
            for (how, at) in [("via the leader", lead), ("via a follower", (lead + 1) % n)] {
                let one = [cluster.client(at).await?];
                measure!(
                    format!("put, 1 client {how}"),
                    workload::put(&one, 1, d, cli.keyspace, ledger.clone()).await
                );
            }
            continue;
        }
        measure!(
            format!("put, {c} clients"),
            workload::put(conns(c), c, d, cli.keyspace, ledger.clone()).await
        );
    }
    eprintln!("==> {name}: reading back every acknowledged put");
    run.verdicts
        .push(("live".into(), ledger.verify(&mut pool[0].clone()).await?));
    let g = cli.get_clients;
    if wants("get") {
        measure!(
            format!("get linearizable, {g} clients"),
            workload::get(conns(g), g, d, cli.keyspace, false).await
        );
        measure!(
            format!("get serializable, {g} clients"),
            workload::get(conns(g), g, d, cli.keyspace, true).await
        );
    }
    let w = cli.watchers;
    if wants("watch") {
        measure!(
            format!("watch fan-out, 1 writer × {w} watchers"),
            workload::watch_fanout(&pool, w, d, cli.watch_rate).await?
        );
    }
    let l = cli.lease_clients;
    if wants("lease") {
        measure!(
            format!("lease grant+keepalive+revoke, {l} clients"),
            workload::lease_churn(conns(l), l, d).await
        );
    }
    // scripts/bench.sh passes `--check-perf s` and callers may add their own list: run each load once.
    let mut loads: Vec<&String> = Vec::new();
    cli.check_perf.iter().for_each(|l| {
        if !loads.contains(&l) {
            loads.push(l)
        }
    });
    for load in loads {
        eprintln!("==> {name}: etcdctl check perf --load={load} (about a minute)");
        run.check_perf
            .push((load.clone(), check_perf(cli, &cluster, load)));
    }
    run.rss_kib = pids
        .iter()
        .zip(&idle)
        .map(|(&p, &i)| procstat::rss_kib(p).map(|(now, peak)| (i, now, peak)))
        .collect::<Result<_>>()?;

    // kill -9 every member, restart, and read everything back again: acknowledged means on disk.
    eprintln!("==> {name}: kill -9 all members, restart, read back again");
    drop(pool);
    cluster.restart_all()?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let mut client: Client = cluster.client(0).await?;
    run.verdicts.push((
        "after kill -9 of all members and restart".into(),
        ledger.verify(&mut client).await?,
    ));
    Ok(())
}

fn check_perf(cli: &Cli, cluster: &Cluster, load: &str) -> String {
    let pki = &cluster.pki;
    let out = std::process::Command::new(&cli.etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", cluster.endpoints()))
        .arg(format!("--cacert={}", pki.ca.display()))
        .arg(format!("--cert={}", pki.admin.crt.display()))
        .arg(format!("--key={}", pki.admin.key.display()))
        .args(["check", "perf", &format!("--load={load}")])
        .output();
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            format!("{}\n({})", without_progress_bar(&text), o.status)
        }
        Err(e) => format!("could not run {}: {e}", cli.etcdctl.display()),
    }
}

/// Drops `check perf`'s progress-bar frames ("12 / 60  20.00% 00m48s"), keeping its verdict lines.
fn without_progress_bar(text: &str) -> String {
    let bar = |l: &str| l.contains(" / 60") && l.contains('%');
    let lines: Vec<&str> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty() && !bar(l))
        .collect();
    lines.join("\n")
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
    fn check_perf_output_keeps_only_the_verdict() {
        let raw = " 0 / 60    0.00% 1 / 60    1.67% 00m59s\r60 / 60  100.00% 1m0s\nPASS: Throughput is 150 writes/s\nPASS\n";
        assert_eq!(
            super::without_progress_bar(raw),
            "PASS: Throughput is 150 writes/s\nPASS"
        );
    }

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
