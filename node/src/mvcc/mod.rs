//! Multi-version key-value store with etcd semantics: revisions, key index, compaction, leases, watch hub.
//! Pure logic: no I/O, no Raft, no gRPC transport types (etcd's prost messages are plain data).
//!
//! SKELETON: `Store`'s methods below are the contract with `store/state_machine.rs`; bodies are filled by
//! the client side (mvcc/api owner).

mod error;
pub use error::MvccError;

use crate::raft::types::{Command, CommandResponse};
use std::sync::{Arc, RwLock};

/// The store shared between the state machine (writer) and the API services (readers, watchers).
pub type SharedStore = Arc<RwLock<Store>>;

/// The whole replicated key-value state of one member.
#[derive(Debug, Default)]
pub struct Store {}

impl Store {
    /// An empty store at revision 1 (etcd starts at 1).
    pub fn new() -> Self {
        todo!("mvcc side")
    }

    /// Apply one committed command. Deterministic: the same commands in the same order give the same
    /// state and responses on every member. Notifies watchers of the resulting events.
    pub fn apply(&mut self, cmd: &Command) -> CommandResponse {
        let _ = cmd;
        todo!("mvcc side")
    }

    /// Serialize the entire state (keys with history since compaction, leases, member attributes).
    pub fn snapshot(&self) -> Vec<u8> {
        todo!("mvcc side")
    }

    /// Replace the state with a snapshot made by [`Store::snapshot`]; existing watchers stay subscribed.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), MvccError> {
        let _ = bytes;
        todo!("mvcc side")
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        todo!("mvcc side")
    }
}
