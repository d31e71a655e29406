//! Sending a whole snapshot to a member that is too far behind: one gRPC stream (`SendSnapshot`), a
//! header then the snapshot's bytes, read ahead of the network by a blocking reader: the saved file,
//! or a pipe out of which the current state comes as it is encoded (storage/state_machine.rs
//! `worth_streaming`), whose length is not known until it ends.
//!
//! Why not openraft's chunked InstallSnapshot: each chunk waited for the receiver's answer before the
//! next was read, so reading, encoding, TLS, decoding and writing took turns; a 1 GiB snapshot moved
//! at about 170 MB/s on loopback (the scale suite's learner spent 6.4 s of its 8.7 s there). In one
//! stream they overlap, and HTTP/2 flow control keeps the sender from running ahead of the receiver.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    Fatal, NetworkError, RemoteError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::SnapshotResponse;
use openraft::{Snapshot, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};

use crate::codec::decode;
use crate::raft::channels::{describe, PeerChannels};
use crate::raft::pb::PeerRequest;
use crate::raft::types::{NodeId, PeerNode, TypeConfig};

/// Bytes of snapshot per stream message: small enough that the buffers of both ends are reused
/// rather than fresh memory for each part (4 MiB parts came from, and went back to, the kernel each
/// time: ~1.5 CPU-seconds of zeroing pages on the receiver for 1.3 GiB).
const PART_BYTES: usize = 256 << 10;
/// Parts read ahead of the network.
const READ_AHEAD: usize = 32;
/// How long the receiver may take to install a snapshot once it has all of it (an fsync of the whole
/// file and reading its key index: seconds per GiB on a slow disk).
const INSTALL_WAIT: Duration = Duration::from_secs(300);

/// The first message of a `SendSnapshot` stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The sending leader's vote: the receiver refuses a snapshot from a stale leader.
    pub vote: Vote<NodeId>,
    pub meta: SnapshotMeta<NodeId, PeerNode>,
    /// Bytes that follow, when known (a saved file): a stream that ends short of them is not installed.
    /// None for the current state encoded as it is sent (a stream cut short then lacks the trailer
    /// that the install checks).
    pub len: Option<u64>,
}

/// What a receiver answers: its vote, or the fatal error that stopped its Raft.
pub type SnapshotReply = Result<SnapshotResponse<NodeId>, Fatal<NodeId>>;

/// The error type openraft's `full_snapshot` returns.
pub type SendError = StreamingError<TypeConfig, Fatal<NodeId>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

fn unreachable(msg: String) -> SendError {
    StreamingError::Unreachable(Unreachable::new(&Msg(msg)))
}

fn network(msg: String) -> SendError {
    StreamingError::Network(NetworkError::new(&Msg(msg)))
}

/// Stream `snapshot` to member `target` and wait for it to be installed. A receiver that takes no data
/// for `option.hard_ttl()` (openraft's snapshot timeout) is given up on.
pub async fn send(
    peers: &PeerChannels,
    target: NodeId,
    node: &PeerNode,
    vote: Vote<NodeId>,
    snapshot: Snapshot<TypeConfig>,
    cancel: impl std::future::Future<Output = ReplicationClosed>,
    option: &RPCOption,
) -> Result<SnapshotResponse<NodeId>, SendError> {
    let mut client = peers
        .client(target, node)
        .map_err(|e| unreachable(e.to_string()))?;
    let file = (*snapshot.snapshot).into_std().await;
    let md = file
        .metadata()
        .map_err(|e| network(format!("reading the snapshot file: {e}")))?;
    // A saved snapshot is a file; the current state comes through a pipe (storage/snapshot.rs
    // `SnapshotDir::stream`).
    let len = md.is_file().then_some(md.len());
    let header = SnapshotHeader {
        vote,
        meta: snapshot.meta,
        len,
    };
    let cluster_id = peers.cluster_id();
    let first = peers.request(&header).map_err(|e| network(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    // Capacity READ_AHEAD ≥ 1: the header fits without waiting.
    tx.try_send(first)
        .map_err(|e| network(format!("queueing the snapshot header: {e}")))?;
    let started = Instant::now();
    let progress = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let reader = {
        let (progress, sent) = (progress.clone(), sent.clone());
        tokio::task::spawn_blocking(move || {
            read_parts(file, len, cluster_id, &tx, &progress, &sent, started)
        })
    };
    let call = client.send_snapshot(tokio_stream::wrappers::ReceiverStream::new(rx));
    let stalled = option.hard_ttl();
    let watchdog = async {
        // Fails the transfer when the reader has handed over nothing for `stalled` (a receiver that
        // stopped reading); once every byte is handed over, the install gets INSTALL_WAIT.
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let last = Duration::from_millis(progress.load(Ordering::Relaxed));
            let idle = started.elapsed().saturating_sub(last);
            let (limit, what) = if reader.is_finished() {
                (INSTALL_WAIT, "installed")
            } else {
                (stalled, "read")
            };
            if idle > limit {
                // As unreachable: openraft backs off before sending the whole snapshot again.
                return unreachable(format!(
                    "snapshot not {what} by {target:x} within {limit:?}"
                ));
            }
        }
    };
    let reply = tokio::select! {
        closed = cancel => return Err(StreamingError::Closed(closed)),
        e = watchdog => return Err(e),
        r = call => r,
    };
    // A read error ends the stream short of `len`: the receiver refuses it, and this says why.
    if let Ok(Err(e)) = reader.await {
        return Err(StreamingError::StorageError(openraft::StorageError::IO {
            source: openraft::StorageIOError::read_snapshot(None, openraft::AnyError::new(&e)),
        }));
    }
    let payload = match reply {
        Ok(r) => r.into_inner().payload,
        Err(status) if status.code() == tonic::Code::Unavailable => {
            return Err(unreachable(describe(&status)))
        }
        Err(status) => return Err(network(describe(&status))),
    };
    crate::metrics::PEER_SENT_BYTES.add(sent.load(Ordering::Relaxed));
    let answer: SnapshotReply = decode(&payload).map_err(|e| network(e.to_string()))?;
    answer.map_err(|fatal| StreamingError::RemoteError(RemoteError::new(target, fatal)))
}

/// The blocking half of [`send`]: reads the file (`len` bytes of it from its start) or the pipe (to
/// its end) in parts into the stream, recording in `progress` the time (ms after `started`) of the
/// last hand-over and in `sent` the bytes handed over.
fn read_parts(
    mut file: std::fs::File,
    len: Option<u64>,
    cluster_id: u64,
    tx: &tokio::sync::mpsc::Sender<PeerRequest>,
    progress: &AtomicU64,
    sent: &AtomicU64,
    started: Instant,
) -> std::io::Result<()> {
    if len.is_some() {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(0))?;
    }
    let mut left = len.unwrap_or(u64::MAX);
    while left > 0 {
        let n = PART_BYTES.min(usize::try_from(left).unwrap_or(PART_BYTES));
        let mut buf = vec![0u8; n];
        let got = fill(&mut file, &mut buf)?;
        if got < n && len.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the snapshot file ended {} bytes short", left - got as u64),
            ));
        }
        if got == 0 {
            return Ok(());
        }
        buf.truncate(got);
        left -= got as u64;
        sent.fetch_add(got as u64, Ordering::Relaxed);
        if tx
            .blocking_send(PeerRequest {
                cluster_id,
                payload: buf,
            })
            .is_err()
        {
            // The call ended (refused, failed or cancelled): its outcome says why.
            return Ok(());
        }
        progress.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Read into `buf` until it is full or the input ends; the bytes read.
fn fill(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
