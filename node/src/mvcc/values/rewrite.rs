//! The value-file rewrite after a compaction, run on its own thread so that apply does not stall
//! while the live values are copied (at 1 GiB of values that copy takes seconds, and every write
//! waited for it when it ran inside apply).
//!
//! The thread copies the values that were live when it started, in file order, into a fresh file.
//! Apply keeps appending to the old file meanwhile, and reads keep using it. Once the copy is done,
//! the next write [`swaps`](super::ValueLog::swap_rewritten) under the store's write lock: the bytes
//! appended since the start are copied verbatim behind the copied ones (one sequential copy) and
//! every reference is repointed. Offsets are local to this member (the file is a cache), so when the
//! swap happens changes nothing that members must agree on.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Layers, ValueLog, ValueRef};

/// How often (in values) the copy looks whether it was canceled.
const CANCEL_CHECK_EVERY: usize = 4096;

/// What the thread made: the fresh file, and for each copied value (in old-offset order) its old
/// offset and its new reference.
pub(super) struct Copied {
    pub fresh: ValueLog,
    pub moved: Vec<(u64, ValueRef)>,
}

/// The new place of the value that was at `old`, if the rewrite that made `moved` copied it.
pub(super) fn moved_ref(moved: &[(u64, ValueRef)], old: ValueRef) -> Option<ValueRef> {
    let i = moved.binary_search_by_key(&old.off, |(o, _)| *o).ok()?;
    let (_, new) = moved[i];
    (new.len == old.len).then_some(new)
}

/// A rewrite under way.
pub(super) struct Rewrite {
    /// Bytes of the old file the copy covers: values at or past this offset were appended after the
    /// start and are copied at the swap.
    pub upto: u64,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Copied, String>>>,
}

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrite").field("upto", &self.upto).finish()
    }
}

impl Rewrite {
    /// Start copying the values at `refs` (non-empty, all below `upto`, in `old`) into a fresh file in `dir`.
    pub fn start(
        old: Layers,
        upto: u64,
        mut refs: Vec<ValueRef>,
        dir: Option<PathBuf>,
    ) -> Result<Rewrite, String> {
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("value-rewrite".into())
            .spawn(move || {
                refs.sort_unstable_by_key(|r| r.off);
                refs.dedup();
                copy(&old, &refs, dir, &stop)
            })
            .map_err(|e| format!("starting the value-file rewrite thread: {e}"))?;
        Ok(Rewrite {
            upto,
            cancel,
            thread: Some(thread),
        })
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
    stop: &AtomicBool,
) -> Result<Copied, String> {
    let mut fresh = ValueLog {
        dir,
        ..ValueLog::default()
    };
    let mut moved = Vec::with_capacity(refs.len());
    let mut buf = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        if i % CANCEL_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
            return Err("canceled".into());
        }
        old.read_into(*r, &mut buf)
            .map_err(|e| format!("reading the value file at {}+{}: {e}", r.off, r.len))?;
        moved.push((r.off, fresh.append(&buf)));
    }
    fresh.flush();
    match fresh.failure() {
        Some(e) => Err(e.to_string()),
        None => Ok(Copied { fresh, moved }),
    }
}
