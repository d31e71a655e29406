//! Require-leader, as etcd's v3rpc interceptors do it: a call carrying the gRPC metadata
//! `hasleader: true` (clientv3's `WithRequireLeader`, used by the Kubernetes API server for its watches)
//! is refused with Unavailable "etcdserver: no leader" while the member has no leader, and such a watch
//! stream is ended with that status once the member has been without a leader for three election
//! timeouts in a row (etcd's `monitorLeader`), so the client moves to a member that has one. A leader
//! cut off from its quorum counts as no leader (see `member::check_quorum`).

use std::time::Duration;

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

/// True when the call asked for require-leader.
pub fn requested(meta: &MetadataMap) -> bool {
    meta.get(REQUIRE_LEADER_KEY)
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
}
