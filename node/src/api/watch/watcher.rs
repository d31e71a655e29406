//! One watcher of a stream: the task that forwards its events, batched and fragmented as etcd sends
//! them, and answers progress checks.
//!
//! Batching follows etcd's watchable store: events applied while the watcher keeps up go out as one
//! response per revision (etcd's `notify`), with that revision in the header; history replayed for a
//! past start revision, and a burst the watcher fell behind on, go out as one response of up to
//! `MAX_REVISIONS_PER_RESPONSE` revisions with the store's revision in the header (etcd's
//! `syncWatchers` and `watchBatchMaxRevs`). A revision's events are never split across responses,
//! except into fragments when the watcher asked for them.

use std::time::Duration;

use etcd_client::proto::{PbEvent, PbWatchResponse};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{compacted, failed, fragment, Stream};
use crate::api::header::header;
use crate::mvcc::{CatchUp, WatchBatch, WatchFeed, WatchId};

/// etcd's `watchBatchMaxRevs`: at most this many revisions in one replayed response.
const MAX_REVISIONS_PER_RESPONSE: usize = 1000;

/// A request from the stream to one watcher task.
pub enum Ctl {
    /// Answer with the revision up to which every event of this watcher was sent, or None if it is
    /// still catching up (a ProgressRequest is answered once every watcher of the stream has caught up).
    Progress(oneshot::Sender<Option<i64>>),
}

/// What a watcher was created with, beyond its key range.
pub struct Options {
    pub id: i64,
    pub progress_notify: bool,
    pub fragment: bool,
}

/// Starts the task forwarding hub watcher `hub` to the stream as watch `opts.id`.
pub fn spawn(
    stream: Stream,
    hub: WatchId,
    feed: WatchFeed,
    opts: Options,
    ctl: mpsc::UnboundedReceiver<Ctl>,
) -> JoinHandle<()> {
    tokio::spawn(run(stream, hub, feed, opts, ctl))
}

async fn run(
    stream: Stream,
    hub: WatchId,
    mut feed: WatchFeed,
    opts: Options,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
) {
    let app = &stream.app;
    let every = jittered(stream.progress_interval);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // etcd's `sws.progress[id]`: no events were sent since the last tick, so this tick notifies.
    let mut quiet = true;
    loop {
        let resps = tokio::select! {
            // Queued live batches go out before catching up, which continues after them.
            biased;
            b = feed.rx.recv() => match b {
                Some(b) => vec![live(&stream, opts.id, b)],
                None => break,
            },
            _ = feed.lagging.notified() => {
                let mut missed = Vec::new();
                while let Ok(b) = feed.rx.try_recv() {
                    missed.push(b);
                }
                let (caught, rev) = {
                    let mut st = app.store().write();
                    (st.catch_up(hub), st.revision())
                };
                match caught {
                    CatchUp::Batches(bs) => {
                        missed.extend(bs);
                        replayed(&stream, opts.id, missed, rev)
                    }
                    CatchUp::Compacted(c) => vec![compacted(app, opts.id, c)],
                    CatchUp::Failed(e) => vec![failed(app, opts.id, &e)],
                }
            }
            Some(Ctl::Progress(reply)) = ctl.recv() => {
                let _ = reply.send(synced_revision(&stream, hub, &feed));
                continue;
            }
            _ = tick.tick(), if opts.progress_notify => {
                let notify = std::mem::replace(&mut quiet, true);
                match synced_revision(&stream, hub, &feed) {
                    Some(rev) if notify => vec![PbWatchResponse {
                        header: header(app, rev),
                        watch_id: opts.id,
                        ..Default::default()
                    }],
                    _ => continue,
                }
            }
        };
        for resp in resps {
            if !resp.events.is_empty() {
                quiet = false;
            }
            let parts = if opts.fragment {
                fragment::split(resp, stream.fragment_bytes)
            } else {
                vec![resp]
            };
            for part in parts {
                if stream.out.send(Ok(part)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The store's revision if the watcher has received every event up to it (nothing queued, not
/// catching up): checked under the store's lock, which apply holds while it hands out events.
fn synced_revision(stream: &Stream, hub: WatchId, feed: &WatchFeed) -> Option<i64> {
    let st = stream.app.store().read();
    (feed.rx.is_empty() && st.watcher_synced(hub)).then(|| st.revision())
}

/// One live revision's events.
fn live(stream: &Stream, id: i64, b: WatchBatch) -> PbWatchResponse {
    PbWatchResponse {
        header: header(&stream.app, b.revision),
        watch_id: id,
        events: b.events,
        ..Default::default()
    }
}

/// Missed revisions' events, at most `MAX_REVISIONS_PER_RESPONSE` revisions per response.
fn replayed(stream: &Stream, id: i64, batches: Vec<WatchBatch>, rev: i64) -> Vec<PbWatchResponse> {
    let mut out = Vec::new();
    let mut batches = batches.into_iter().peekable();
    while batches.peek().is_some() {
        let events: Vec<PbEvent> = batches
            .by_ref()
            .take(MAX_REVISIONS_PER_RESPONSE)
            .flat_map(|b| b.events)
            .collect();
        out.push(PbWatchResponse {
            header: header(&stream.app, rev),
            watch_id: id,
            events,
            ..Default::default()
        });
    }
    out
}

/// etcd's `GetProgressReportInterval`: the interval plus up to a tenth more, so watchers created
/// together do not all report at once.
fn jittered(interval: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let tenth = (interval.as_nanos() / 10).max(1);
    let jitter = u64::try_from(u128::from(random) % tenth).unwrap_or(0);
    interval + Duration::from_nanos(jitter)
}
