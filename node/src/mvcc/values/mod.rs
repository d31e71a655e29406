//! Value bytes live in a file, not in memory: the key index keeps a [`ValueRef`] (offset and length)
//! per version and reads the bytes back with `pread` when a request needs them.
//!
//! Why: a key's whole history since the last compaction is retained, and its values dominate the
//! store's memory (a 256-byte value costs ~300 bytes of heap; its index entry ~70). etcd keeps them in
//! bbolt's memory-mapped file; here they go to an append-only file that the kernel's page cache
//! serves, so resident memory holds only the index.
//!
//! The file is a cache derived from the Raft log and the snapshot, never a source of truth: it is not
//! fsynced, it is emptied when the store is rebuilt (start, snapshot install), and it is unnamed (made
//! with `O_TMPFILE` in the data dir where the kernel supports it), so nothing is left behind after a
//! crash. After a compaction frees most of it, the live values are copied into a fresh file, off the
//! apply path ([`rewrite`]).
//!
//! An I/O error is fatal to the member: it is recorded ([`ValueLog::failure`]) and the state machine
//! stops applying, because a member that carried on with a missing value would diverge from the others.

mod rewrite;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::MvccError;
use rewrite::Rewrite;

/// Appended bytes are written to the file once this many have gathered.
const TAIL_BYTES: usize = 256 * 1024;
/// A compaction rewrites the file only when it holds at least this much and under half of it is live
/// (less in unit tests, so that they reach a rewrite with little data).
const REWRITE_MIN_BYTES: u64 = if cfg!(test) { 1 << 20 } else { 64 << 20 };
/// The swap copies the bytes appended during a rewrite in reads of this size.
const SWAP_COPY_BYTES: u64 = 1 << 20;

/// Where one value's bytes are in the value file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValueRef {
    off: u64,
    len: u32,
}

impl ValueRef {
    /// Length of the value in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// The append-only value file of one store.
#[derive(Debug, Default)]
pub struct ValueLog {
    /// Directory the file is made in (the system's temp dir when unset, as in unit tests).
    dir: Option<PathBuf>,
    /// Opened on the first write (shared with a rewrite that reads it).
    file: Option<Arc<File>>,
    /// Bytes written to the file; the tail starts here.
    written: u64,
    /// Appended bytes not yet written.
    tail: Vec<u8>,
    /// Bytes referenced by retained versions (decides when a rewrite pays).
    live: u64,
    /// The first I/O error; once set the member must stop applying.
    failed: OnceLock<String>,
    /// A rewrite copying the live values to a fresh file, if one runs.
    rewrite: Option<Rewrite>,
}

impl ValueLog {
    /// A value log whose file will be made in `dir`.
    pub fn in_dir(dir: PathBuf) -> Self {
        ValueLog {
            dir: Some(dir),
            ..ValueLog::default()
        }
    }

    /// Store `bytes` and return where they are.
    pub fn append(&mut self, bytes: &[u8]) -> ValueRef {
        if bytes.is_empty() {
            return ValueRef::default();
        }
        let r = ValueRef {
            off: self.written + self.tail.len() as u64,
            len: bytes.len() as u32,
        };
        self.tail.extend_from_slice(bytes);
        self.live += u64::from(r.len);
        if self.tail.len() >= TAIL_BYTES {
            self.flush();
        }
        r
    }

    /// The bytes at `r`. An I/O error is recorded (see [`ValueLog::failure`]) and returned.
    pub fn read(&self, r: ValueRef) -> Result<Vec<u8>, MvccError> {
        if r.len == 0 {
            return Ok(Vec::new());
        }
        if r.off >= self.written {
            let start = (r.off - self.written) as usize;
            return match self.tail.get(start..start + r.len()) {
                Some(b) => Ok(b.to_vec()),
                None => Err(self.fail(format!(
                    "value at {}+{} is past the end of the value file",
                    r.off, r.len
                ))),
            };
        }
        let mut buf = vec![0; r.len()];
        let res = match &self.file {
            Some(f) => f.read_exact_at(&mut buf, r.off),
            None => Err(io::Error::other("the value file was never opened")),
        };
        match res {
            Ok(()) => Ok(buf),
            Err(e) => Err(self.fail(format!("reading the value file: {e}"))),
        }
    }

