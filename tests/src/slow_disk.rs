//! A slow disk for chosen processes: the kernel's block I/O throttle (a cgroup with a write-IOPS
//! limit on the device that holds a directory) makes each of their writes and fsyncs wait, as a
//! throttled cloud volume or a disk shared with a busy neighbour does. Needs root and the blkio
//! controller (cgroup v1) or the io controller (cgroup v2). The processes are moved back and the
//! cgroup removed on drop.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Processes whose writes to one device are throttled.
#[derive(Debug)]
pub struct SlowDisk {
    cgroup: PathBuf,
    /// Where the processes go back to.
    parent: PathBuf,
    pids: Vec<u32>,
}

impl SlowDisk {
    /// Limits the processes `pids` to `write_iops` write requests per second on the block device
    /// that holds `dir`.
    pub fn throttle(pids: &[u32], dir: &Path, write_iops: u32) -> Result<SlowDisk> {
        let dev = whole_disk(dir)?;
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("cairn-test-{}-{n}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/blkio");
        let v2 = Path::new("/sys/fs/cgroup");
        let (parent, limit_file, limit) = if v1.join("blkio.throttle.write_iops_device").exists() {
            (
                v1.to_path_buf(),
                "blkio.throttle.write_iops_device",
                format!("{dev} {write_iops}"),
            )
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
        {
            write(&v2.join("cgroup.subtree_control"), "+io")?;
            (
                v2.to_path_buf(),
                "io.max",
                format!("{dev} wiops={write_iops}"),
            )
        } else {
            bail!("no block I/O throttle here: neither /sys/fs/cgroup/blkio (cgroup v1) nor the io controller of cgroup v2")
        };
        let cgroup = parent.join(name);
        std::fs::create_dir(&cgroup)
            .with_context(|| format!("creating cgroup {} (needs root)", cgroup.display()))?;
        let mut slow = SlowDisk {
            cgroup,
            parent,
            pids: Vec::new(),
        };
        write(&slow.cgroup.join(limit_file), &limit)?;
        for &p in pids {
            write(&slow.cgroup.join("cgroup.procs"), &p.to_string())?;
            slow.pids.push(p);
        }
        Ok(slow)
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        for p in &self.pids {
            // A process that has exited is no longer listed; nothing to move.
            let _ = write(&self.parent.join("cgroup.procs"), &p.to_string());
        }
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {text:?} to {}", path.display()))
}

/// `MAJOR:MINOR` of the whole disk holding `dir` (the throttle applies to disks, not partitions).
fn whole_disk(dir: &Path) -> Result<String> {
    let dev = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        bail!(
            "{} is not on a block device ({major}:{minor}: tmpfs, overlay or the like)",
            dir.display()
        );
    }
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if sys.join("partition").exists() {
        let disk = sys.join("../dev");
        let text = std::fs::read_to_string(&disk)
            .with_context(|| format!("reading {}", disk.display()))?;
        return Ok(text.trim().to_string());
    }
    Ok(format!("{major}:{minor}"))
}
