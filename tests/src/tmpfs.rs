//! A small file system of its own for one member's data dir (a size-limited tmpfs, needs root), so a
//! test can fill its disk without touching anyone else's; unmounted and removed on drop.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};

use crate::tools::run_ok;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A mounted tmpfs.
#[derive(Debug)]
pub struct Tmpfs {
    /// Where it is mounted (`/tmp/cs-disk-PID-N`).
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: `64m`) at a fresh `/tmp/cs-disk-PID-N`.
    pub fn mount(size: &str) -> Result<Tmpfs> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = PathBuf::from(format!("/tmp/cs-disk-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let opts = format!("size={size},mode=0700");
        let mounted = run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
                .arg(&path),
        );
        if let Err(e) = mounted {
            let _ = std::fs::remove_dir(&path);
            return Err(e)
                .with_context(|| format!("mounting a tmpfs at {} (needs root)", path.display()));
        }
        Ok(Tmpfs { path })
    }

    /// Fills the file system with one file until no byte is left; returns that file.
    pub fn fill(&self) -> Result<PathBuf> {
        let filler = self.path.join("filler");
        let mut f =
            File::create(&filler).with_context(|| format!("creating {}", filler.display()))?;
        let chunk = vec![0x5au8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(e).with_context(|| format!("filling {}", filler.display())),
            }
        }
        // The last partial chunk: byte by byte until nothing fits.
        while let Ok(1) = f.write(&chunk[..1]) {}
        Ok(filler)
    }
}

fn unmount(path: &Path) {
    // Lazy: a process of a failed test may still hold a file open there.
    let _ = Command::new("umount").arg("-l").arg(path).status();
    let _ = std::fs::remove_dir(path);
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}
