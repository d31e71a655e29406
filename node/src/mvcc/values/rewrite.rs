//! The value-file rewrite after a compaction, run on its own thread so that apply does not stall
//! while the live values are copied (at 1 GiB of values that copy takes seconds, and every write
//! waited for it when it ran inside apply).
//!
//! The thread copies the values that were live when it started, in file order, into a fresh file.
//! Apply keeps appending to the old file meanwhile, and reads keep using it. The thread then copies
//! the bytes appended since its start verbatim behind the copied ones, in rounds, until what is left
//! is small. The swap ([`ValueLog::swap_rewritten`](super::ValueLog::swap_rewritten)), under the
//! store's write lock, copies that remainder (so the stall does not grow with the write rate during
//! the copy) and keeps where each value went; the key index is then repointed a slice at a time,
//! references not yet repointed being translated when read. Offsets are local to this member (the file is a cache), so when the
//! swap happens changes nothing that members must agree on.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{copy_verbatim, Layers, ValueLog, ValueRef};
use crate::writeback::Pacer;

/// How often (in values) the copy looks whether it was canceled.
const CANCEL_CHECK_EVERY: usize = 4096;
/// The thread's catch-up stops once fewer bytes than this were appended since its last round: the
/// swap copies them under the lock.
const CATCH_UP_SLACK: u64 = if cfg!(test) { 64 << 10 } else { 4 << 20 };
/// At most this many catch-up rounds (a write rate above the copy's would never let them end).
const CATCH_UP_ROUNDS: usize = 8;

/// What the thread made: the fresh file, and for each copied value (in old-offset order) its old
/// offset and its new reference.
pub(super) struct Copied {
    pub fresh: ValueLog,
    pub olds: Vec<u64>,
    pub news: Vec<ValueRef>,
    /// `(base, to)`: the old bytes from the start's end up to `to` are at `base` on in `fresh`.
    pub caught_up: Option<(u64, u64)>,
}

/// A rewrite under way.
pub(super) struct Rewrite {
    /// Bytes of the old file the copy covers: values at or past this offset were appended after the
    /// start and are copied at the swap.
    pub upto: u64,
    /// How far the old log's files reach now (published by each flush), for the catch-up.
    reach: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Copied, String>>>,
}

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrite").field("upto", &self.upto).finish()
    }
}

impl Rewrite {
    /// Start copying the values at `refs` (non-empty, all below `upto`, in `old`) into a fresh file
    /// in `dir`, a log of generation `gen`; `old`'s files reach `reach` now (all of it written).
    pub fn start(
        old: Layers,
        upto: u64,
        reach: u64,
        mut refs: Vec<ValueRef>,
        dir: Option<PathBuf>,
        gen: u8,
    ) -> Result<Rewrite, String> {
        let cancel = Arc::new(AtomicBool::new(false));
        let reach = Arc::new(AtomicU64::new(reach));
        let (stop, reached) = (cancel.clone(), reach.clone());
        let thread = std::thread::Builder::new()
            .name("value-rewrite".into())
            .spawn(move || {
                crate::writeback::background_priority();
                refs.sort_unstable_by_key(|r| r.off);
                refs.dedup();
                let mut c = copy(&old, &refs, dir, gen, &stop)?;
                c.caught_up = catch_up(&old, upto, &reached, &mut c.fresh, &stop)?;
                Ok(c)
            })
            .map_err(|e| format!("starting the value-file rewrite thread: {e}"))?;
        Ok(Rewrite {
            upto,
            reach,
            cancel,
            thread: Some(thread),
        })
    }

    /// The old log's files now reach offset `end` (everything below it is written).
    pub fn published(&self, end: u64) {
        self.reach.store(end, Ordering::Release);
    }

    /// Whether the copy is over (done, failed or canceled): the swap will not wait.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// The copy's outcome, waiting for it if it is still running.
    pub fn join(mut self) -> Result<Copied, String> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("the value-file rewrite thread panicked".into())),
            None => Err("the value-file rewrite was already taken".into()),
        }
    }
}

