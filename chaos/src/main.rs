//! cairn-chaos: runs a cluster (cairn, or etcd 3.4 as the control) through faults while clients and
//! watchers record what they saw, then checks each history for linearizability, etcd's revision
//! model, watch guarantees and convergence. See README "Fault injection".

mod check;
mod disk;
mod history;
mod k8s;
mod nemesis;
mod net;
mod record;
mod report;
mod run;
mod schedule;
mod watchers;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cairn_tests::cluster::Flavor;
use clap::{Args, Parser, Subcommand, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::report::RunSummary;
use crate::schedule::Timing;

/// Fault injection against cairn (or etcd) with checked histories.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run clusters through seeded fault schedules and check what the clients saw.
    Run(RunArgs),
    /// Check saved histories again (a run directory or its history.json).
    Check(CheckArgs),
    /// Run the API-server-like workload (cairn-k8s-load's) through leader kills, partitions of the
    /// member its watches are on, and compactions during lists; check it.
    K8s(K8sArgs),
}

/// Which server to run.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Server {
    Cairn,
    Etcd,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Number of runs (each a fresh cluster).
    #[arg(long)]
    runs: Option<usize>,
    /// Seed of the first run (run k uses seed + k); default: from the clock, printed.
    #[arg(long)]
    seed: Option<u64>,
    /// The server under test.
    #[arg(long, value_enum, default_value = "cairn")]
    server: Server,
    /// The CI schedule: every fault kind once over 3 runs (unless --runs), the two-member WAL
    /// corruption last.
    #[arg(long)]
    short: bool,
    /// Faults per run (long schedule).
    #[arg(long, default_value_t = 6)]
    faults: usize,
    /// Only these fault kinds (names as printed, e.g. partition-isolate-leader,kill-all-restart-now).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Workload clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Members' --election-timeout in ms (heartbeat a tenth). Generous, for a busy machine.
    #[arg(long, default_value_t = 2000)]
    election_timeout: u64,
    /// Server binary (default: target/debug/cairn, or /usr/bin/etcd).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Where run directories go; a run that fails keeps its directory (history.json, logs).
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// Keep every run's directory, not only failing ones.
    #[arg(long)]
    keep: bool,
}

#[derive(Args, Debug)]
struct K8sArgs {
    /// Seed of the faults and the writers' choices; default: from the clock, printed.
    #[arg(long)]
    seed: Option<u64>,
    /// The server under test.
    #[arg(long, value_enum, default_value = "cairn")]
    server: Server,
    /// Server binary (default: target/debug/cairn, or /usr/bin/etcd).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The CI schedule: each fault once, a small workload (about a minute).
    #[arg(long)]
    short: bool,
    /// Faults (long schedule).
    #[arg(long, default_value_t = 8)]
    faults: usize,
    /// Members' --election-timeout in ms (heartbeat a tenth).
    #[arg(long, default_value_t = 1000)]
    election_timeout: u64,
    /// Resource kinds (one prefix watch each; long schedule).
    #[arg(long, default_value_t = 5)]
    resources: usize,
    /// Objects per resource kind (long schedule).
    #[arg(long, default_value_t = 500)]
    objects: usize,
    /// Concurrent writers (long schedule).
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Single-object watches (long schedule).
    #[arg(long, default_value_t = 100)]
    small_watches: usize,
    /// List page size (long schedule).
    #[arg(long, default_value_t = 100)]
    page: i64,
    /// Where the run directory goes; kept when the run fails.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// Keep the run directory also when it passes.
    #[arg(long)]
    keep: bool,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Run directories or history.json files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run_command(a),
        Command::Check(a) => check_command(a),
        Command::K8s(a) => k8s_command(a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("cairn-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn check_command(a: CheckArgs) -> Result<bool> {
    let mut clean = true;
    for p in &a.paths {
        let h = run::load(p)?;
        let v = check::check(&h, check::SEARCH_BUDGET);
        let s = report::summarize(&h, v);
        println!("{}: {}", p.display(), report::run_line(0, &s));
        for (checker, a) in &s.anomalies {
            println!("  [{checker}] {a}");
        }
        clean &= !s.failed();
    }
    Ok(clean)
}

/// The server's flavour and its binary (canonical), and `out` created and canonical.
fn server_and_out(
    server: Server,
    binary: &Option<PathBuf>,
    out: &std::path::Path,
) -> Result<(Flavor, PathBuf, PathBuf)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("cairn-chaos needs root (network namespaces, nftables, tmpfs mounts)");
    }
    let flavor = match server {
        Server::Cairn => Flavor::Cairn,
        Server::Etcd => Flavor::Etcd,
    };
    let binary = match binary {
        Some(b) => b.clone(),
        None => flavor.binary()?,
    };
    let binary = binary
        .canonicalize()
        .with_context(|| format!("--binary {}", binary.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating --out {}", out.display()))?;
    Ok((flavor, binary, out.canonicalize()?))
}

/// The seed given, or one from the clock.
fn seed_or_clock(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    })
}

