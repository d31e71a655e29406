//! Pacing for large background writes (a snapshot file, a value-file rewrite): each 8 MiB window is
//! pushed to the disk once written, and the writer waits for the window before it, so at most two
//! windows of the file are dirty at a time.
//!
//! Why: left to the kernel, a 1 GiB copy piles up dirty pages that are written back all at once, and
//! the WAL's fdatasync (every acknowledged write) then queues behind that flood; puts stalled for
//! hundreds of ms while a snapshot or a rewrite was written. The wait falls on the background writer.
//!
//! Freeing is paced too ([`free_gradually`]): the last close of a deleted 1 GiB file frees all its
//! blocks in one journal commit (with `-o discard`, one discard of all of them), and every fdatasync
//! on the file system waits for that commit. Measured here: unlinking 1 GiB took 0.56 s and held 4-byte
//! fdatasyncs of another file for up to 166 ms; truncated 8 MiB at a time, at most 19 ms.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// Lower the calling thread's CPU priority (nice 10) for background work (a snapshot, a rewrite, a
/// check): on a busy machine it then yields to applying and serving, and takes longer itself.
pub fn background_priority() {
    // SAFETY: gettid and setpriority take and return plain integers; they change only this thread.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10)
    };
    if rc != 0 {
        tracing::debug!(
            "background thread keeps its priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Run `f` on a thread of its own at [`background_priority`] and await its result.
pub async fn in_background<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            background_priority();
            let _ = tx.send(f());
        })?;
    rx.await
        .map_err(|_| std::io::Error::other(format!("the {name} thread ended without a result")))
}

/// Bytes per window.
const WINDOW: u64 = 8 << 20;

/// Bytes freed at a time by [`free_gradually`], and the pause after each.
const FREE_STEP: u64 = 8 << 20;
const FREE_PAUSE: Duration = Duration::from_millis(5);
/// How often a file waiting to be freed looks whether it is the last handle on its data.
const FREE_RECHECK: Duration = Duration::from_secs(1);

/// Free the blocks of the deleted file `file` a few MiB at a time, on a thread of its own, once no
/// other descriptor of this process refers to it (readers may still hold one: truncating under them
/// would take their data). A file that is still linked somewhere is just closed.
pub fn free_gradually(file: File) {
    static REAPER: Mutex<Option<mpsc::Sender<File>>> = Mutex::new(None);
    let mut reaper = REAPER.lock().unwrap_or_else(|p| p.into_inner());
    let file = match reaper.as_ref() {
        None => file,
        Some(tx) => match tx.send(file) {
            Ok(()) => return,
            Err(mpsc::SendError(f)) => f,
        },
    };
    let (tx, rx) = mpsc::channel();
    let started = std::thread::Builder::new()
        .name("file-free".into())
        .spawn(move || {
            background_priority();
            reap(rx)
        });
    match started {
        Ok(_) => {
            let _ = tx.send(file);
            *reaper = Some(tx);
        }
        // Closed here: freed at once, as without pacing.
        Err(e) => tracing::warn!("freeing a deleted file at once: {e}"),
    }
}

fn reap(rx: mpsc::Receiver<File>) {
    let mut waiting: Vec<File> = Vec::new();
    loop {
        let next = if waiting.is_empty() {
            rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(FREE_RECHECK)
        };
        match next {
            Ok(f) => {
                let id = inode(&f);
                // Two handles on one file would wait for each other.
                if id.is_some() && !waiting.iter().any(|w| inode(w) == id) {
                    waiting.push(f);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) if waiting.is_empty() => return,
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(FREE_RECHECK),
        }
        waiting.retain(|f| !try_free(f));
    }
}

/// The device and inode of `f`.
fn inode(f: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// Free `f` if it is deleted and no other descriptor of this process refers to it; whether it is
/// done with (freed, or not ours to free).
fn try_free(f: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = f.metadata() else {
        return true;
    };
    if meta.nlink() > 0 {
        return true;
    }
    let me = (meta.dev(), meta.ino());
    let own = f.as_raw_fd().to_string();
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        // Cannot tell whether others read it: leave it to the last close.
        return true;
    };
    let shared = fds.flatten().any(|e| {
        e.file_name() != own.as_str()
            && std::fs::metadata(e.path()).is_ok_and(|m| (m.dev(), m.ino()) == me)
    });
    if shared {
        return false;
    }
    let mut len = meta.len();
    while len > 0 {
        len = len.saturating_sub(FREE_STEP);
        if let Err(e) = f.set_len(len) {
            tracing::debug!("freeing a deleted file: {e}");
            return true;
        }
        std::thread::sleep(FREE_PAUSE);
    }
    true
}

/// Tracks how far a file was written and pushes it to the disk a window at a time.
#[derive(Debug, Default)]
pub struct Pacer {
    /// The start of the first window not yet pushed.
    next: u64,
}

impl Pacer {
    /// A pacer for a file written from offset `at` on.
    pub fn from(at: u64) -> Pacer {
        Pacer { next: at }
    }

    /// `file` now holds the bytes up to `end`: push every full window, waiting for the one before.
    /// Advisory: an error here shows again at the writer's fsync, which reports it.
    pub fn written(&mut self, file: &File, end: u64) {
        let fd = file.as_raw_fd();
        while end.saturating_sub(self.next) >= WINDOW {
            let w = self.next;
            // SAFETY: sync_file_range only reads its integer arguments; `fd` is open for the call.
            unsafe {
                libc::sync_file_range(
                    fd,
                    w as libc::off64_t,
                    WINDOW as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
                if w >= WINDOW {
                    libc::sync_file_range(
                        fd,
                        (w - WINDOW) as libc::off64_t,
                        WINDOW as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WAIT_BEFORE
                            | libc::SYNC_FILE_RANGE_WRITE
                            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                    );
                }
            }
            self.next += WINDOW;
        }
    }
}

/// A writer to a file that paces itself with a [`Pacer`].
pub struct Paced<'a> {
    file: &'a File,
    pos: u64,
    pacer: Pacer,
}

impl<'a> Paced<'a> {
    /// Write `file` from its start (it must be positioned there).
    pub fn new(file: &'a File) -> Self {
        Paced {
            file,
            pos: 0,
            pacer: Pacer::default(),
        }
    }
}

impl std::io::Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = std::io::Write::write(&mut self.file, buf)?;
        self.pos += n as u64;
        self.pacer.written(self.file, self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn a_deleted_file_is_freed_only_once_no_other_descriptor_reads_it() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 20 << 20]).unwrap();
        let last = f.try_clone().unwrap();
        assert!(!try_free(&last), "another descriptor still reads it");
        assert_eq!(last.metadata().unwrap().len(), 20 << 20);
        drop(f);
        assert!(try_free(&last));
        assert_eq!(last.metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_file_still_linked_is_left_whole() {
        let mut named = tempfile::NamedTempFile::new().unwrap();
        named.write_all(&[1u8; 4096]).unwrap();
        let f = named.reopen().unwrap();
        assert!(try_free(&f));
        assert_eq!(std::fs::metadata(named.path()).unwrap().len(), 4096);
    }

    #[test]
    fn paced_writes_land_whole_and_in_order() {
        let mut f = tempfile::tempfile().unwrap();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
        {
            let mut w = Paced::new(&f);
            for _ in 0..7 {
                w.write_all(&chunk).unwrap();
            }
            w.flush().unwrap();
            assert_eq!(
                w.pacer.next,
                2 * WINDOW,
                "21 MiB written: two windows pushed"
            );
        }
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 7 * chunk.len());
        assert!(back.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
    }
}