impl Drop for Rewrite {
    /// A rewrite dropped unjoined (the store was cleared or rebuilt) stops at its next check; its
    /// fresh file is unnamed and goes with it.
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

fn copy(
    old: &Layers,
    refs: &[ValueRef],
    dir: Option<PathBuf>,
    gen: u8,
    stop: &AtomicBool,
) -> Result<Copied, String> {
    let mut fresh = ValueLog {
        dir,
        gen,
        ..ValueLog::default()
    };
    let mut olds = Vec::with_capacity(refs.len());
    let mut news = Vec::with_capacity(refs.len());
    let mut buf = Vec::new();
    let mut pacer = Pacer::default();
    for (i, r) in refs.iter().enumerate() {
        if i % CANCEL_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
            return Err("canceled".into());
        }
        old.read_into(*r, &mut buf)
            .map_err(|e| format!("reading the value file at {}+{}: {e}", r.off, r.len))?;
        olds.push(r.off);
        news.push(fresh.append(&buf));
        fresh.pace(&mut pacer);
    }
    fresh.flush();
    match fresh.failure() {
        Some(e) => Err(e.to_string()),
        None => Ok(Copied {
            fresh,
            olds,
            news,
            caught_up: None,
        }),
    }
}

/// Copy the bytes the old log appended since `upto` verbatim into `fresh`, in rounds, until fewer
/// than [`CATCH_UP_SLACK`] are left: returns where they start in `fresh` and how far they reach.
fn catch_up(
    old: &Layers,
    upto: u64,
    reach: &AtomicU64,
    fresh: &mut ValueLog,
    stop: &AtomicBool,
) -> Result<Option<(u64, u64)>, String> {
    if old.files.file.is_none() {
        // Nothing was in the appended file at the start: what follows is in a file this copy
        // cannot see; the swap copies it.
        return Ok(None);
    }
    let base = fresh.bytes();
    let mut to = upto;
    let mut pacer = Pacer::from(fresh.written);
    for _ in 0..CATCH_UP_ROUNDS {
        let end = reach.load(Ordering::Acquire);
        if end.saturating_sub(to) < CATCH_UP_SLACK {
            break;
        }
        // Bytes below `end` are in the appended file (published after they were written).
        let written = end - old.files.base_len;
        copy_verbatim(&old.files, written, (to, end), fresh, |fresh| {
            if stop.load(Ordering::Relaxed) {
                return Err("canceled".into());
            }
            fresh.pace(&mut pacer);
            Ok(())
        })?;
        to = end;
    }
    fresh.flush();
    match fresh.failure() {
        Some(e) => Err(e.to_string()),
        None => Ok(Some((base, to))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catch_up_copies_what_was_appended_since_the_start_verbatim() {
        let mut old = ValueLog::default();
        old.append(&vec![1u8; 300 << 10]);
        old.flush();
        let upto = old.bytes();
        let start = old.layers();
        // Appended after the start: more than the slack, so the thread copies it.
        let later: Vec<u8> = (0..=255u8).cycle().take(200 << 10).collect();
        let r = old.append(&later);
        old.flush();
        let reach = AtomicU64::new(old.bytes());
        let mut fresh = ValueLog::default();
        fresh.append(b"copied before");
        let (base, to) = catch_up(&start, upto, &reach, &mut fresh, &AtomicBool::new(false))
            .expect("catch-up")
            .expect("something to copy");
        assert_eq!((base, to), (13, upto + later.len() as u64));
        let moved = ValueRef {
            off: base + (r.off - upto),
            ..r
        };
        assert_eq!(fresh.read(moved), Ok(later));
        // Under the slack: left to the swap.
        let reach = AtomicU64::new(upto + 1000);
        let mut fresh = ValueLog::default();
        let got = catch_up(&start, upto, &reach, &mut fresh, &AtomicBool::new(false));
        assert_eq!(got, Ok(Some((0, upto))));
        assert_eq!(fresh.bytes(), 0);
    }
}
