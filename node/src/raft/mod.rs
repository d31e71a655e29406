//! Raft plumbing: type config, the peer wire protocol, peer client and peer server.
pub mod network;
pub mod peer_service;
pub mod types;
pub mod wire;

/// Generated from proto/peer.proto.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("cairn.peer");
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// This member's cluster ID, shared by the peer client and server. A member that joins an existing
/// cluster starts with 0 and adopts the ID carried by the first peer request it gets (the leader
/// replicating to it), persisting it in the data dir.
#[derive(Clone)]
pub struct ClusterId {
    id: Arc<AtomicU64>,
    store: Option<crate::store::log::LogStore>,
}

impl ClusterId {
    /// A cell holding `id` (0 = not yet known), persisted through `store`.
    pub fn new(id: u64, store: crate::store::log::LogStore) -> Self {
        ClusterId {
            id: Arc::new(AtomicU64::new(id)),
            store: Some(store),
        }
    }

    /// A known ID that is never replaced or persisted (tools and tests talking to a cluster).
    pub fn fixed(id: u64) -> Self {
        ClusterId {
            id: Arc::new(AtomicU64::new(id)),
            store: None,
        }
    }

    /// The current ID (0 while a joining member has not heard from the cluster).
    pub fn get(&self) -> u64 {
        self.id.load(Ordering::Acquire)
    }

    /// Accept a request carrying `remote`: true when it is ours (or we adopt it now).
    pub fn accept(&self, remote: u64) -> bool {
        match self
            .id
            .compare_exchange(0, remote, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                tracing::info!(
                    cluster_id = format!("{remote:x}"),
                    "joined cluster; recording its ID in the data dir"
                );
                let saved = match &self.store {
                    Some(s) => s.set_cluster_id(remote),
                    None => Ok(()),
                };
                if let Err(e) = saved {
                    tracing::error!("cannot record the cluster ID in the data dir: {e}");
                }
                true
            }
            Err(current) => current == remote,
        }
    }
}

/// Count peer traffic (etcd's `etcd_network_peer_sent_bytes_total` / `_received_bytes_total`).
// METRICS CALL SITE: forwards to crate::metrics once the api helper's module exists.
pub fn observe_peer_bytes(sent: usize, received: usize) {
    let _ = (sent, received);
}
