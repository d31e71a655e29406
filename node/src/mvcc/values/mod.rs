//! Value bytes live in a file, not in memory: the key index keeps a [`ValueRef`] (offset and length)
//! per version and reads the bytes back with `pread` when a request needs them.
//!
//! Why: a key's whole history since the last compaction is retained, and its values dominate the
//! store's memory (a 256-byte value costs ~300 bytes of heap; its index entry ~70). etcd keeps them in
//! bbolt's memory-mapped file; here they go to an append-only file that the kernel's page cache
//! serves, so resident memory holds only the index.
//!
//! Two layers: a store rebuilt from a snapshot reads the values the snapshot holds from the snapshot
//! file itself (its *base*, never written: a restart or a snapshot install reads no value), and
//! appends later values to its own file. The appended file is a cache derived from the Raft log, never
//! a source of truth: it is not fsynced, it is replaced when the store is rebuilt, and it is unnamed
//! (made with `O_TMPFILE` in the data dir where the kernel supports it), so nothing is left behind
//! after a crash. Bytes once written are never changed (a rebuild starts a new file), so a reader that
//! took the [`Layers`] can read them without the store's lock. After a compaction frees most of the
//! values, the live ones are copied into a fresh file, off the apply path ([`rewrite`]).
//!
//! An I/O error is fatal to the member: it is recorded ([`ValueLog::failure`]) and the state machine
//! stops applying, because a member that carried on with a missing value would diverge from the others.

mod rewrite;
mod verify;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::MvccError;
use crate::writeback::Pacer;
use rewrite::Rewrite;
use verify::Verify;

/// Appended bytes are written to the file once this many have gathered.
const TAIL_BYTES: usize = 256 * 1024;
/// A compaction rewrites the file only when it holds at least this much and under half of it is live
/// (less in unit tests, so that they reach a rewrite with little data).
const REWRITE_MIN_BYTES: u64 = if cfg!(test) { 1 << 20 } else { 64 << 20 };
/// Bytes appended during a rewrite are copied (by its catch-up and its swap) in reads of this size.
const COPY_PIECE_BYTES: u64 = 1 << 20;

/// Where one value's bytes are in the value log (offsets run across the base, then the file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValueRef {
    off: u64,
    len: u32,
    /// The generation of the value log the offset is in: each rewrite starts a new one, and a
    /// reference into the one before is translated (see [`Moved`]) until the key index has been
    /// repointed. Not encoded: a snapshot's references are into its own file, generation 0.
    #[serde(skip)]
    gen: u8,
}

impl ValueRef {
    /// Length of the value in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// A value of `len` bytes at offset `off` of a snapshot's value section.
    pub fn from_parts(off: u64, len: u32) -> ValueRef {
        ValueRef { off, len, gen: 0 }
    }

    /// Offset and length, as a snapshot's index records them.
    pub fn parts(self) -> (u64, u32) {
        (self.off, self.len)
    }

    /// The same value at offset `off` (of a snapshot's value section).
    pub fn at(self, off: u64) -> ValueRef {
        ValueRef {
            off,
            len: self.len,
            gen: 0,
        }
    }

    /// The offset just past the value.
    pub fn end(self) -> u64 {
        self.off + u64::from(self.len)
    }

    /// Whether `next` starts where this value ends.
    pub fn followed_by(self, next: ValueRef) -> bool {
        self.end() == next.off
    }
}

/// The files of a value log.
#[derive(Debug, Clone, Default)]
struct Files {
    /// A snapshot file whose first `base_len` bytes are values: offsets below `base_len`.
    base: Option<Arc<File>>,
    base_len: u64,
    /// The appended file: offset `base_len + k` is its byte `k`.
    file: Option<Arc<File>>,
}

