//! The peer frame protocol: Raft's AppendEntries and Vote, and forwarded proposals, read-index
//! requests and membership changes, as length-prefixed MessagePack frames on a TLS connection to the
//! peer port.
//!
//! Why not gRPC for these: a lone client's put costs five to seven peer calls (append to each
//! follower, the commit notice to each, the forward), and on this path HTTP/2 framing, HPACK, tower's
//! buffer task and a task per stream took more CPU than Raft and storage together (profile in
//! docs/benchmark.md). A frame connection carries one call at a time and the calling task reads its
//! own reply: one write and one read per call, no task hand-off. Snapshots, the joiner's `Members`
//! and leadership transfer stay on gRPC.
//!
//! A connection opens with [`PREFACE`] (a magic and the protocol version), which the peer listener
//! tells apart from HTTP/2 and HTTP/1.1 on the same port; a member speaking another version is refused
//! with a reply that says so (no compatibility before 1.0: docs/compatibility.md). Request: `len u32 | method u8 | cluster id u64 | payload`; reply:
//! `len u32 | status u8 | payload` (status 0: the MessagePack answer; 1: the refusal, as text).
//! Lengths are big-endian and count the bytes after themselves.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

/// Messages larger than gRPC's 4 MiB default travel between members (snapshot chunks, entry batches).
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

/// The version of this protocol; the last byte of [`PREFACE`]. Bumped on any change to the frame layout
/// or to what a method's payload holds.
pub const VERSION: u8 = 2;

/// First bytes a frame connection sends (never the start of an HTTP/1.1 or HTTP/2 request): a magic,
/// then [`VERSION`].
pub const PREFACE: &[u8; 8] = &[b'C', b'A', b'I', b'R', b'N', b'R', b'F', VERSION];

/// The calls between members that travel as frames; whole snapshots go over gRPC (one stream, large
/// and rare), as do the joiner's `Members` and leadership transfer's `Campaign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Append = 1,
    Vote = 2,
    Propose = 3,
    ReadIndex = 4,
    ChangeMembers = 5,
}

/// The member side of the frame protocol: answers one call; `Err` is the refusal, sent back as text.
pub trait FrameHandler: Send + Sync + 'static {
    /// Answer `method` from a member of cluster `cluster_id`.
    fn frame<'a>(
        &'a self,
        method: Method,
        cluster_id: u64,
        payload: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;
}

/// Whether `preface` (the first bytes of a connection) opens a frame connection: `None` when it does
/// not, `Some(Err(text))` when it is ours but of another version.
pub fn preface_version(preface: &[u8; 8]) -> Option<Result<(), String>> {
    if preface[..7] != PREFACE[..7] {
        return None;
    }
    Some(match preface[7] {
        VERSION => Ok(()),
        other => Err(format!(
            "peer frame protocol version {other} refused: this member speaks version {VERSION} \
             (run the same cairn release on every member; see docs/compatibility.md)"
        )),
    })
}

impl Method {
    fn from_u8(b: u8) -> Option<Method> {
        Some(match b {
            1 => Method::Append,
            2 => Method::Vote,
            3 => Method::Propose,
            4 => Method::ReadIndex,
            5 => Method::ChangeMembers,
            _ => return None,
        })
    }
}

/// Largest frame accepted (a full AppendEntries batch plus headers).
const MAX_FRAME: usize = MAX_PEER_MESSAGE + 64;

fn too_large(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("peer frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
    )
}

