//! The check of a snapshot's values against their checksum, on a thread of its own after the store
//! took the snapshot file as its base.
//!
//! Why: a restart and an install read only the key index (checked before use); reading every value
//! first would cost as much as the copy the base exists to avoid. A value corrupted on disk would
//! otherwise be served and copied on (a rewrite, the next snapshot) in silence. The mismatch is
//! recorded as the value log's failure, which stops the member with the reason.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Bytes per read.
const READ_BYTES: usize = 1 << 20;

/// A check under way; dropping it stops it.
#[derive(Debug)]
pub(super) struct Verify {
    cancel: Arc<AtomicBool>,
}

impl Drop for Verify {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Verify {
    /// Check that the first `len` bytes of `base` have CRC-32 `crc`; on a mismatch or a read error,
    /// set `failed`.
    pub fn start(
        base: Arc<File>,
        path: &Path,
        len: u64,
        crc: u32,
        failed: Arc<OnceLock<String>>,
    ) -> Verify {
        let cancel = Arc::new(AtomicBool::new(false));
        let path = path.display().to_string();
        let stop = cancel.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot-verify".into())
            .spawn(move || {
                crate::writeback::background_priority();
                let started = std::time::Instant::now();
                match checksum(&base, len, &stop) {
                    Ok(Some(got)) if got == crc => tracing::info!(
                        mib = len >> 20,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "the snapshot's values match their checksum"
                    ),
                    Ok(Some(got)) => {
                        let msg = format!(
                            "snapshot file {path}: its {len} bytes of values have checksum {got:08x}, \
                             not {crc:08x}: the file is corrupt (remove this member and add it back, or \
                             restore it from a snapshot)"
                        );
                        tracing::error!("{msg}");
                        let _ = failed.set(msg);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let msg = format!("snapshot file {path}: reading its values: {e}");
                        tracing::error!("{msg}");
                        let _ = failed.set(msg);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("the snapshot's values are not checked: no thread: {e}");
        }
        Verify { cancel }
    }
}

/// The CRC-32 of the first `len` bytes of `file`, or None if canceled.
fn checksum(file: &File, len: u64, stop: &AtomicBool) -> std::io::Result<Option<u32>> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; READ_BYTES];
    let mut off = 0u64;
    while off < len {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let n = (len - off).min(READ_BYTES as u64) as usize;
        file.read_exact_at(&mut buf[..n], off)?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(Some(h.finalize()))
}