impl Files {
    /// Fill `buf` from offset `off`, where the appended file holds `written` bytes and `tail` follows.
    fn read_at(&self, buf: &mut [u8], mut off: u64, written: u64, tail: &[u8]) -> io::Result<()> {
        let missing = |what: &str| io::Error::other(format!("the {what} is not open"));
        let mut done = 0;
        while done < buf.len() {
            let want = &mut buf[done..];
            let n = if off < self.base_len {
                let n = want.len().min((self.base_len - off) as usize);
                let f = self.base.as_ref().ok_or_else(|| missing("snapshot file"))?;
                f.read_exact_at(&mut want[..n], off)?;
                n
            } else if off - self.base_len < written {
                let at = off - self.base_len;
                let n = want.len().min((written - at) as usize);
                let f = self.file.as_ref().ok_or_else(|| missing("value file"))?;
                f.read_exact_at(&mut want[..n], at)?;
                n
            } else {
                let at = (off - self.base_len - written) as usize;
                let src = tail.get(at..at + want.len()).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("offset {off} is past the end of the values"),
                    )
                })?;
                want.copy_from_slice(src);
                want.len()
            };
            done += n;
            off += n as u64;
        }
        Ok(())
    }
}

/// Append the bytes `[from, to)` of `files` (all in the files, `written` of them in the appended
/// one) to `fresh` verbatim, a piece at a time; `each` runs after every piece (a cancel check,
/// pacing) and stops the copy with its error.
fn copy_verbatim(
    files: &Files,
    written: u64,
    (from, to): (u64, u64),
    fresh: &mut ValueLog,
    mut each: impl FnMut(&ValueLog) -> Result<(), String>,
) -> Result<(), String> {
    let mut off = from;
    let mut buf = Vec::new();
    while off < to {
        let n = (to - off).min(COPY_PIECE_BYTES);
        buf.resize(n as usize, 0);
        files
            .read_at(&mut buf, off, written, &[])
            .map_err(|e| format!("reading the value file at {off}: {e}"))?;
        fresh.append(&buf);
        each(fresh)?;
        off += n;
    }
    Ok(())
}

/// Where the values of a log that a rewrite replaced are in its copy: the references of the index
/// are repointed a slice of keys at a time after the swap (at a million keys, repointing them all
/// at once held the store's lock for 0.3-0.6 s), and until then a reference of the replaced
/// generation is translated here when it is read.
#[derive(Debug)]
pub struct Moved {
    /// The generation of the replaced log.
    gen: u8,
    /// The old offsets of the values copied one by one, ascending, and their new references.
    olds: Vec<u64>,
    news: Vec<ValueRef>,
    /// The old bytes from `upto` on were copied verbatim to `base` on.
    upto: u64,
    base: u64,
    /// The generation of the copy.
    to_gen: u8,
}

impl Moved {
    /// Where `r` (of the replaced generation) is in the copy; None if it was not copied.
    fn resolve(&self, r: ValueRef) -> Option<ValueRef> {
        if r.off >= self.upto {
            return Some(ValueRef {
                off: self.base + (r.off - self.upto),
                len: r.len,
                gen: self.to_gen,
            });
        }
        let n = self.news[self.olds.binary_search(&r.off).ok()?];
        (n.len == r.len).then_some(n)
    }
}

/// `r` as a reference into the log of generation `gen`, translated through `moved` if it is of
/// the generation before.
fn current(gen: u8, moved: Option<&Moved>, r: ValueRef) -> Result<ValueRef, String> {
    if r.len == 0 || r.gen == gen {
        return Ok(r);
    }
    match moved {
        Some(m) if m.gen == r.gen => m.resolve(r).ok_or_else(|| {
            format!(
                "the value at {}+{} was not copied when the value file was rewritten",
                r.off, r.len
            )
        }),
        _ => Err(format!(
            "the value at {}+{} is in value file generation {}, which was replaced (now {gen})",
            r.off, r.len, r.gen
        )),
    }
}

/// A value log's bytes as they were when taken: readable without the store's lock, because bytes
/// once written are never changed (see the module docs).
#[derive(Debug, Clone)]
pub struct Layers {
    files: Files,
    written: u64,
    tail: Vec<u8>,
    gen: u8,
    moved: Option<Arc<Moved>>,
}

