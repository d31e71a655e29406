//! `cairn snapshot status FILE`: etcdctl's figures (hash, revision, total keys, total size) in its
//! three output formats.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::SnapshotFile;
use crate::etcd_db::import;

/// Arguments of `cairn snapshot status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// Output format: simple, json or table (as etcdctl's --write-out).
    #[arg(short = 'w', long, value_enum, default_value = "simple")]
    pub write_out: WriteOut,
}

/// etcdctl's `--write-out` formats that `snapshot status` supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WriteOut {
    Simple,
    Json,
    Table,
}

/// Print the status of `args.file`.
pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let snap = SnapshotFile::open(&args.file, false)?;
    let st = import::status(&snap.db).with_context(|| args.file.display().to_string())?;
    let size = si_bytes(st.total_size);
    match args.write_out {
        WriteOut::Simple => println!("{:x}, {}, {}, {size}", st.hash, st.revision, st.total_key),
        WriteOut::Json => println!("{}", serde_json::to_string(&st)?),
        WriteOut::Table => {
            let row = [
                format!("{:x}", st.hash),
                st.revision.to_string(),
                st.total_key.to_string(),
                size,
            ];
            let head = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
            let w: Vec<usize> = (0..4).map(|i| head[i].len().max(row[i].len())).collect();
            let dashes: Vec<String> = w.iter().map(|n| "-".repeat(n + 2)).collect();
            let line = format!("+{}+", dashes.join("+"));
            println!("{line}");
            // etcdctl's table: headers centred, values right-aligned.
            let cells = |c: &[String], centre: bool| {
                let padded: Vec<String> = c
                    .iter()
                    .zip(&w)
                    .map(|(s, n)| {
                        if centre {
                            format!(" {s:^n$} ")
                        } else {
                            format!(" {s:>n$} ")
                        }
                    })
                    .collect();
                padded.join("|")
            };
            println!("|{}|", cells(&head.map(String::from), true));
            println!("{line}");
            println!("|{}|", cells(&row, false));
            println!("{line}");
        }
    }
    Ok(())
}

/// Sizes as etcdctl prints them (go-humanize's SI bytes: "57 kB", "1.2 MB").
fn si_bytes(n: u64) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let v = n as f64 / 1000f64.powi(e as i32);
    if v < 10.0 {
        format!("{:.1} {}", v, units[e])
    } else {
        format!("{:.0} {}", v, units[e])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_etcdctls() {
        assert_eq!(super::si_bytes(57_376), "57 kB");
        assert_eq!(super::si_bytes(1_234_567), "1.2 MB");
        assert_eq!(super::si_bytes(4), "4 B");
    }
}
