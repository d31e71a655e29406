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
//! A connection opens with [`PREFACE`], which the peer listener tells apart from HTTP/2 and HTTP/1.1
//! on the same port. Request: `len u32 | method u8 | cluster id u64 | payload`; reply:
//! `len u32 | status u8 | payload` (status 0: the MessagePack answer; 1: the refusal, as text).
//! Lengths are big-endian and count the bytes after themselves.

use std::io;
use std::pin::Pin;
use std::task::Context;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use crate::member::peer_service::PeerService;
use crate::raft::channels::MAX_PEER_MESSAGE;

/// First bytes a frame connection sends (never the start of an HTTP/1.1 or HTTP/2 request).
pub const PREFACE: &[u8; 8] = b"CAIRNRF1";

/// The calls the frame protocol carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Append = 1,
    Vote = 2,
    Propose = 3,
    ReadIndex = 4,
    ChangeMembers = 5,
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
    let mut head = [0u8; 4];
    io.read_exact(&mut head).await?;
    if &head == b"HTTP" {
        // A member from before this protocol: its HTTP/1.1 server answered our preface with an error.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the peer does not speak the frame protocol",
        ));
    }
    let len = u32::from_be_bytes(head) as usize;
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

/// Serve frame calls on `io` (after its preface) one at a time until the caller closes it or `stop`
/// turns true between calls.
pub async fn serve<I: AsyncRead + AsyncWrite + Unpin>(
    mut io: I,
    svc: PeerService,
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
        let (status, payload) = match answer {
            Ok(p) => (0u8, p),
            Err(text) => (1u8, text.into_bytes()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.extend_from_slice(&((1 + payload.len()) as u32).to_be_bytes());
        out.push(status);
        out.extend_from_slice(&payload);
        io.write_all(&out).await?;
        io.flush().await?;
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
}
