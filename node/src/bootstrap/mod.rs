//! How a member comes up: IDs derived as etcd does, the new / restart / join decision, and where the
//! initial cluster comes from (flags, DNS SRV, a discovery service).

mod discovered;
pub mod discovery;
mod discovery_http;
mod discovery_v2;
mod discovery_v3;
pub mod ids;
pub mod restored;
pub mod srv;
pub mod static_cluster;
