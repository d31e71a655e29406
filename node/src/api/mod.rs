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
mod snapshot;
mod status;
mod watch;

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};
use pb::v3electionpb::election_server::ElectionServer;
use pb::v3lockpb::lock_server::LockServer;
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

/// The client-port services: KV, Watch, Lease, Cluster, Maintenance, Lock, Election, and Auth (answers
/// Unimplemented).
pub fn services(app: App, max_request_bytes: usize) -> Routes {
    let limit = max_request_bytes + GRPC_OVERHEAD_BYTES;
    let local = concurrency::Local::new(app.clone(), max_request_bytes);
    Routes::new(
        PbKvServer::new(kv::KvService::new(app.clone(), max_request_bytes))
            .max_decoding_message_size(limit),
    )
    .add_service(
        PbWatchServer::new(watch::WatchService::new(app.clone())).max_decoding_message_size(limit),
    )
    .add_service(PbLeaseServer::new(lease::LeaseService::new(
        app.clone(),
        true,
    )))
    .add_service(PbClusterServer::new(cluster::ClusterService::new(
        app.clone(),
    )))
    .add_service(PbMaintenanceServer::new(
        maintenance::MaintenanceService::new(app.clone()),
    ))
    .add_service(
        LockServer::new(lock::LockService::new(local.clone())).max_decoding_message_size(limit),
    )
    .add_service(
        ElectionServer::new(election::ElectionService::new(local)).max_decoding_message_size(limit),
    )
    .add_service(auth::AuthService)
}

/// The Lease service for the peer port: followers forward keep-alives and TimeToLive here, to the leader.
/// It never forwards again, so a stale view of the leader cannot make requests bounce between members.
pub fn lease_service(app: App) -> PbLeaseServer<lease::LeaseService> {
    PbLeaseServer::new(lease::LeaseService::new(app, false))
}
