//! A snapshot file on disk: a bbolt database, usually followed by the SHA-256 of it (what
//! `etcdctl snapshot save` writes), checked as etcdctl checks it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::bbolt::Reader;

/// Why a snapshot file cannot be used; the texts are etcdctl's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot missing hash but --skip-hash-check=false")]
    MissingHash,
    /// The digests as Go prints byte slices (`[1 2 3]`), so the message reads as etcdctl's.
    #[error("expected sha256 {}, got {}", go_bytes(.expected), go_bytes(.actual))]
    HashMismatch { expected: Vec<u8>, actual: Vec<u8> },
    #[error("{path}: {source}")]
    Database {
        path: PathBuf,
        source: crate::etcd_db::DbError,
    },
}

fn go_bytes(b: &[u8]) -> String {
    let items: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", items.join(" "))
}

/// An opened snapshot: the database part, and whether a hash trailer follows it.
pub struct SnapshotFile {
    pub path: PathBuf,
    pub db: Reader,
    pub has_hash: bool,
}

impl SnapshotFile {
    /// Open `path`; with `check_hash`, its SHA-256 trailer must be present and match (etcdctl's
    /// rule: a file whose size is 32 more than a multiple of 512 carries one).
    pub fn open(path: &Path, check_hash: bool) -> Result<SnapshotFile, SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let has_hash = len % 512 == 32;
        let db_len = if has_hash { len - 32 } else { len };
        if check_hash {
            if !has_hash {
                return Err(SnapshotError::MissingHash);
            }
            let mut sha = Sha256::new();
            let mut left = db_len;
            let mut buf = vec![0u8; 1 << 16];
            while left > 0 {
                let n = file
                    .read(&mut buf[..left.min(1 << 16) as usize])
                    .map_err(io)?;
                if n == 0 {
                    break;
                }
                sha.update(&buf[..n]);
                left -= n as u64;
            }
            let mut expected = vec![0u8; 32];
            file.read_exact(&mut expected).map_err(io)?;
            let actual = sha.finalize().to_vec();
            if expected != actual {
                return Err(SnapshotError::HashMismatch { expected, actual });
            }
        }
        let db = Reader::open(file, db_len).map_err(|e| SnapshotError::Database {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            db,
            has_hash,
        })
    }
}
