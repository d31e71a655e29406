//! Watch: one bidirectional stream per client carrying many watchers (create, cancel, progress).
//! Each watcher has a task of its own (`watcher`); this file runs the stream's requests, the
//! stream-wide ProgressRequest. A lost leader ends require-leader streams in `require_leader`.

mod fragment;
mod watcher;

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use etcd_client::proto::{PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::guard::{Guard, Identity};
use super::header::{current, header};
use crate::member::App;
use crate::mvcc::auth::AuthError;
use crate::mvcc::{WatchId, WatchSpec, WatchStart};

/// etcd's InvalidWatchID: the ID of a progress response that answers a ProgressRequest.
const PROGRESS_WATCH_ID: i64 = -1;
/// How often a deferred ProgressRequest asks again whether every watcher has caught up.
const PROGRESS_RETRY: Duration = Duration::from_millis(10);

/// The Watch service.
pub struct WatchService {
    app: App,
    guard: Guard,
    fragment_bytes: usize,
    progress_interval: Duration,
}

impl WatchService {
    /// Responses of at least `fragment_bytes` are fragmented for watchers that ask;
    /// `progress_interval` is `--experimental-watch-progress-notify-interval`.
    pub fn new(app: App, guard: Guard, fragment_bytes: usize, progress_interval: Duration) -> Self {
        WatchService {
            app,
            guard,
            fragment_bytes,
            progress_interval,
        }
    }
}

type Out = mpsc::Sender<Result<PbWatchResponse, Status>>;

/// What every task of one watch stream shares.
#[derive(Clone)]
struct Stream {
    app: App,
    out: Out,
    /// etcd's `sws.maxRequestBytes`: `--max-request-bytes` plus gRPC's overhead.
    fragment_bytes: usize,
    progress_interval: Duration,
    /// The auth checks, and the user the stream's token (or certificate) names.
    access: (Guard, Identity),
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = Pin<Box<dyn futures::Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // The stream's token (or certificate) names the user of every watch created on it.
        self.guard.caller(&req)?;
        let identity = Identity::of(&req);
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(128);
        let stream = Stream {
            app: self.app.clone(),
            out: tx,
            fragment_bytes: self.fragment_bytes,
            progress_interval: self.progress_interval,
            access: (self.guard.clone(), identity),
        };
        tokio::spawn(session(stream, inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A live watcher of this stream: its hub registration, its task and the task's control channel.
struct Live {
    hub: WatchId,
    task: JoinHandle<()>,
    ctl: mpsc::UnboundedSender<watcher::Ctl>,
}

/// The next request of the stream, or None once the session is over. A client that closes its send
/// side (grpcurl, Python's `iter([request])`, several SDKs) has only stopped sending: its watchers keep
/// streaming until it cancels the call or the server ends it, as etcd's do (then, e.g. when a
/// require-leader stream lost its leader, the response is gone and so is the session).
async fn next_request(
    inbound: &mut Streaming<PbWatchRequest>,
    out: &Out,
) -> Option<PbWatchRequest> {
    let next = tokio::select! {
        next = inbound.message() => next,
        _ = out.closed() => return None,
    };
    match next {
        Ok(Some(req)) => Some(req),
        Ok(None) => {
            out.closed().await;
            None
        }
        // A request over the size limit ends the stream with gRPC's status, as etcd's does.
        Err(e) => {
            let _ = out.send(Err(super::too_large::grpc_status(e))).await;
            None
        }
    }
}

async fn session(stream: Stream, mut inbound: Streaming<PbWatchRequest>) {
    let (app, out) = (&stream.app, &stream.out);
    let mut live: HashMap<i64, Live> = HashMap::new();
    let mut next_id: i64 = 0;
    loop {
        let Some(req) = next_request(&mut inbound, out).await else {
            break;
        };
        let resp = match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let id = if c.watch_id != 0 {
                    c.watch_id
                } else {
                    next_free(&mut next_id, &live)
                };
                let std::collections::hash_map::Entry::Vacant(slot) = live.entry(id) else {
                    let taken = PbWatchResponse {
                        header: current(app),
                        watch_id: id,
                        created: true,
                        canceled: true,
                        cancel_reason: "etcdserver: mvcc: watcher ID in use".into(),
                        ..Default::default()
                    };
                    if out.send(Ok(taken)).await.is_err() {
                        break;
                    }
                    continue;
                };
                let (guard, identity) = &stream.access;
                if guard.watch(identity, &c.key, &c.range_end).is_err() {
                    // etcd answers created + canceled with permission denied, whatever the refusal.
                    let refused = PbWatchResponse {
                        header: current(app),
                        watch_id: id,
                        created: true,
                        canceled: true,
                        cancel_reason: format!(
                            "rpc error: code = PermissionDenied desc = etcdserver: {}",
                            AuthError::PermissionDenied
                        ),
                        ..Default::default()
                    };
                    if out.send(Ok(refused)).await.is_err() {
                        break;
                    }
                    continue;
                }
                let spec = WatchSpec {
                    key: c.key,
                    range_end: c.range_end,
                    prev_kv: c.prev_kv,
                    no_put: c.filters.contains(&0),
                    no_delete: c.filters.contains(&1),
                };
                let opts = watcher::Options {
                    id,
                    progress_notify: c.progress_notify,
                    fragment: c.fragment,
                };
                if let Some(l) = create(&stream, spec, c.start_revision, opts).await {
                    slot.insert(l);
                }
                continue;
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                if let Some(l) = live.remove(&c.watch_id) {
                    stop(app, l);
                }
                PbWatchResponse {
                    header: current(app),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                }
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                let watchers = live.values().map(|l| l.ctl.clone()).collect();
                tokio::spawn(progress_all(stream.clone(), watchers));
                continue;
            }
            None => continue,
        };
        if out.send(Ok(resp)).await.is_err() {
            break;
        }
    }
    for (_, l) in live {
        stop(app, l);
    }
}

/// Answers a ProgressRequest as etcd 3.5 does (`progressIfSync`): once every watcher of the stream has
/// sent all its events up to a revision, one response with watch ID -1 and that revision; deferred
/// while a watcher is still catching up, so the revision never runs ahead of events still to come.
/// A stream without watchers gets the store's revision (etcd 3.4).
async fn progress_all(stream: Stream, watchers: Vec<mpsc::UnboundedSender<watcher::Ctl>>) {
    loop {
        let mut upto: Option<i64> = None;
        let mut all_synced = true;
        for w in &watchers {
            let (tx, rx) = oneshot::channel();
            if w.send(watcher::Ctl::Progress(tx)).is_err() {
                continue; // canceled meanwhile
            }
            match rx.await {
                Ok(Some(rev)) => upto = Some(upto.map_or(rev, |u| u.min(rev))),
                Ok(None) => all_synced = false,
                Err(_) => {}
            }
        }
        if all_synced {
            let header = match upto {
                Some(rev) => header(&stream.app, rev),
                None => current(&stream.app),
            };
            let resp = PbWatchResponse {
                header,
                watch_id: PROGRESS_WATCH_ID,
                ..Default::default()
            };
            let _ = stream.out.send(Ok(resp)).await;
            return;
        }
        if stream.out.is_closed() {
            return;
        }
        tokio::time::sleep(PROGRESS_RETRY).await;
    }
}

fn next_free(next: &mut i64, live: &HashMap<i64, Live>) -> i64 {
    while live.contains_key(next) {
        *next += 1;
    }
    let id = *next;
    *next += 1;
    id
}

fn stop(app: &App, l: Live) {
    l.task.abort();
    app.store().write().unwatch(l.hub);
}

/// Register the watcher (replaying history), answer `created`, and start forwarding its events.
/// A start revision below the compaction is answered like etcd: created, then canceled with the
/// compact revision.
async fn create(
    stream: &Stream,
    spec: WatchSpec,
    start: i64,
    opts: watcher::Options,
) -> Option<Live> {
    let (app, out, id) = (&stream.app, &stream.out, opts.id);
    let started = app.store().write().watch(spec, start);
    let created = PbWatchResponse {
        header: current(app),
        watch_id: id,
        created: true,
        ..Default::default()
    };
    out.send(Ok(created)).await.ok()?;
    match started {
        WatchStart::Compacted(rev) => {
            let _ = out.send(Ok(compacted(app, id, rev))).await;
            None
        }
        WatchStart::Watching(hub, feed) => {
            let (ctl, ctl_rx) = mpsc::unbounded_channel();
            let task = watcher::spawn(stream.clone(), hub, feed, opts, ctl_rx);
            Some(Live { hub, task, ctl })
        }
    }
}

/// The watcher's history could not be read (the value file failed): it is canceled with the reason.
fn failed(app: &App, id: i64, e: &crate::mvcc::MvccError) -> PbWatchResponse {
    PbWatchResponse {
        header: header(app, 0),
        watch_id: id,
        canceled: true,
        cancel_reason: format!("etcdserver: {e}"),
        ..Default::default()
    }
}

/// etcd's answer to a watcher whose start (or catch-up) revision was compacted: canceled, with the
/// compact revision and no revision in the header.
fn compacted(app: &App, id: i64, rev: i64) -> PbWatchResponse {
    PbWatchResponse {
        header: header(app, 0),
        watch_id: id,
        canceled: true,
        compact_revision: rev,
        cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
        ..Default::default()
    }
}
