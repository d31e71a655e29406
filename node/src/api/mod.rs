//! etcd's v3 gRPC services over the [`App`] handle: one file per service, one error table.

mod auth;
mod cluster;
mod concurrency;
mod election;
mod header;
mod kv;
mod lease;
mod lock;
mod maintenance;
pub mod pb;
mod require_leader;
mod snapshot;
mod status;
mod watch;

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};
use pb::v3electionpb::election_server::ElectionServer;
use pb::v3lockpb::lock_server::LockServer;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::service::Routes;

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
#[derive(Debug, Clone, Copy)]
pub struct ApiOptions {
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// `--experimental-watch-progress-notify-interval`.
    pub watch_progress_interval: Duration,
}

/// The client-port services: KV, Watch, Lease, Cluster, Maintenance, Lock, Election, and Auth
/// (answers Unimplemented). Every service but Auth honours require-leader (`hasleader` metadata). Needs a tokio runtime.
pub fn services(app: App, opts: ApiOptions) -> Routes {
    let limit = opts.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let leader = require_leader::Interceptor::new(app.clone());
    let local = concurrency::Local::new(app.clone(), opts.max_request_bytes);
    // etcd's watch server fragments at the request limit plus gRPC's overhead, as it accepts requests.
    let watch = watch::WatchService::new(app.clone(), limit, opts.watch_progress_interval);
    Routes::new(InterceptedService::new(
        PbKvServer::new(kv::KvService::new(app.clone(), opts.max_request_bytes))
            .max_decoding_message_size(limit),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        PbWatchServer::new(watch).max_decoding_message_size(limit),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        PbLeaseServer::new(lease::LeaseService::new(app.clone(), true)),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        PbClusterServer::new(cluster::ClusterService::new(app.clone())),
        leader.clone(),
    ))
    .add_service(InterceptedService::new(
        PbMaintenanceServer::new(maintenance::MaintenanceService::new(app)),
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
    .add_service(auth::AuthService)
}

/// The Lease service for the peer port: followers forward keep-alives and TimeToLive here, to the leader.
/// It never forwards again, so a stale view of the leader cannot make requests bounce between members.
pub fn lease_service(app: App) -> PbLeaseServer<lease::LeaseService> {
    PbLeaseServer::new(lease::LeaseService::new(app, false))
}
