//! The disk's own durability cost: 4 KiB write + fdatasync in a loop, in the file system that holds the
//! data dirs. No Raft implementation that fsyncs per commit can have a single-client put faster than this.

use anyhow::{Context, Result};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Latencies (µs) of `iterations` 4 KiB overwrite+fdatasync rounds in a preallocated file under `dir`.
pub fn measure(dir: &Path, iterations: usize) -> Result<Vec<u32>> {
    let path = dir.join("fsync-floor.tmp");
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // Preallocate like etcd's WAL does, so each round measures data sync, not file-size metadata updates.
    const SPAN: u64 = 4 << 20;
    file.set_len(SPAN)
        .with_context(|| format!("sizing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    let block = [0x5au8; 4096];
    let mut lat = Vec::with_capacity(iterations);
    for i in 0..iterations as u64 {
        let started = Instant::now();
        file.seek(SeekFrom::Start((i * 4096) % SPAN))
            .context("seeking")?;
        file.write_all(&block)
            .with_context(|| format!("writing {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync on {}", path.display()))?;
        lat.push(micros(started.elapsed()));
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(lat)
}

/// A duration in whole microseconds, saturating.
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