    /// Like [`ValueLog::read`], for the apply path, which must not branch on an I/O error (members
    /// would diverge): an unreadable value reads as empty, and the recorded failure stops the member
    /// before the result is used.
    pub fn read_in_apply(&self, r: ValueRef) -> Vec<u8> {
        self.read(r).unwrap_or_default()
    }

    /// Versions holding `r` were dropped (compaction).
    pub fn release(&mut self, r: ValueRef) {
        self.live = self.live.saturating_sub(u64::from(r.len));
    }

    /// Bytes stored, garbage included (the file and the tail).
    pub fn bytes(&self) -> u64 {
        self.written + self.tail.len() as u64
    }

    /// Bytes of values some kept version still refers to.
    pub fn live_bytes(&self) -> u64 {
        self.live
    }

    /// Whether a compaction has left the file mostly garbage, so that [`ValueLog::rewrite`] pays.
    pub fn wants_rewrite(&self) -> bool {
        let total = self.bytes();
        total >= REWRITE_MIN_BYTES && self.live * 2 < total
    }

    /// Start copying the values `refs` point at (every kept version's) into a fresh file, on a thread
    /// of its own, unless a rewrite runs already. [`ValueLog::swap_rewritten`] finishes it.
    pub fn start_rewrite<'a>(&mut self, refs: impl Iterator<Item = &'a ValueRef>) {
        if self.rewrite.is_some() || self.failure().is_some() {
            return;
        }
        // Everything the copy reads must be in the file: it cannot see the tail.
        self.flush();
        let Some(file) = self.file.clone() else {
            return;
        };
        let refs = refs.copied().filter(|r| r.len > 0).collect();
        match Rewrite::start(file, self.written, refs, self.dir.clone()) {
            Ok(rw) => self.rewrite = Some(rw),
            // The old file stays; the next compaction tries again.
            Err(e) => tracing::warn!("value file not rewritten: {e}"),
        }
    }

    /// Whether a rewrite has finished copying, so that [`ValueLog::swap_rewritten`] will not wait.
    pub fn rewrite_ready(&self) -> bool {
        self.rewrite.as_ref().is_some_and(Rewrite::is_finished)
    }