impl Layers {
    /// `r` as a reference into these layers (translated if the index had not been repointed to
    /// them yet).
    pub fn current(&self, r: ValueRef) -> io::Result<ValueRef> {
        current(self.gen, self.moved.as_deref(), r).map_err(io::Error::other)
    }

    /// The bytes at `r` into `buf` (resized to fit).
    pub fn read_into(&self, r: ValueRef, buf: &mut Vec<u8>) -> io::Result<()> {
        self.read_span(r, r, buf)
    }

    /// The bytes from the start of `first` to the end of `last` into `buf` (resized to fit): one
    /// read for values stored one after the other.
    pub fn read_span(&self, first: ValueRef, last: ValueRef, buf: &mut Vec<u8>) -> io::Result<()> {
        let len = last.end().checked_sub(first.off).ok_or_else(|| {
            io::Error::other(format!("a span from {} back to {}", first.off, last.end()))
        })?;
        buf.resize(len as usize, 0);
        self.files.read_at(buf, first.off, self.written, &self.tail)
    }
}

/// The append-only value file of one store.
#[derive(Debug, Default)]
pub struct ValueLog {
    /// Directory the file is made in (the system's temp dir when unset, as in unit tests).
    dir: Option<PathBuf>,
    /// The snapshot file and the appended file (opened on the first write); shared with readers
    /// that took the [`Layers`].
    files: Files,
    /// Bytes written to the appended file; the tail starts here.
    written: u64,
    /// Appended bytes not yet written.
    tail: Vec<u8>,
    /// Bytes referenced by retained versions (decides when a rewrite pays).
    live: u64,
    /// The first I/O error; once set the member must stop applying.
    /// Shared with the check of the snapshot's values, and kept across rewrites.
    failed: Arc<OnceLock<String>>,
    /// The check of the base's values, while it runs.
    verify: Option<Verify>,
    /// A rewrite copying the live values to a fresh file, if one runs.
    rewrite: Option<Rewrite>,
    /// This log's generation (see [`ValueRef::gen`]).
    gen: u8,
    /// Where the values of the log this one replaced went, until the index is repointed.
    moved: Option<Arc<Moved>>,
}

impl ValueLog {
    /// A value log whose file will be made in `dir`.
    pub fn in_dir(dir: PathBuf) -> Self {
        ValueLog {
            dir: Some(dir),
            ..ValueLog::default()
        }
    }

    /// A value log whose first `len` bytes are the values at the start of the snapshot file `base`
    /// (all of them live), appending to a file it makes in `dir`.
    /// Their CRC-32 `crc` is checked on a thread; a mismatch is this log's failure.
    pub fn with_base(dir: PathBuf, base: Arc<File>, path: &Path, len: u64, crc: u32) -> Self {
        let failed = Arc::<OnceLock<String>>::default();
        let verify = Some(Verify::start(base.clone(), path, len, crc, failed.clone()));
        ValueLog {
            dir: Some(dir),
            files: Files {
                base: Some(base),
                base_len: len,
                file: None,
            },
            live: len,
            failed,
            verify,
            ..ValueLog::default()
        }
    }

    /// The snapshot file this log reads its first values from, and how many bytes of it are values.
    pub fn base(&self) -> Option<(&File, u64)> {
        let f = self.files.base.as_deref()?;
        Some((f, self.files.base_len))
    }

    /// Push what was written so far to the disk a window at a time (see [`Pacer`]).
    fn pace(&self, pacer: &mut Pacer) {
        if let Some(f) = &self.files.file {
            pacer.written(f, self.written);
        }
    }

    /// The directory the appended file is made in, if one was given.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// The bytes as they are now, for a reader that works without the store's lock.
    pub fn layers(&self) -> Layers {
        Layers {
            files: self.files.clone(),
            written: self.written,
            tail: self.tail.clone(),
            gen: self.gen,
            moved: self.moved.clone(),
        }
    }

