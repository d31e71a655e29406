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
const WRITE_AHEAD: usize = 32;

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
    // A stream of unknown length is whole only if it ends with the trailer; an install that finds
    // otherwise would stop this member's Raft (a storage error), so it is checked here first.
    let received = match (received, header.len) {
        (Ok(file), None) => {
            let (d, p, m) = (dir.clone(), path.clone(), header.meta.clone());
            tokio::task::spawn_blocking(move || d.check_received(&file, &p, &m).map(|()| file))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::invalid_argument(format!("refused the snapshot: {e}")))
        }
        (r, _) => r,
    };
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

/// Write the stream into `file`, which is returned: exactly `len` bytes when it is known.
async fn copy_in(
    file: std::fs::File,
    len: Option<u64>,
    parts: &mut Streaming<PeerRequest>,
) -> Result<std::fs::File, Status> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_AHEAD);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        use std::io::Write;
        // Straight to the disk, around the page cache (direct_write.rs): no copy into fresh pages,
        // the install's fsync does not wait for all of it (0.9 s for 1.9 GB when it was written
        // through the cache unpaced), and this member's own log writes do not queue behind a
        // flood of dirty pages.
        let mut w = crate::direct_write::DirectWriter::new(&file);
        if !w.is_direct() {
            tracing::debug!("the received snapshot is written through the page cache");
        }
        while let Some(part) = rx.blocking_recv() {
            w.write_all(&part)?;
        }
        w.finish()?;
        Ok(file)
    });
    let mut got = 0u64;
    let fed = async {
        while let Some(part) = parts.message().await? {
            got += part.payload.len() as u64;
            if let Some(len) = len.filter(|len| got > *len) {
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
    if let Some(len) = len.filter(|len| got != *len) {
        return Err(Status::invalid_argument(format!(
            "snapshot stream ended after {got} of {len} bytes"
        )));
    }
    Ok(file)
}
