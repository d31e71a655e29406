//! Multi-version key-value store with etcd semantics: revisions, key index, compaction, leases, watch hub.
//! Pure logic: no I/O, no Raft, no gRPC transport types (etcd's prost messages are plain data).

mod error;
pub use error::MvccError;