    /// Store `bytes` and return where they are.
    pub fn append(&mut self, bytes: &[u8]) -> ValueRef {
        if bytes.is_empty() {
            return ValueRef::default();
        }
        let r = ValueRef {
            off: self.bytes(),
            len: bytes.len() as u32,
            gen: self.gen,
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
        let r = current(self.gen, self.moved.as_deref(), r).map_err(|e| self.fail(e))?;
        let mut buf = vec![0; r.len()];
        match self
            .files
            .read_at(&mut buf, r.off, self.written, &self.tail)
        {
            Ok(()) => Ok(buf),
            Err(e) => Err(self.fail(format!(
                "reading the value at {}+{} from the value file: {e}",
                r.off, r.len
            ))),
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

    /// Bytes stored, garbage included (the snapshot's values, the file and the tail).
    pub fn bytes(&self) -> u64 {
        self.files.base_len + self.written + self.tail.len() as u64
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

    /// If this log is large enough that a compaction may leave it worth a rewrite, write out the
    /// tail and return the offset below which the rewrite will copy the kept values one by one
    /// (what is appended later is copied verbatim).
    pub fn prepare_rewrite(&mut self) -> Option<u64> {
        if self.bytes() < REWRITE_MIN_BYTES || self.rewrite.is_some() {
            return None;
        }
        self.flush();
        (self.failure().is_none() && self.tail.is_empty()).then(|| self.bytes())
    }

    /// Start copying the values `refs` point at (every kept version's below `upto`, an offset
    /// [`ValueLog::prepare_rewrite`] gave) into a fresh file, on a thread of its own, unless a
    /// rewrite runs already. [`ValueLog::swap_rewritten`] finishes it.
    pub fn start_rewrite(&mut self, refs: Vec<ValueRef>, upto: u64) {
        if self.rewrite.is_some() || self.failure().is_some() {
            return;
        }
        // The copy reads the files only: the catch-up starts from what is written now.
        self.flush();
        if self.bytes() == 0 || self.failure().is_some() || upto > self.bytes() {
            return;
        }
        let gen = self.gen.wrapping_add(1);
        match Rewrite::start(
            self.layers(),
            upto,
            self.bytes(),
            refs,
            self.dir.clone(),
            gen,
        ) {
            Ok(rw) => self.rewrite = Some(rw),
            // The old file stays; the next compaction tries again.
            Err(e) => tracing::warn!("value file not rewritten: {e}"),
        }
    }

    /// Whether a rewrite was started and its file is not used yet.
    pub fn rewrite_running(&self) -> bool {
        self.rewrite.is_some()
    }

    /// Whether a rewrite has finished copying, so that [`ValueLog::swap_rewritten`] will not wait.
    pub fn rewrite_ready(&self) -> bool {
        self.rewrite.as_ref().is_some_and(Rewrite::is_finished)
    }

    /// Finish a rewrite (waiting for its copy if needed): move the values appended since it started
    /// behind the copied ones and use the fresh file. References into this log are translated
    /// from then on until [`ValueLog::repoint`] has been given each of them and
    /// [`ValueLog::repointed`] says so; no other rewrite may be swapped in before. If the copy
    /// failed, the old file stays and nothing changes.
    pub fn swap_rewritten(&mut self) {
        if self.moved.is_some() {
            return;
        }
        let Some(rw) = self.rewrite.take() else {
            return;
        };
        if self.failure().is_some() {
            // The member stops applying; the references must keep pointing into the old file.
            return;
        }
        let upto = rw.upto;
        let started = std::time::Instant::now();
        let rewrite::Copied {
            fresh,
            olds,
            news,
            caught_up,
        } = match rw.join() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("value file not rewritten, the old one stays: {e}");
                return;
            }
        };
        // The thread copied [upto, to) verbatim to `base` on; the rest follows it.
        let tail = match caught_up {
            Some((base, to)) => self.append_since(to, fresh).and_then(|(f, start)| {
                if start == base + (to - upto) {
                    Ok((f, base))
                } else {
                    Err(format!(
                        "the copy's catch-up ends at {start}, not at {}",
                        base + (to - upto)
                    ))
                }
            }),
            None => self.append_since(upto, fresh),
        };
        let (mut fresh, base) = match tail {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("value file not rewritten, the old one stays: {e}");
                return;
            }
        };
        fresh.moved = Some(Arc::new(Moved {
            gen: self.gen,
            olds,
            news,
            upto,
            base,
            to_gen: fresh.gen,
        }));
        fresh.live = self.live;
        // The check of the snapshot's values goes on: a mismatch stops the member all the same.
        fresh.failed = self.failed.clone();
        fresh.verify = self.verify.take();
        let before = self.bytes();
        drop_elsewhere(std::mem::replace(self, fresh));
        tracing::info!(
            before_mib = before >> 20,
            after_mib = self.bytes() >> 20,
            swap_ms = started.elapsed().as_millis() as u64,
            "value file rewritten after compaction"
        );
    }

    /// Whether references into the log this one replaced are still being repointed.
    pub fn repointing(&self) -> bool {
        self.moved.is_some()
    }

    /// Whether `r` is a reference into the log this one replaced.
    pub fn needs_repoint(&self, r: ValueRef) -> bool {
        r.len > 0 && r.gen != self.gen
    }

    /// Point `r` into this log if it points into the one it replaced. A value that was not copied
    /// is this log's failure (the member stops: carrying on without it would diverge).
    pub fn repoint(&self, r: &mut ValueRef) {
        if !self.needs_repoint(*r) {
            return;
        }
        match current(self.gen, self.moved.as_deref(), *r) {
            Ok(n) => *r = n,
            Err(e) => {
                self.fail(e);
            }
        }
    }

    /// Every reference of the index has been given to [`ValueLog::repoint`]: drop the translation.
    pub fn repointed(&mut self) {
        self.moved = None;
    }

    /// `fresh` with the bytes of this log from offset `from` on (file and tail) appended verbatim, and
    /// where they start in it: a value at `from + k` here is at `start + k` there.
    fn append_since(&self, from: u64, mut fresh: ValueLog) -> Result<(ValueLog, u64), String> {
        let start = fresh.bytes();
        let in_files = self.files.base_len + self.written;
        copy_verbatim(
            &self.files,
            self.written,
            (from, in_files),
            &mut fresh,
            |_| Ok(()),
        )?;
        fresh.append(&self.tail);
        fresh.flush();
        match fresh.failure() {
            Some(e) => Err(e.to_string()),
            None => Ok((fresh, start)),
        }
    }

    /// Use `fresh` from now on (the store is being rebuilt); a recorded failure stays recorded.
    pub fn replace(&mut self, fresh: ValueLog) {
        if let Some(f) = self.failure() {
            let _ = fresh.failed.set(f.to_string());
        }
        // The old files are dropped, never truncated: a snapshot being written may still read them.
        // Dropping the old log also drops its rewrite, which stops it.
        drop_elsewhere(std::mem::replace(self, fresh));
    }

    /// Drop every value (the store is being rebuilt).
    pub fn clear(&mut self) {
        let empty = ValueLog {
            dir: self.dir.clone(),
            ..ValueLog::default()
        };
        self.replace(empty);
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
        if self.files.file.is_none() {
            let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
            match tempfile::tempfile_in(&dir) {
                Ok(f) => self.files.file = Some(Arc::new(f)),
                Err(e) => {
                    self.fail(format!(
                        "creating the value file in {}: {e} (check that the data dir is writable)",
                        dir.display()
                    ));
                    return;
                }
            }
        }
        let Some(f) = &self.files.file else { return };
        match f.write_all_at(&self.tail, self.written) {
            Ok(()) => {
                self.written += self.tail.len() as u64;
                self.tail.clear();
                if let Some(rw) = &self.rewrite {
                    rw.published(self.files.base_len + self.written);
                }
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

/// Drop `old` on a thread of its own: closing an unlinked file frees all its blocks, which took
/// hundreds of ms for 750 MiB, and apply must not wait for it. Its deleted files are then freed a
/// piece at a time once the last reader lets go (see [`crate::writeback::free_gradually`]).
fn drop_elsewhere(old: ValueLog) {
    if old.files.file.is_none() && old.files.base.is_none() {
        return;
    }
    for f in [&old.files.file, &old.files.base].into_iter().flatten() {
        match f.try_clone() {
            Ok(f) => crate::writeback::free_gradually(f),
            Err(e) => tracing::debug!("the old value file is freed at its last close: {e}"),
        }
    }
    let dropped = std::thread::Builder::new()
        .name("value-file-drop".into())
        .spawn(move || drop(old));
    if let Err(e) = dropped {
        tracing::warn!("closing the old value file on this thread: {e}");
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
    fn references_into_the_replaced_log_are_translated_to_the_copy() {
        let r = |off, len, gen| ValueRef { off, len, gen };
        // Copied: 10+5 -> 0+5, 30+2 -> 5+2; bytes from 100 on moved to 7 on.
        let moved = Moved {
            gen: 4,
            olds: vec![10, 30],
            news: vec![r(0, 5, 5), r(5, 2, 5)],
            upto: 100,
            base: 7,
            to_gen: 5,
        };
        assert_eq!(current(5, Some(&moved), r(30, 2, 4)), Ok(r(5, 2, 5)));
        assert_eq!(current(5, Some(&moved), r(10, 5, 4)), Ok(r(0, 5, 5)));
        assert_eq!(current(5, Some(&moved), r(104, 3, 4)), Ok(r(11, 3, 5)));
        assert_eq!(current(5, Some(&moved), r(1, 3, 5)), Ok(r(1, 3, 5)));
        for missed in [r(20, 1, 4), r(30, 3, 4)] {
            let e = current(5, Some(&moved), missed).expect_err("not copied");
            assert!(e.contains("not copied"), "{e}");
        }
        let e = current(5, None, r(30, 2, 3)).expect_err("an older generation");
        assert!(e.contains("replaced"), "{e}");
    }

    #[test]
    fn a_rewrite_keeps_only_the_values_still_referenced() {
        let mut log = ValueLog::default();
        let mut keep = log.append(b"keep me");
        let gone = log.append(&vec![1u8; TAIL_BYTES * 2]);
        log.release(gone);
        log.start_rewrite(vec![keep], log.bytes());
        log.swap_rewritten();
        assert!(log.repointing());
        assert_eq!(log.read(keep), Ok(b"keep me".to_vec()), "translated");
        log.repoint(&mut keep);
        assert!(!log.needs_repoint(keep));
        log.repointed();
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
        log.start_rewrite(vec![old], log.bytes());
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
        log.start_rewrite(vec![old], log.bytes());
        log.swap_rewritten();
        let written_after = log.append(b"after the swap");
        for r in [&mut old, &mut to_file, &mut in_tail] {
            let before = log.read(*r);
            log.repoint(r);
            assert_eq!(log.read(*r), before, "the same bytes once repointed");
        }
        log.repointed();
        assert_eq!(log.read(old), Ok(b"old and kept".to_vec()));
        assert_eq!(log.read(to_file), Ok(big));
        assert_eq!(log.read(in_tail), Ok(b"in the tail".to_vec()));
        assert_eq!(log.read(written_after), Ok(b"after the swap".to_vec()));
        assert_eq!(log.bytes(), 12 + TAIL_BYTES as u64 + 11 + 14);
        assert_eq!(log.failure(), None);
    }

    #[test]
    fn a_value_the_rewrite_missed_is_a_recorded_failure_not_a_wrong_value() {
        let mut log = ValueLog::default();
        let a = log.append(&vec![1u8; TAIL_BYTES]);
        let mut b = log.append(&vec![2u8; TAIL_BYTES]);
        log.start_rewrite(vec![a], log.bytes());
        log.swap_rewritten();
        assert!(log.read(b).is_err());
        log.repoint(&mut b);
        let msg = log.failure().expect("failure recorded");
        assert!(msg.contains("not copied"), "{msg}");
    }

    #[test]
    fn clearing_during_a_rewrite_drops_it() {
        let mut log = ValueLog::default();
        let a = log.append(&vec![1u8; TAIL_BYTES * 4]);
        log.start_rewrite(vec![a], log.bytes());
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
