//! `cairn snapshot status|restore`: etcdctl's (3.4) and etcdutl's (3.5) offline snapshot commands, with
//! their flags, checks and messages, over etcd-format snapshots from cairn or etcd. This is how an
//! etcd cluster migrates to cairn (and, through `etcdctl snapshot save` against cairn, back).

mod file;
mod restore;
mod status;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use file::{SnapshotError, SnapshotFile};
pub use restore::{restore, RestoreArgs};
pub use status::{status, StatusArgs};

/// Offline snapshot commands (no running member needed).
#[derive(Debug, Parser)]
#[command(name = "cairn snapshot", bin_name = "cairn snapshot", version)]
pub struct SnapshotCli {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

/// The `cairn snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Print the hash, revision, key count and size of a snapshot file (as `etcdctl snapshot status`).
    Status(StatusArgs),
    /// Make a new member's data dir from a snapshot file (as `etcdctl snapshot restore`).
    Restore(RestoreArgs),
}

/// Print a flag parsing error (or --help/--version) and the exit code for it: 2 for an error, else 0.
pub fn usage_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Run `cairn snapshot ...` (`args` starts with "snapshot"). Exit codes: 0 ok, 1 failure, 2 usage.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match SnapshotCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return usage_exit(&e),
    };
    let result = match &cli.command {
        SnapshotCommand::Status(a) => status(a),
        SnapshotCommand::Restore(a) => restore(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            let usage = e.chain().any(|c| c.is::<crate::config::ConfigError>());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
