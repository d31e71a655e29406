//! etcd's v3 gRPC services over the [`App`] handle: one file per service, one error table.

mod auth;
mod cluster;
mod concurrency;
mod election;
pub mod guard;
mod header;
pub mod jwt;
mod kv;
mod lease;
mod lock;
mod maintenance;
pub mod pb;
mod require_leader;
mod snapshot;
mod status;
mod too_large;
mod watch;

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};
use pb::v3electionpb::election_server::ElectionServer;
use pb::v3lockpb::lock_server::LockServer;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::service::Routes;

use require_leader::LeaderMonitor;

pub use guard::{AuthOptions, ClientCertName};

use crate::member::App;

pub use header::header;
pub use status::{to_status, ApiError};

/// Server version reported by Status and /version: etcd's API level, with ours as build metadata.
pub const SERVER_VERSION: &str = concat!("3.4.0+cairn.", env!("CARGO_PKG_VERSION"));
/// Cluster API version reported by /version.
pub const CLUSTER_VERSION: &str = "3.4.0";

/// gRPC's own framing on top of a request; etcd allows the same slack (512 KiB).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// What the client-port services take from the member's flags.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--experimental-watch-progress-notify-interval`.
    pub watch_progress_interval: Duration,
    /// The auth flags.
    pub auth: AuthOptions,
}

/// The client-port services: KV, Watch, Lease, Cluster, Maintenance, Lock, Election and Auth, all
/// checked by one [`guard::Guard`]. Every service but Auth honours require-leader (`hasleader`
/// metadata). Every service takes requests up to etcd's gRPC limit and refuses larger ones as etcd
/// does (`too_large`). Needs a tokio runtime.
pub fn services(app: App, opts: ApiOptions) -> axum::Router {
    // etcd's MaxRecvMsgSize, for every service of its gRPC server.
    let limit = opts.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let leader = require_leader::Interceptor::new(app.clone());
    let monitor = LeaderMonitor::spawn(app.clone());
    app.store().read().tokens().set_ttl(opts.auth.token_ttl);
    let guard = guard::Guard::new(app.clone(), opts.auth.clone());
    let settle = guard.clone();
    let local = concurrency::Local::new(app.clone(), guard.clone(), opts.max_request_bytes);
    // etcd's watch server fragments at the request limit plus gRPC's overhead, as it accepts requests.
    let watch = watch::WatchService::new(
        app.clone(),
        guard.clone(),
        limit,
        opts.watch_progress_interval,
    );
    Routes::new(InterceptedService::new(
        PbKvServer::new(kv::KvService::new(
            app.clone(),
            guard.clone(),
            opts.max_request_bytes,
        ))
        .max_decoding_message_size(limit),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        PbWatchServer::new(watch).max_decoding_message_size(limit),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        PbLeaseServer::new(lease::LeaseService::new(app.clone(), guard.clone(), true))
            .max_decoding_message_size(limit),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        PbClusterServer::new(cluster::ClusterService::new(app.clone(), guard.clone()))
            .max_decoding_message_size(limit),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        PbMaintenanceServer::new(maintenance::MaintenanceService::new(
            app.clone(),
            guard.clone(),
        ))
        .max_decoding_message_size(limit),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        LockServer::new(lock::LockService::new(local.clone())).max_decoding_message_size(limit),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        ElectionServer::new(election::ElectionService::new(local)).max_decoding_message_size(limit),
        leader,
    ))
    .add_service(
        auth::pb::etcdserverpb::auth_server::AuthServer::new(auth::AuthService::new(app, guard))
            .max_decoding_message_size(limit),
    )
    .into_axum_router()
    .layer(axum::middleware::from_fn(move |req, next| {
        monitor.clone().end_streams(req, next)
    }))
    .layer(axum::middleware::from_fn(move |req, next| {
        settle.clone().settle_token(req, next)
    }))
    .layer(axum::middleware::map_response(too_large::rewrite))
}

/// The Lease service for the peer port: followers forward keep-alives and TimeToLive here, to the leader.
/// It never forwards again, so a stale view of the leader cannot make requests bounce between members.
pub fn lease_service(app: App) -> PbLeaseServer<lease::LeaseService> {
    // Peers forward only keep-alives and TimeToLive here, which etcd does not check either.
    let guard = guard::Guard::new(app.clone(), AuthOptions::default());
    PbLeaseServer::new(lease::LeaseService::new(app, guard, false))
}
