//! Require-leader, as etcd's v3rpc interceptors do it: a call carrying the gRPC metadata
//! `hasleader: true` (clientv3's `WithRequireLeader`, used by the Kubernetes API server for its watches)
//! is refused with Unavailable "etcdserver: no leader" while the member has no leader, and such a
//! stream (Watch, LeaseKeepAlive, Snapshot, Observe: etcd's stream interceptor covers every one) is ended
//! with that status once the member has been without a leader for three election timeouts in a row
//! (etcd's `monitorLeader`), so the client moves to a member that has one. A leader cut off from its
//! quorum counts as no leader (see `member::check_quorum`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request as HttpRequest;
use axum::response::Response;
use futures::StreamExt;
use http_body_util::{BodyStream, StreamBody};
use hyper::body::Frame;
use tokio::sync::watch;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::member::{App, MemberError};

/// etcd's `rpctypes.MetadataRequireLeaderKey`.
const REQUIRE_LEADER_KEY: &str = "hasleader";
/// etcd's `rpctypes.MetadataHasLeader`: the only value that turns the check on.
const HAS_LEADER: &str = "true";
/// etcd's `maxNoLeaderCnt`: election timeouts without a leader before require-leader streams end.
const MAX_NO_LEADER_CHECKS: u32 = 3;

/// The streaming RPCs of the client port (gRPC paths): the ones a lost leader ends.
const STREAMS: [&str; 4] = [
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/etcdserverpb.Maintenance/Snapshot",
    "/v3electionpb.Election/Observe",
];

/// True when the call asked for require-leader.
pub fn requested(meta: &MetadataMap) -> bool {
    header_requested(meta.as_ref())
}

fn header_requested(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(REQUIRE_LEADER_KEY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == HAS_LEADER)
}

/// The status a require-leader call or stream ends with.
pub fn no_leader() -> Status {
    super::to_status(MemberError::NoLeader)
}

/// Refuses require-leader calls (unary and streams alike) while the member has no leader.
#[derive(Clone)]
pub struct Interceptor {
    app: App,
}

impl Interceptor {
    pub fn new(app: App) -> Self {
        Interceptor { app }
    }
}

impl tonic::service::Interceptor for Interceptor {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if requested(req.metadata()) && self.app.status().leader.is_none() {
            return Err(no_leader());
        }
        Ok(req)
    }
}

/// Ticks once per leaderless check that reached etcd's limit; require-leader streams subscribe and end
/// with [`no_leader`] when it changes.
#[derive(Clone)]
pub struct LeaderMonitor {
    lost: watch::Receiver<u64>,
}

impl LeaderMonitor {
    /// Starts checking the member's leader every election timeout (needs a tokio runtime).
    pub fn spawn(app: App) -> Self {
        let (tx, lost) = watch::channel(0u64);
        let every = app.election_timeout().max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut leaderless = 0u32;
            loop {
                tokio::time::sleep(every).await;
                if tx.is_closed() {
                    return;
                }
                leaderless = match app.status().leader {
                    Some(_) => 0,
                    None => leaderless.saturating_add(1),
                };
                if leaderless >= MAX_NO_LEADER_CHECKS {
                    tx.send_modify(|n| *n += 1);
                }
            }
        });
        LeaderMonitor { lost }
    }

    /// A receiver whose next change means "end your require-leader stream now".
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        let mut rx = self.lost.clone();
        rx.mark_unchanged();
        rx
    }

    /// Middleware for the gRPC routes: the response of a require-leader stream ends with
    /// [`no_leader`] (gRPC trailers after the messages sent so far) when the leader is lost.
    pub async fn end_streams(self, req: HttpRequest, next: axum::middleware::Next) -> Response {
        let watched = header_requested(req.headers()) && STREAMS.contains(&req.uri().path());
        let lost = watched.then(|| self.subscribe());
        let res = next.run(req).await;
        match lost {
            // A response that is only headers (a refusal) is already over.
            Some(lost) if !res.headers().contains_key("grpc-status") => {
                res.map(|body| until_lost(body, lost))
            }
            _ => res,
        }
    }
}

/// Resolves when `lost` changes (never once its monitor is gone).
pub async fn fired(lost: &mut watch::Receiver<u64>) {
    if lost.changed().await.is_err() {
        std::future::pending::<()>().await
    }
}

/// `body`'s frames until it ends, or until `lost` fires: then the trailers of [`no_leader`].
fn until_lost(body: Body, lost: watch::Receiver<u64>) -> Body {
    let frames = futures::stream::unfold(Some((BodyStream::new(body), lost)), |state| async {
        let (mut frames, mut lost) = state?;
        tokio::select! {
            biased;
            _ = fired(&mut lost) => {
                let mut trailers = axum::http::HeaderMap::new();
                // The status is ASCII, so it always fits a header.
                let _ = no_leader().add_header(&mut trailers);
                Some((Ok(Frame::trailers(trailers)), None))
            }
            frame = frames.next() => {
                let frame = frame?;
                let over = frame.as_ref().map_or(true, Frame::is_trailers);
                Some((frame, (!over).then_some((frames, lost))))
            }
        }
    });
    Body::new(StreamBody::new(frames))
}