fn k8s_command(a: K8sArgs) -> Result<bool> {
    let (flavor, binary, out) = server_and_out(a.server, &a.binary, &a.out)?;
    let seed = seed_or_clock(a.seed);
    let timing = Timing {
        election_ms: a.election_timeout,
    };
    let load = if a.short {
        cairn_tests::apiserver::Options::short()
    } else {
        cairn_tests::apiserver::Options {
            resources: a.resources,
            objects: a.objects,
            writers: a.writers,
            small_watches: a.small_watches,
            page: a.page,
            ..cairn_tests::apiserver::Options::short()
        }
    };
    let dir = out.join(format!("k8s-{}-{seed}", flavor.name()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = k8s::Spec {
        server: flavor,
        binary: binary.clone(),
        seed,
        steps: k8s::steps(seed, a.short, a.faults, timing),
        timing,
        load: cairn_tests::apiserver::Options {
            // Beyond the time a watch cut off with its member takes to resume elsewhere, or it
            // would resume from a compacted revision (the API server compacts every 5 minutes).
            compact_every: std::time::Duration::from_secs(10),
            ..load
        },
        progress_interval: "1s".into(),
        dir: dir.clone(),
    };
    for what in net::clean_stale()? {
        eprintln!("removed a stale {what} of an earlier cairn-chaos");
    }
    let net = net::Net::create(3)?;
    net.enter_hub()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    println!(
        "==> API-server workload on {} via {}: seed {seed}, election timeout {} ms, faults: {}",
        flavor.name(),
        binary.display(),
        timing.election_ms,
        spec.steps
            .iter()
            .map(k8s::plan::Step::name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let result = runtime.block_on(k8s::run(&spec, &net, &|line| println!("    {line}")));
    drop(runtime);
    drop(net);
    let outcome = result?;
    println!("\n{}\n", outcome.report);
    for v in &outcome.violations {
        println!("VIOLATION: {v}");
    }
    println!("violations: {}", outcome.violations.len());
    let passed = outcome.violations.is_empty();
    if passed && !a.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("run directory kept: {}", dir.display());
    }
    Ok(passed)
}

fn run_command(a: RunArgs) -> Result<bool> {
    if a.members < 3 {
        bail!(
            "--members {}: at least 3 (partitions and replacements need a majority to remain)",
            a.members
        );
    }
    let (flavor, binary, out) = server_and_out(a.server, &a.binary, &a.out)?;

    for what in net::clean_stale()? {
        eprintln!("removed a stale {what} of an earlier cairn-chaos");
    }
    let net = net::Net::create(a.members)?;
    net.enter_hub()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run_all(&a, flavor, &binary, &out, &net));
    drop(runtime);
    drop(net);
    result
}

async fn run_all(
    a: &RunArgs,
    flavor: Flavor,
    binary: &std::path::Path,
    out: &std::path::Path,
    net: &net::Net,
) -> Result<bool> {
    let seed = seed_or_clock(a.seed);
    let timing = Timing {
        election_ms: a.election_timeout,
    };
    let runs = a.runs.unwrap_or(if a.short { 3 } else { 5 });
    let known = schedule::names(timing);
    if let Some(k) = a.kinds.iter().find(|k| !known.contains(k)) {
        bail!(
            "--kinds: unknown fault kind {k}; the kinds are {}",
            known.join(", ")
        );
    }
    let short = a
        .short
        .then(|| schedule::covering(&mut ChaCha8Rng::seed_from_u64(seed), timing, runs));
    let abort = Arc::new(AtomicBool::new(false));
    {
        let abort = abort.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "interrupted: finishing the current run (interrupt again to leave it as is)"
                );
                abort.store(true, Ordering::Relaxed);
                let _ = tokio::signal::ctrl_c().await;
                std::process::exit(130);
            }
        });
    }
    println!(
        "==> {} via {}: {runs} runs from seed {seed}, {} members, election timeout {} ms",
        flavor.name(),
        binary.display(),
        a.members,
        timing.election_ms
    );
    let stamp = format!("{}-{seed}", flavor.name());
    let mut summaries = Vec::new();
    for k in 0..runs {
        if abort.load(Ordering::Relaxed) {
            break;
        }
        let run_seed = seed.wrapping_add(k as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(run_seed);
        let faults = match &short {
            Some(s) => s[k].clone(),
            None => schedule::random(&mut rng, timing, a.faults, 0.15, &a.kinds),
        };
        let dir = out.join(&stamp).join(format!("run-{k}"));
        let _ = std::fs::remove_dir_all(&dir);
        let spec = run::RunSpec {
            server: flavor,
            binary: binary.to_path_buf(),
            members: a.members,
            seed: run_seed,
            faults,
            timing,
            clients: a.clients,
            dir: dir.clone(),
        };
        println!(
            "--> run {k} (seed {run_seed}): {}",
            spec.faults
                .iter()
                .map(schedule::Fault::name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut s = match run::run(&spec, net, &abort, &|line| println!("    {line}")).await {
            Ok(h) => {
                let v = check::check(&h, check::SEARCH_BUDGET);
                report::summarize(&h, v)
            }
            Err(e) => RunSummary {
                seed: run_seed,
                harness_error: Some(format!("{e:#}")),
                ..RunSummary::default()
            },
        };
        for (checker, what) in s.anomalies.iter().take(20) {
            println!("    ANOMALY [{checker}] {what}");
        }
        if s.anomalies.len() > 20 {
            println!(
                "    ... {} more anomalies in {}",
                s.anomalies.len() - 20,
                dir.display()
            );
        }
        for r in &s.refusals {
            println!("    refusal without injected corruption: {r}");
        }
        for k in &s.inconclusive {
            println!("    undecided: {k}");
        }
        if s.failed() || a.keep {
            s.kept = Some(dir.clone());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        println!("    {}", report::run_line(k, &s));
        summaries.push(s);
    }
    print!("{}", report::totals(flavor.name(), &summaries));
    Ok(summaries.iter().all(|s| !s.failed()))
}
