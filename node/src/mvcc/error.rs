use serde::{Deserialize, Serialize};

/// Deterministic errors from applying or reading the store; each maps to one etcd gRPC status in `api`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MvccError {
    /// The requested revision is older than the last compaction.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is newer than the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// The lease does not exist.
    #[error("requested lease not found")]
    LeaseNotFound,
    /// A lease with this ID already exists.
    #[error("lease already exists")]
    LeaseExists,
    /// A key appears in more than one put/delete of a txn.
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// The encoded request could not be decoded.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A write that adds data while the NOSPACE alarm is raised.
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A write while the CORRUPT alarm is raised.
    #[error("corrupt cluster")]
    Corrupt,
    /// The value file could not be read or written; the member stops applying.
    #[error("storage: {0}")]
    Storage(String),
}
