//! Work that may take seconds (a range over a large part of the keyspace, a hash of every value)
//! done without holding up the runtime's other tasks.

/// Ranges with a limit up to this many keys are answered (or applied, in a txn) in place.
const SMALL_RANGE: i64 = 1000;

/// Whether a range over `range_end` with `limit` may take long: a span of keys without a limit or
/// with a large one (a single key, `range_end` empty, never does).
pub fn range_may_take_long(range_end: &[u8], limit: i64) -> bool {
    !range_end.is_empty() && (limit <= 0 || limit > SMALL_RANGE)
}

/// Run `f`, which may take long, without holding up the runtime's other tasks. With one worker
/// thread per member (members sharing a host, or a host with one CPU) a range over hundreds of
/// thousands of keys answered in place stopped this member's Raft traffic (heartbeats, appends) until
/// it was done. `block_in_place` hands the worker's other tasks to another thread meanwhile; the
/// hand-off costs a thread wake-up, so small requests stay in place. Outside a multi-thread runtime
/// (unit tests) `f` just runs.
pub fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    match flavor {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// [`off_worker`] when `long`, else `f` in place (a hand-off costs more than short work).
pub fn off_worker_if<R>(long: bool, f: impl FnOnce() -> R) -> R {
    if long {
        off_worker(f)
    } else {
        f()
    }
}
