//! Disk faults: each member's data dir is a small tmpfs of its own, so filling it hits only that
//! member; WAL corruption flips bytes in, or truncates, the last segment of `member/wal/` (the same
//! path for cairn and etcd) while the member is down.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use cairn_tests::tools::run_ok;
use rand::Rng;

/// Size of each member's tmpfs: room for etcd's 64 MiB WAL segments and both servers' snapshots.
pub const TMPFS_MIB: u64 = 384;

/// Mounts a tmpfs named `source` (the harness prefix, so stale mounts can be found) on `dir`.
pub fn mount(source: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={TMPFS_MIB}m,mode=0700"))
            .arg(source)
            .arg(dir),
    )
    .with_context(|| format!("mounting a tmpfs on {}", dir.display()))?;
    Ok(())
}

/// Unmounts `dir` (lazily: a member killed a moment ago may still hold a file).
pub fn unmount(dir: &Path) -> Result<()> {
    run_ok(Command::new("umount").arg("-l").arg(dir)).map(|_| ())
}

/// Removes everything inside `dir`, keeping `dir` (a mount point).
pub fn wipe(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = entry?.path();
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Where [`fill`] puts its ballast.
fn ballast(dir: &Path) -> PathBuf {
    dir.join("ch-ballast")
}

/// Fills the file system of `dir` until writes fail with ENOSPC; returns the bytes written.
pub fn fill(dir: &Path) -> Result<u64> {
    let path = ballast(dir);
    let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
        }
    }
    Ok(written)
}

/// Frees what [`fill`] took.
pub fn free(dir: &Path) -> Result<()> {
    let path = ballast(dir);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The last WAL segment of `data_dir` that holds anything, with the length of its used part (up to
/// its last non-zero byte; segments are preallocated with zeros).
pub fn last_segment(data_dir: &Path) -> Result<(PathBuf, u64)> {
    let wal = data_dir.join("member").join("wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal)
        .with_context(|| format!("listing {}", wal.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    for seg in segments.into_iter().rev() {
        let used = used_len(&seg)?;
        if used > 0 {
            return Ok((seg, used));
        }
    }
    bail!("no WAL segment with data in {}", wal.display())
}

fn used_len(path: &Path) -> Result<u64> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(data
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |p| p as u64 + 1))
}

/// How a WAL segment is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// 16 bytes inverted at a random offset of the used part.
    Flip,
    /// The file cut at a random offset in the second half of the used part.
    Truncate,
}

/// Damages the last segment of `data_dir`; returns what was done, for the record.
pub fn corrupt(data_dir: &Path, damage: Damage, rng: &mut impl Rng) -> Result<String> {
    let (seg, used) = last_segment(data_dir)?;
    let f = File::options()
        .read(true)
        .write(true)
        .open(&seg)
        .with_context(|| format!("opening {}", seg.display()))?;
    match damage {
        Damage::Flip => {
            let at = rng.random_range(0..used.saturating_sub(16).max(1));
            let mut buf = [0u8; 16];
            f.read_exact_at(&mut buf, at)?;
            for b in &mut buf {
                *b ^= rng.random_range(1..=255u8);
            }
            f.write_all_at(&buf, at)?;
            f.sync_all()?;
            Ok(format!(
                "flipped 16 bytes at offset {at} of {} ({used} bytes used)",
                seg.display()
            ))
        }
        Damage::Truncate => {
            let to = rng.random_range(used / 2..used.max(1));
            f.set_len(to)?;
            f.sync_all()?;
            Ok(format!(
                "truncated {} to {to} of {used} used bytes",
                seg.display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{corrupt, last_segment, Damage};
    use rand::SeedableRng;

    #[test]
    fn corruption_hits_the_used_part_of_the_last_segment_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("member/wal");
        std::fs::create_dir_all(&wal).unwrap();
        let mut first = vec![7u8; 4000];
        first.resize(10_000, 0);
        std::fs::write(wal.join("0000000000000001.wal"), &first).unwrap();
        // A freshly preallocated segment after it holds nothing yet.
        std::fs::write(wal.join("0000000000000002.wal"), vec![0u8; 10_000]).unwrap();
        let (seg, used) = last_segment(dir.path()).unwrap();
        assert!(seg.ends_with("0000000000000001.wal"));
        assert_eq!(used, 4000);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        corrupt(dir.path(), Damage::Flip, &mut rng).unwrap();
        let after = std::fs::read(&seg).unwrap();
        let changed: Vec<usize> = (0..after.len()).filter(|&i| after[i] != first[i]).collect();
        assert_eq!(changed.len(), 16);
        assert!(changed.iter().all(|&i| i < 4000));
        corrupt(dir.path(), Damage::Truncate, &mut rng).unwrap();
        let len = std::fs::metadata(&seg).unwrap().len();
        assert!((2000..4000).contains(&len), "{len}");
    }
}
