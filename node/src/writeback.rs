//! Pacing for large background writes (a snapshot file, a value-file rewrite): each 8 MiB window is
//! pushed to the disk once written, and the writer waits for the window before it, so at most two
//! windows of the file are dirty at a time.
//!
//! Why: left to the kernel, a 1 GiB copy piles up dirty pages that are written back all at once, and
//! the WAL's fdatasync (every acknowledged write) then queues behind that flood; puts stalled for
//! hundreds of ms while a snapshot or a rewrite was written. The wait falls on the background writer.

use std::fs::File;
use std::os::fd::AsRawFd;

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
