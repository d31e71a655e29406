//! cairn-k8s-load: the API-server-like workload of `cairn_tests::apiserver` (issue 22) against a
//! 3-member cairn cluster and a 3-member etcd cluster (3.5 by default), one after the other on the
//! same machine, printing each one's figures and checks. Exit status 1 if a check failed on either.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_tests::apiserver::{self, Options};
use cairn_tests::cluster::{Cluster, Flavor, PkiSource};
use clap::Parser;

/// Run the API-server-like workload against cairn and etcd.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Systems to run, in order (cairn, etcd).
    #[arg(long, value_delimiter = ',', default_value = "cairn,etcd")]
    systems: Vec<String>,
    /// The cairn server binary.
    #[arg(long, default_value = "target/release/cairn")]
    cairn: PathBuf,
    /// The etcd server binary (scripts/etcd35.sh fetches 3.5 here).
    #[arg(long, default_value = "~/.cache/cairn/etcd-3.5/usr/bin/etcd")]
    etcd: String,
    /// Seconds the writers run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Resource kinds (one prefix watch each).
    #[arg(long, default_value_t = 5)]
    resources: usize,
    /// Objects per resource kind.
    #[arg(long, default_value_t = 2000)]
    objects: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 32)]
    writers: usize,
    /// Single-object watches.
    #[arg(long, default_value_t = 200)]
    small_watches: usize,
    /// Single-object watches sharing one connection per member per 100, each its own gRPC stream:
    /// as many as an API server holds open (0: none).
    #[arg(long, default_value_t = 0)]
    open_streams: usize,
    /// List page size (the API server's is 500).
    #[arg(long, default_value_t = 500)]
    page: i64,
    /// Seconds between compactions (the API server's default is 300).
    #[arg(long, default_value_t = 20)]
    compact_every: u64,
    /// The members' --experimental-watch-progress-notify-interval.
    #[arg(long, default_value = "5s")]
    progress_interval: String,
    /// Seed of the writers' choices (the same seed makes the same choices on every system).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

async fn one(cli: &Cli, flavor: Flavor, bin: PathBuf) -> Result<apiserver::Report> {
    let name = flavor.name();
    eprintln!("==> {name}: starting 3 members ({})", bin.display());
    let mut cluster = Cluster::builder(flavor, 3)
        .binary(bin)
        .token(format!("k8s-load-{name}"))
        .pki(PkiSource::Rcgen)
        .extra_args([format!(
            "--experimental-watch-progress-notify-interval={}",
            cli.progress_interval
        )])
        .create()?;
    cluster.start_all()?;
    cluster.wait_ready(apiserver::RETRY_FOR).await?;
    let endpoints: Vec<&str> = cluster
        .members
        .iter()
        .map(|m| m.client_url.as_str())
        .collect();
    let opts = Options {
        duration: Duration::from_secs(cli.seconds),
        resources: cli.resources,
        objects: cli.objects,
        writers: cli.writers,
        small_watches: cli.small_watches,
        open_streams: cli.open_streams,
        page: cli.page,
        compact_every: Duration::from_secs(cli.compact_every.max(1)),
        seed: cli.seed,
        watch_member: None,
        watch_pause: None,
    };
    eprintln!("==> {name}: running the workload for {}s", cli.seconds);
    apiserver::run(&cluster.pki, &endpoints, &opts)
        .await
        .with_context(|| format!("the workload against {name}"))
}

async fn run(cli: Cli) -> Result<bool> {
    let mut passed = true;
    for system in &cli.systems {
        let (flavor, bin) = match system.as_str() {
            "cairn" => (Flavor::Cairn, cli.cairn.clone()),
            "etcd" => {
                let home = std::env::var("HOME").unwrap_or_default();
                (
                    Flavor::Etcd,
                    PathBuf::from(cli.etcd.replacen('~', &home, 1)),
                )
            }
            other => anyhow::bail!("--systems: {other:?} is not one of cairn, etcd"),
        };
        let report = one(&cli, flavor, bin).await?;
        println!("\n## {system}\n\n{report}\n");
        passed &= report.violations.is_empty();
    }
    Ok(passed)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match cairn_tests::grpc::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
