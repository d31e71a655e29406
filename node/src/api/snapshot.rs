//! Maintenance.Snapshot's body: the store written as etcd's backend database (see `etcd_db`) into an
//! unnamed file in the data dir, then streamed in chunks followed by the SHA-256 of everything before,
//! as etcd's server sends it (`etcdctl snapshot save` keeps the digest as the file's last 32 bytes).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom};

use etcd_client::proto::{PbResponseHeader, PbSnapshotResponse};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::Status;

use crate::etcd_db::export::{self, ClusterRecord};
use crate::etcd_db::MemberRecord;
use crate::member::App;

/// Snapshot stream chunk size (etcd sends 32 KiB; larger chunks mean fewer messages).
const CHUNK: usize = 64 * 1024;

/// Write the database file for `app`'s current state; returns it with the revision it holds. Blocks
/// (run it off the async workers); applies wait for the store's read lock meanwhile.
pub fn write_database(app: &App) -> Result<(File, i64), Status> {
    let tmp = tempfile::tempfile_in(app.data_dir())
        .map_err(|e| Status::internal(format!("snapshot: temporary file in the data dir: {e}")))?;
    let raft = app.status();
    let members = app
        .members()
        .into_iter()
        .map(|m| MemberRecord {
            id: m.id,
            peer_urls: m.peer_urls,
            is_learner: m.is_learner,
            name: m.name,
            client_urls: m.client_urls,
        })
        .collect();
    let cluster = ClusterRecord {
        members,
        applied_index: raft.applied_index,
        term: raft.term,
    };
    let store = app.store().read();
    let revision = store.revision();
    let out = export::write(&store, &cluster, BufWriter::new(tmp))
        .map_err(|e| Status::internal(format!("snapshot: {e}")))?;
    drop(store);
    let file = out
        .into_inner()
        .map_err(|e| Status::internal(format!("snapshot: {}", e.error())))?;
    Ok((file, revision))
}

/// Send `file` in chunks, then its SHA-256, on `tx` (blocking; stops when the client goes away).
pub fn stream(
    mut file: File,
    header: Option<PbResponseHeader>,
    tx: mpsc::Sender<Result<PbSnapshotResponse, Status>>,
) {
    let sent = (|| -> std::io::Result<bool> {
        let total = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        let mut sha = Sha256::new();
        let mut done = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            done += n as u64;
            let msg = PbSnapshotResponse {
                header,
                remaining_bytes: total.saturating_sub(done),
                blob: buf[..n].to_vec(),
                version: String::new(),
            };
            if tx.blocking_send(Ok(msg)).is_err() {
                return Ok(false);
            }
        }
        let last = PbSnapshotResponse {
            header,
            remaining_bytes: 0,
            blob: sha.finalize().to_vec(),
            version: String::new(),
        };
        Ok(tx.blocking_send(Ok(last)).is_ok())
    })();
    if let Err(e) = sent {
        let _ = tx.blocking_send(Err(Status::internal(format!(
            "snapshot: reading the file: {e}"
        ))));
    }
}