    /// Finish a rewrite (waiting for its copy if needed): move the values appended since it started
    /// behind the copied ones, repoint `refs` (every kept version's) and use the fresh file. If the
    /// copy failed, or a kept value was not copied, the old file stays and nothing changes.
    pub fn swap_rewritten<'a>(&mut self, refs: impl Iterator<Item = &'a mut ValueRef>) {
        let Some(rw) = self.rewrite.take() else {
            return;
        };
        if self.failure().is_some() {
            // The member stops applying; the references must keep pointing into the old file.
            return;
        }
        let upto = rw.upto;
        let started = std::time::Instant::now();
        let rewrite::Copied { fresh, moved } = match rw.join() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("value file not rewritten, the old one stays: {e}");
                return;
            }
        };
        let (mut fresh, base) = match self.append_since(upto, fresh) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("value file not rewritten, the old one stays: {e}");
                return;
            }
        };
        let mut refs: Vec<&mut ValueRef> = refs.filter(|r| r.len > 0).collect();
        let mut repointed = Vec::with_capacity(refs.len());
        for r in &refs {
            let new = if r.off >= upto {
                Some(ValueRef {
                    off: base + (r.off - upto),
                    len: r.len,
                })
            } else {
                rewrite::moved_ref(&moved, **r)
            };
            match new {
                Some(n) => repointed.push(n),
                None => {
                    tracing::error!(
                        "value file not rewritten, the old one stays: the value at {}+{} was not copied",
                        r.off,
                        r.len
                    );
                    return;
                }
            }
        }
        for (r, n) in refs.iter_mut().zip(repointed) {
            **r = n;
        }
        fresh.live = self.live;
        let before = self.bytes();
        let old = std::mem::replace(self, fresh);
        // Closing the old file frees all its blocks, which took as long as the rest of the swap
        // (hundreds of ms for 750 MiB): done on a thread of its own, apply goes on.
        let dropped = std::thread::Builder::new()
            .name("value-file-drop".into())
            .spawn(move || drop(old));
        if let Err(e) = dropped {
            tracing::warn!("closing the old value file on this thread: {e}");
        }
        tracing::info!(
            before_mib = before >> 20,
            after_mib = self.bytes() >> 20,
            swap_ms = started.elapsed().as_millis() as u64,
            "value file rewritten after compaction"
        );
    }

    /// `fresh` with the bytes of this log from offset `from` on (file and tail) appended verbatim, and
    /// where they start in it: a value at `from + k` here is at `start + k` there.
    fn append_since(&self, from: u64, mut fresh: ValueLog) -> Result<(ValueLog, u64), String> {
        let start = fresh.bytes();
        let mut off = from;
        let mut buf = Vec::new();
        while off < self.written {
            let n = (self.written - off).min(SWAP_COPY_BYTES);
            buf.resize(n as usize, 0);
            let file = self
                .file
                .as_ref()
                .ok_or("the value file was never opened")?;
            file.read_exact_at(&mut buf, off)
                .map_err(|e| format!("reading the value file at {off}: {e}"))?;
            fresh.append(&buf);
            off += n;
        }
        fresh.append(&self.tail);
        fresh.flush();
        match fresh.failure() {
            Some(e) => Err(e.to_string()),
            None => Ok((fresh, start)),
        }
    }

    /// Drop every value (the store is being rebuilt from a snapshot).
    pub fn clear(&mut self) {
        // A rewrite of the old values is pointless now; dropping it stops it.
        self.rewrite = None;
        self.tail = Vec::new();
        self.live = 0;
        self.written = 0;
        if let Some(f) = &self.file {
            if let Err(e) = f.set_len(0) {
                self.fail(format!("emptying the value file: {e}"));
            }
        }
    }

    /// The first I/O error, if any: the member must stop applying.
    pub fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    /// Write the tail to the file. On error the tail stays in memory (nothing is lost) and the
    /// failure is recorded.
    fn flush(&mut self) {
        if self.tail.is_empty() || self.failed.get().is_some() {
            return;
        }
        if self.file.is_none() {
            let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
            match tempfile::tempfile_in(&dir) {
                Ok(f) => self.file = Some(Arc::new(f)),
                Err(e) => {
                    self.fail(format!(
                        "creating the value file in {}: {e} (check that the data dir is writable)",
                        dir.display()
                    ));
                    return;
                }
            }
        }
        let Some(f) = &self.file else { return };
        match f.write_all_at(&self.tail, self.written) {
            Ok(()) => {
                self.written += self.tail.len() as u64;
                self.tail.clear();
            }
            Err(e) => {
                self.fail(format!("writing the value file: {e}"));
            }
        }
    }

    fn fail(&self, msg: String) -> MvccError {
        let _ = self.failed.set(msg.clone());
        MvccError::Storage(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_from_the_tail_and_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = ValueLog::in_dir(dir.path().to_path_buf());
        let big = vec![7u8; TAIL_BYTES];
        let a = log.append(b"first");
        let b = log.append(&big);
        let c = log.append(b"in the tail");
        assert!(log.written > 0, "a full tail is written to the file");
        assert_eq!(log.read(a), Ok(b"first".to_vec()));
        assert_eq!(log.read(b), Ok(big));
        assert_eq!(log.read(c), Ok(b"in the tail".to_vec()));
        let empty = log.append(b"");
        assert_eq!(log.read(empty), Ok(Vec::new()));
        assert_eq!(log.failure(), None);
    }

    #[test]
    fn a_rewrite_keeps_only_the_values_still_referenced() {
        let mut log = ValueLog::default();
        let mut keep = log.append(b"keep me");
        let gone = log.append(&vec![1u8; TAIL_BYTES * 2]);
        log.release(gone);
        log.start_rewrite(std::iter::once(&keep));
        log.swap_rewritten(std::iter::once(&mut keep));
        assert_eq!(log.read(keep), Ok(b"keep me".to_vec()));
        assert_eq!(log.bytes(), 7);
        assert_eq!(log.live, 7);
        assert!(log.rewrite.is_none());
    }

    #[test]
    fn values_appended_while_a_rewrite_copies_are_kept_at_the_swap() {
        let mut log = ValueLog::default();
        let mut old = log.append(b"old and kept");
        let gone = log.append(&vec![1u8; TAIL_BYTES * 2]);
        log.release(gone);
        log.start_rewrite(std::iter::once(&old));
        assert!(log.rewrite.is_some());
        // Appended after the start: one reaches the file, one stays in the tail.
        let big = vec![2u8; TAIL_BYTES];
        let mut to_file = log.append(&big);
        let mut in_tail = log.append(b"in the tail");
        assert_eq!(
            log.read(old),
            Ok(b"old and kept".to_vec()),
            "reads use the old file meanwhile"
        );
        // A second compaction while the first rewrite runs starts nothing.
        log.start_rewrite(std::iter::once(&old));
        log.swap_rewritten([&mut old, &mut to_file, &mut in_tail].into_iter());
        assert_eq!(log.read(old), Ok(b"old and kept".to_vec()));
        assert_eq!(log.read(to_file), Ok(big));
        assert_eq!(log.read(in_tail), Ok(b"in the tail".to_vec()));
        assert_eq!(log.bytes(), 12 + TAIL_BYTES as u64 + 11);
        // Appends go on in the fresh file.
        let next = log.append(b"next");
        assert_eq!(log.read(next), Ok(b"next".to_vec()));
        assert_eq!(log.failure(), None);
    }

    #[test]
    fn a_rewrite_that_missed_a_kept_value_changes_nothing() {
        let mut log = ValueLog::default();
        let a = log.append(&vec![1u8; TAIL_BYTES]);
        let mut b = log.append(&vec![2u8; TAIL_BYTES]);
        log.start_rewrite(std::iter::once(&a));
        let before = log.bytes();
        log.swap_rewritten(std::iter::once(&mut b));
        assert_eq!(log.bytes(), before, "the old file stays");
        assert_eq!(log.read(b), Ok(vec![2u8; TAIL_BYTES]));
    }

    #[test]
    fn clearing_during_a_rewrite_drops_it() {
        let mut log = ValueLog::default();
        let a = log.append(&vec![1u8; TAIL_BYTES * 4]);
        log.start_rewrite(std::iter::once(&a));
        log.clear();
        assert!(log.rewrite.is_none());
        assert!(!log.rewrite_ready());
        let b = log.append(b"after");
        assert_eq!(log.read(b), Ok(b"after".to_vec()));
        assert_eq!(log.failure(), None);
    }

    #[test]
    fn an_unusable_directory_is_a_recorded_failure_not_a_panic() {
        let mut log = ValueLog::in_dir(PathBuf::from("/nonexistent/cairn-values"));
        let r = log.append(&vec![3u8; TAIL_BYTES]);
        let msg = log.failure().expect("failure recorded").to_string();
        assert!(msg.contains("/nonexistent/cairn-values"), "{msg}");
        // Nothing is lost: the bytes stay in memory.
        assert_eq!(log.read(r).map(|v| v.len()), Ok(TAIL_BYTES));
    }
}
