//! Watch: one bidirectional stream per client carrying many watchers (create, cancel, progress).

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use etcd_client::proto::{PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::guard::{Caller, Guard};
use super::header::{current, header};
use crate::member::App;
use crate::mvcc::{CatchUp, WatchBatch, WatchId, WatchSpec, WatchStart};

/// etcd's default `--experimental-watch-progress-notify-interval`.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(600);
/// etcd's InvalidWatchID: the ID of a progress response that answers a ProgressRequest.
const PROGRESS_WATCH_ID: i64 = -1;

/// The Watch service.
pub struct WatchService {
    app: App,
    guard: Guard,
}

impl WatchService {
    pub fn new(app: App, guard: Guard) -> Self {
        WatchService { app, guard }
    }
}

type Out = mpsc::Sender<Result<PbWatchResponse, Status>>;

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // The stream's token (or certificate) names the user of every watch created on it.
        let caller = self.guard.caller(&req)?;
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(128);
        let access = (self.guard.clone(), caller);
        tokio::spawn(session(self.app.clone(), access, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A live watcher of this stream: its hub registration and the task that forwards its events.
struct Live {
    hub: WatchId,
    task: JoinHandle<()>,
}

/// The next request of the stream, or None once the session is over. A client that closes its send
/// side (grpcurl, Python's `iter([request])`, several SDKs) has only stopped sending: its watchers keep
/// streaming until it cancels the call or the server ends it, as etcd's do.
async fn next_request(
    inbound: &mut Streaming<PbWatchRequest>,
    out: &Out,
) -> Option<PbWatchRequest> {
    match inbound.message().await {
        Ok(Some(req)) => Some(req),
        Ok(None) => {
            out.closed().await;
            None
        }
        Err(_) => None,
    }
}

async fn session(
    app: App,
    (guard, caller): (Guard, Caller),
    mut inbound: Streaming<PbWatchRequest>,
    out: Out,
) {
    let mut live: HashMap<i64, Live> = HashMap::new();
    let mut next_id: i64 = 0;
    while let Some(req) = next_request(&mut inbound, &out).await {
        let resp = match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let id = if c.watch_id != 0 {
                    c.watch_id
                } else {
                    next_free(&mut next_id, &live)
                };
                let std::collections::hash_map::Entry::Vacant(slot) = live.entry(id) else {
                    let taken = PbWatchResponse {
                        header: current(&app),
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
                if let Err(e) = guard.watch(&caller, &c.key, &c.range_end) {
                    // etcd answers created + canceled with the gRPC error's text as the reason.
                    let refused = PbWatchResponse {
                        header: current(&app),
                        watch_id: id,
                        created: true,
                        canceled: true,
                        cancel_reason: format!(
                            "rpc error: code = PermissionDenied desc = etcdserver: {e}"
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
                if let Some(l) =
                    create(&app, &out, id, spec, c.start_revision, c.progress_notify).await
                {
                    slot.insert(l);
                }
                continue;
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                if let Some(l) = live.remove(&c.watch_id) {
                    stop(&app, l);
                }
                PbWatchResponse {
                    header: current(&app),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                }
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => PbWatchResponse {
                header: current(&app),
                watch_id: PROGRESS_WATCH_ID,
                ..Default::default()
            },
            None => continue,
        };
        if out.send(Ok(resp)).await.is_err() {
            break;
        }
    }
    for (_, l) in live {
        stop(&app, l);
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
    app: &App,
    out: &Out,
    id: i64,
    spec: WatchSpec,
    start: i64,
    progress: bool,
) -> Option<Live> {
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
        WatchStart::Watching(hub, mut feed) => {
            let (app, out) = (app.clone(), out.clone());
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
                tick.tick().await;
                let events = |b: WatchBatch| PbWatchResponse {
                    header: header(&app, b.revision),
                    watch_id: id,
                    events: b.events,
                    ..Default::default()
                };
                loop {
                    let resps = tokio::select! {
                        // Queued live batches go out before catching up, which continues after them.
                        biased;
                        b = feed.rx.recv() => match b {
                            Some(b) => vec![events(b)],
                            None => break,
                        },
                        _ = feed.lagging.notified() => {
                            let mut resps = Vec::new();
                            while let Ok(b) = feed.rx.try_recv() {
                                resps.push(events(b));
                            }
                            let caught = app.store().write().catch_up(hub);
                            match caught {
                                CatchUp::Batches(bs) => resps.extend(bs.into_iter().map(events)),
                                CatchUp::Compacted(rev) => resps.push(compacted(&app, id, rev)),
                                CatchUp::Failed(e) => resps.push(failed(&app, id, &e)),
                            }
                            resps
                        }
                        _ = tick.tick(), if progress => {
                            vec![PbWatchResponse { header: current(&app), watch_id: id, ..Default::default() }]
                        }
                    };
                    for resp in resps {
                        if out.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Some(Live { hub, task })
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
