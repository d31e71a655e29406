//! Raft plumbing: type config, the peer wire protocol, peer client and peer server.
pub mod bytes;
pub mod channels;
pub mod network;
pub mod peer_service;
pub mod types;
pub mod wire;

/// Generated from proto/peer.proto.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("cairn.peer");
}

/// Count peer traffic (etcd's `etcd_network_peer_sent_bytes_total` / `_received_bytes_total`).
// METRICS CALL SITE: forwards to crate::metrics once the api helper's module exists.
pub fn observe_peer_bytes(sent: usize, received: usize) {
    let _ = (sent, received);
}
