//! Raft plumbing: type config, the peer wire protocol, peer client and peer server.
pub mod channels;
pub mod frames;
pub mod network;
pub mod snapshot_send;
pub mod types;

/// Generated from proto/peer.proto.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("cairn.peer");
}
