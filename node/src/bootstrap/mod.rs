//! How a member comes up: IDs derived as etcd does, and the new / restart / join decision.

pub mod ids;
pub mod restored;
pub mod srv;
pub mod static_cluster;
