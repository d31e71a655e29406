//! Snapshot contents and their durable file in the data dir. A snapshot is the mvcc store's own bytes
//! plus the member attributes published through Raft; the file adds openraft's metadata so a restart
//! loads it and openraft replays only the log after it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use openraft::SnapshotMeta;
use serde::{Deserialize, Serialize};

use crate::codec::decode;
use crate::raft::types::{NodeId, PeerNode};
use crate::storage::data_dir::SNAPSHOT_FILE;

/// Attributes a member published after it started (etcd's `Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttrs {
    pub name: String,
    pub client_urls: Vec<String>,
}

/// What travels to a follower in InstallSnapshot (the openraft snapshot data).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotData {
    /// `mvcc::Store::snapshot()` bytes.
    #[serde(with = "crate::codec::bytes")]
    pub store: Vec<u8>,
    /// Published member attributes by member ID.
    pub members: BTreeMap<NodeId, MemberAttrs>,
    /// Raised alarms (member ID, alarm type); absent in snapshots made before alarms existed.
    #[serde(default)]
    pub alarms: Vec<(u64, i32)>,
}

/// What is persisted on disk: metadata plus the data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub meta: SnapshotMeta<NodeId, PeerNode>,
    /// Encoded [`SnapshotData`], exactly the bytes sent to followers.
    #[serde(with = "crate::codec::bytes")]
    pub data: Vec<u8>,
}

/// [`SnapshotFile`] borrowed, for writing: the same fields, so the same bytes.
#[derive(Serialize)]
struct SnapshotFileRef<'a> {
    meta: &'a SnapshotMeta<NodeId, PeerNode>,
    #[serde(with = "crate::codec::bytes")]
    data: &'a [u8],
}

/// Errors reading or writing the snapshot file, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot file {path} is corrupt: {msg}")]
    Corrupt { path: PathBuf, msg: String },
}

/// The snapshot directory of one member.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// Use (and create) `dir`.
    pub fn new(dir: PathBuf) -> Result<Self, SnapshotError> {
        fs::create_dir_all(&dir).map_err(|source| SnapshotError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(SnapshotDir { dir })
    }

    fn current(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    /// Durably replace the current snapshot: write a temp file, fsync, rename over, fsync the directory,
    /// so a crash leaves either the old or the new snapshot, never a torn one.
    pub fn save(
        &self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        data: &[u8],
    ) -> Result<(), SnapshotError> {
        let tmp = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { path, source }
        };
        let started = std::time::Instant::now();
        // Streamed to the file: the snapshot can be most of the member's memory, and an encoded copy
        // next to it would double the member's peak RSS.
        let mut f = std::io::BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
        rmp_serde::encode::write_named(&mut f, &SnapshotFileRef { meta, data }).map_err(|e| {
            SnapshotError::Corrupt {
                path: tmp.clone(),
                msg: e.to_string(),
            }
        })?;
        let f = f.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, self.current()).map_err(io(&self.current()))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        // The snapshot file is what persists the state machine: our "backend commit".
        crate::metrics::BACKEND_COMMIT.observe(started.elapsed());
        Ok(())
    }

    /// Load the current snapshot, if one was saved.
    pub fn load(&self) -> Result<Option<SnapshotFile>, SnapshotError> {
        let path = self.current();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SnapshotError::Io { path, source }),
        };
        decode(&bytes)
            .map(Some)
            .map_err(|e| SnapshotError::Corrupt {
                path,
                msg: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;

    #[test]
    fn saved_snapshot_loads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path().join("snap")).unwrap();
        assert!(dir.load().unwrap().is_none());
        let mut members = BTreeMap::new();
        members.insert(
            7,
            MemberAttrs {
                name: "infra0".into(),
                client_urls: vec!["http://a:1".into()],
            },
        );
        let data = encode(&SnapshotData {
            store: vec![1, 2, 3],
            members,
            alarms: vec![(7, 1)],
        })
        .unwrap();
        let meta = SnapshotMeta {
            snapshot_id: "1-2-3".into(),
            ..Default::default()
        };
        dir.save(&meta, &data).unwrap();
        let back = dir.load().unwrap().unwrap();
        assert_eq!(back.meta, meta);
        assert_eq!(back.data, data);
        let d: SnapshotData = decode(&back.data).unwrap();
        assert_eq!(d.members[&7].name, "infra0");
        assert_eq!(d.alarms, vec![(7, 1)]);
    }
}
