//! `cairn`: parse flags → validate → run the member (`cairn snapshot ...`: offline snapshot commands). Exit codes: 0 ok, 1 failure, 2 usage/config error.

use std::process::ExitCode;

use clap::Parser;

use cairn_node::config::{Config, ConfigError};
use cairn_node::server;
use cairn_node::tls::TlsError;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "snapshot") {
        return cairn_node::snapshot_cmd::main(std::env::args_os().skip(1));
    }
    let cfg = match Config::try_parse() {
        Ok(c) => c,
        Err(e) => return cairn_node::snapshot_cmd::usage_exit(&e),
    };
    if let Err(e) = cfg.validate() {
        eprintln!("cairn: {e}");
        return ExitCode::from(2);
    }
    server::logging::init(&cfg.name, &cfg.log_level);
    // A panic anywhere (e.g. inside the state machine's task) would leave a member running in an
    // unknown state; stop the whole process instead so the supervisor restarts it from the data dir.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!(
            "cairn: internal error (a bug); aborting so the member restarts from its data dir"
        );
        std::process::abort();
    }));
    let threads = cfg.runtime_threads();
    return_freed_memory(threads.workers);
    tracing::info!(
        "async runtime: {} worker thread(s): {}",
        threads.workers,
        threads.why
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(server::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("cairn: {e:#}");
            let config_error = e
                .chain()
                .any(|c| c.is::<ConfigError>() || c.is::<TlsError>());
            ExitCode::from(if config_error { 2 } else { 1 })
        }
    }
}

/// Fix glibc's malloc thresholds so that memory a large answer used goes back to the system.
///
/// By default glibc raises its thresholds to the largest block freed so far, and each runtime thread
/// allocates from an arena of its own: 10k-key ranges (~10 MiB answers) served by different threads
/// each left their memory in another arena, and three in a row raised the member's RSS by 17–51 MiB
/// from run to run (etcd 3.5: ~20). With blocks of 1 MiB and more mapped apart, and free memory above
/// 8 MiB at the top of an arena given back, 15–21 MiB; throughput unchanged (A/B, docs/benchmark-scale.md).
///
/// Arenas are capped at one per worker thread plus one: a large range runs under `block_in_place`
/// (node/src/blocking.rs), which moves the worker's other tasks to another thread, so successive big
/// answers were built on different threads, each in an arena of its own, and the memory one freed
/// was not reused by the next: a 100k-key range's RSS rise went from 213 to 308 MiB; with the cap,
/// 210 (`MALLOC_ARENA_MAX=2`, docs/benchmark-scale.md).
fn return_freed_memory(workers: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only changes allocator parameters; it is called before
    // the runtime's threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        let arenas = i32::try_from(workers + 1).unwrap_or(i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = workers;
}
