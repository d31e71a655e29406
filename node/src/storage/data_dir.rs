//! The layout of a member's data dir, in one place. Like etcd's, everything lives under `member/`:
//! the Raft log's metadata database, the write-ahead log, the snapshot, and the store's (unnamed)
//! value file.

use std::path::{Path, PathBuf};

/// A member's `--data-dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

/// Relative to the data dir: the file whose presence means "this data dir holds a member" (what a
/// restart, `--discovery-srv` and tools such as provision look for).
pub const INITIALIZED_MARKER: &str = "member/raft.redb";

/// The snapshot's file name inside [`DataDir::snap`].
pub const SNAPSHOT_FILE: &str = "current.snap";

impl DataDir {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The data dir itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `member/`: everything the member keeps.
    pub fn member(&self) -> PathBuf {
        self.root.join("member")
    }

    /// The Raft metadata database (vote, identity, purge point).
    pub fn log_db(&self) -> PathBuf {
        self.root.join(INITIALIZED_MARKER)
    }

    /// The write-ahead log's segment directory.
    pub fn wal(&self) -> PathBuf {
        self.member().join("wal")
    }

    /// The snapshot directory.
    pub fn snap(&self) -> PathBuf {
        self.member().join("snap")
    }

    /// Where the store makes its value file.
    pub fn values(&self) -> PathBuf {
        self.member()
    }

    /// True when a member was initialized here (a restart, not a first start).
    pub fn is_initialized(&self) -> bool {
        self.log_db().exists()
    }

    /// The current snapshot file.
    pub fn snapshot_file(&self) -> PathBuf {
        self.snap().join(SNAPSHOT_FILE)
    }

    /// Bytes of the snapshot file (the key-value state as of the last snapshot).
    pub fn snapshot_bytes(&self) -> u64 {
        std::fs::metadata(self.snapshot_file()).map_or(0, |m| m.len())
    }

    /// Bytes of the Raft files: metadata database, WAL segments and snapshot (not the value file,
    /// which is unnamed; the store knows its size).
    pub fn raft_bytes(&self) -> u64 {
        let file = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let wal: u64 = std::fs::read_dir(self.wal())
            .map(|d| d.flatten().map(|e| file(e.path())).sum())
            .unwrap_or(0);
        file(self.log_db()) + wal + file(self.snap().join(SNAPSHOT_FILE))
    }
}