async fn read_frame<I: AsyncRead + Unpin>(io: &mut I, len: usize) -> io::Result<Vec<u8>> {
    if len > MAX_FRAME || len == 0 {
        return Err(too_large(len));
    }
    let mut body = vec![0; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// One call on `io`: send the request, read the reply. `Ok(Err(text))` is the peer's refusal.
pub async fn call<I: AsyncRead + AsyncWrite + Unpin>(
    io: &mut I,
    method: Method,
    cluster_id: u64,
    payload: &[u8],
) -> io::Result<Result<Vec<u8>, String>> {
    let len = 1 + 8 + payload.len();
    if len > MAX_FRAME {
        return Err(too_large(len));
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(method as u8);
    out.extend_from_slice(&cluster_id.to_be_bytes());
    out.extend_from_slice(payload);
    io.write_all(&out).await?;
    io.flush().await?;
    let len = io.read_u32().await? as usize;
    let mut body = read_frame(io, len).await?;
    let status = body.remove(0);
    match status {
        0 => Ok(Ok(body)),
        _ => Ok(Err(String::from_utf8_lossy(&body).into_owned())),
    }
}

/// True when a pooled connection is known to be closed (the peer restarted or went away): a poll that
/// finds end-of-stream or an error. An open, idle connection has nothing to read and stays pending.
pub fn is_closed<I: AsyncRead + Unpin>(io: &mut I) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    // Ready with bytes would be a reply nobody asked for (the stream is out of step): closed too.
    Pin::new(io).poll_read(&mut cx, &mut buf).is_ready()
}

/// Answer the first call on `io` with `text` as the refusal and close: for a caller whose preface names
/// another protocol version (it reads the refusal as the answer to its first call).
pub async fn refuse<I: AsyncRead + AsyncWrite + Unpin>(mut io: I, text: &str) -> io::Result<()> {
    tracing::warn!("{text}");
    reply(&mut io, 1, text.as_bytes()).await
}

async fn reply<I: AsyncWrite + Unpin>(io: &mut I, status: u8, payload: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.extend_from_slice(&((1 + payload.len()) as u32).to_be_bytes());
    out.push(status);
    out.extend_from_slice(payload);
    io.write_all(&out).await?;
    io.flush().await
}

/// Serve frame calls on `io` (after its preface) one at a time until the caller closes it or `stop`
/// turns true between calls.
pub async fn serve<I: AsyncRead + AsyncWrite + Unpin>(
    mut io: I,
    svc: Arc<dyn FrameHandler>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    loop {
        let len = tokio::select! {
            r = io.read_u32() => match r {
                Ok(n) => n as usize,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            },
            _ = stop.changed() => return Ok(()),
        };
        let body = read_frame(&mut io, len).await?;
        if body.len() < 9 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "peer frame shorter than its header",
            ));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&body[1..9]);
        let answer = match Method::from_u8(body[0]) {
            Some(m) => svc.frame(m, u64::from_be_bytes(id), &body[9..]).await,
            None => Err(format!(
                "unknown peer frame method {} (a newer member?)",
                body[0]
            )),
        };
        match answer {
            Ok(p) => reply(&mut io, 0, &p).await?,
            Err(text) => reply(&mut io, 1, text.as_bytes()).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_reads_its_own_reply_and_a_closed_connection_is_noticed() {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let peer = tokio::spawn(async move {
            let len = theirs.read_u32().await.expect("request length") as usize;
            let mut body = vec![0; len];
            theirs.read_exact(&mut body).await.expect("request");
            assert_eq!(body[0], Method::Vote as u8);
            assert_eq!(&body[1..9], &7u64.to_be_bytes());
            assert_eq!(&body[9..], b"ask");
            let refusal = b"request cluster ID mismatch";
            theirs
                .write_all(&(1 + refusal.len() as u32).to_be_bytes())
                .await
                .expect("reply length");
            theirs.write_all(&[1]).await.expect("status");
            theirs.write_all(refusal).await.expect("reply");
            theirs
        });
        let answer = call(&mut ours, Method::Vote, 7, b"ask").await.expect("io");
        assert_eq!(answer, Err("request cluster ID mismatch".to_string()));
        let theirs = peer.await.expect("peer");
        assert!(!is_closed(&mut ours), "an idle open connection is reusable");
        drop(theirs);
        assert!(
            is_closed(&mut ours),
            "a connection whose peer went away is not"
        );
    }

    #[tokio::test]
    async fn an_oversized_reply_is_refused_before_it_is_allocated() {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        theirs
            .write_all(&u32::MAX.to_be_bytes())
            .await
            .expect("length");
        let err = call(&mut ours, Method::Append, 1, b"x")
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("over the"), "{err}");
    }

    #[test]
    fn a_preface_of_another_version_is_refused_with_both_versions_named() {
        assert_eq!(preface_version(PREFACE), Some(Ok(())));
        assert_eq!(preface_version(b"PRI * HT"), None);
        let mut other = *PREFACE;
        other[7] = VERSION + 1;
        let text = preface_version(&other).expect("ours").expect_err("refused");
        assert!(
            text.contains(&format!("version {}", VERSION + 1))
                && text.contains(&format!("version {VERSION}")),
            "{text}"
        );
    }
}
