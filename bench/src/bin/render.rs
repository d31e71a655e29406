//! cairn-bench-render: how long `provision render` takes for a cluster file, fresh certificates each run
//! (each render goes into a new directory). A benchmark, not a test: it asserts nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use provision::render::output::{render_dir, Format};

/// Time `provision render` of a cluster file.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The cluster file.
    cluster: PathBuf,
    /// Renders to time (each into a fresh directory).
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

fn run(cli: Cli) -> Result<()> {
    let spec = provision::spec::load(&cli.cluster)?;
    let mut times = Vec::new();
    for _ in 0..cli.runs.max(1) {
        let dir = tempfile::tempdir().context("creating a scratch directory")?;
        let start = Instant::now();
        render_dir(&spec, dir.path(), None, Format::Files)?;
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "render {} ({} members, fresh certificates): min {:.1} ms, median {:.1} ms over {} runs",
        cli.cluster.display(),
        spec.nodes.len(),
        times[0].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn-bench-render: {e:#}");
            ExitCode::from(2)
        }
    }
}
