//! Receiving a whole snapshot (the `SendSnapshot` stream of raft/snapshot_send.rs): the bytes go to a
//! fresh file in the snapshot directory as they arrive, written by a blocking writer so the network
//! and the disk overlap; once all of them are in, openraft installs it (the state machine checks the
//! file against the header's metadata and makes it the current snapshot).

use openraft::Snapshot;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::codec::decode;
use crate::raft::pb::PeerRequest;
use crate::raft::snapshot_send::{SnapshotHeader, SnapshotReply};
use crate::raft::types::Raft;
use crate::storage::snapshot::SnapshotDir;

/// Parts received ahead of the disk.
const WRITE_AHEAD: usize = 4;

/// Receive the stream into the snapshot directory and install it; `check` refuses a sender of another
/// cluster.
pub async fn receive(
    raft: &Raft,
    dir: &SnapshotDir,
    mut parts: Streaming<PeerRequest>,
    check: impl Fn(u64) -> Result<(), String>,
) -> Result<SnapshotReply, Status> {
    let first = parts
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("empty snapshot stream: no header"))?;
    check(first.cluster_id).map_err(Status::failed_precondition)?;
    let header: SnapshotHeader = decode(&first.payload)
        .map_err(|e| Status::invalid_argument(format!("malformed snapshot header: {e}")))?;
    let d = dir.clone();
    let (file, path) = tokio::task::spawn_blocking(move || d.receiving())
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))?;
    let received = copy_in(file, header.len, &mut parts).await;
    let file = match received {
        Ok(f) => f,
        Err(status) => {
            let _ = std::fs::remove_file(&path);
            return Err(status);
        }
    };
    let snapshot = Snapshot {
        meta: header.meta,
        snapshot: Box::new(tokio::fs::File::from_std(file)),
    };
    let reply = raft.install_full_snapshot(header.vote, snapshot).await;
    // Installing renames the file; if it is still here, openraft did not install it (a stale leader,
    // or a snapshot older than our state).
    if path.exists() {
        let _ = std::fs::remove_file(&path);
    }
    Ok(reply)
}

/// Write exactly `len` bytes of the stream into `file`, which is returned.
async fn copy_in(
    file: std::fs::File,
    len: u64,
    parts: &mut Streaming<PeerRequest>,
) -> Result<std::fs::File, Status> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_AHEAD);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        use std::io::Write;
        let mut file = file;
        while let Some(part) = rx.blocking_recv() {
            file.write_all(&part)?;
        }
        Ok(file)
    });
    let mut got = 0u64;
    let fed = async {
        while let Some(part) = parts.message().await? {
            got += part.payload.len() as u64;
            if got > len {
                return Err(Status::invalid_argument(format!(
                    "snapshot stream longer than the {len} bytes its header announced"
                )));
            }
            crate::metrics::PEER_RECEIVED_BYTES.add(part.payload.len() as u64);
            if tx.send(part.payload).await.is_err() {
                // The writer stopped: its error is reported below.
                break;
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(format!("writing the received snapshot: {e}")));
    fed?;
    let file = written?;
    if got != len {
        return Err(Status::invalid_argument(format!(
            "snapshot stream ended after {got} of {len} bytes"
        )));
    }
    Ok(file)
}
