//! Makes etcd 3.4 clients' HTTP/2 requests acceptable to our HTTP/2 server.
//!
//! clientv3 3.4 dials single endpoints as `passthrough:///https://host:2379`, so `etcdctl endpoint
//! status`, `endpoint hashkv` and other per-endpoint calls send `:authority: https://host:2379` —
//! not a valid authority (RFC 3986). Go's gRPC server ignores it; the `h2` crate resets the stream
//! with PROTOCOL_ERROR (etcd issue 13192 describes the client side). We do not route on the
//! authority, so this wrapper rewrites every literal `:authority` value in the client's header
//! blocks to a neutral valid one before the server parses them.
//!
//! Only literal fields whose name is the static table's `:authority` (index 1) are changed; later
//! requests that reference the client's dynamic-table entry resolve to the rewritten value, because the
//! server's table holds what we sent. Our values are never longer than a byte, so the server's table
//! (sized by what it received) evicts no later than the client's, and indices keep meaning the same
//! entries. Anything that is not HTTP/2 with prior knowledge (HTTP/1.1 for /health) passes untouched.
//!
//! The wrapper holds at most one frame of at most [`MAX_FRAME`] bytes and one header block of at most
//! [`MAX_HELD_BLOCK`] bytes. A larger frame or header block (no etcd client sends one) is handed on as
//! it comes, and so is the rest of the connection, for the HTTP/2 server's own limits to refuse: a
//! flood of CONTINUATION frames costs this wrapper no memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may use; we never emit larger frames.
const MAX_FRAME: usize = 16_384;
/// The value every `:authority` becomes.
const NEUTRAL: u8 = b'x';
/// The largest header block reassembled to be rewritten (etcd clients send a few hundred bytes).
const MAX_HELD_BLOCK: usize = 64 * 1024;

enum Mode {
    Sniff,
    H2,
    Passthrough,
}

/// A header block being reassembled from HEADERS + CONTINUATION frames.
struct Pending {
    stream: [u8; 4],
    flags: u8,
    priority: Vec<u8>,
    block: Vec<u8>,
}

/// A connection whose incoming HTTP/2 header blocks get their `:authority` fixed.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    input: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    pending: Option<Pending>,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Sniff,
            input: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            pending: None,
        }
    }

    /// `inner`, whose first bytes were already read (to tell protocols apart): `prefix` is read again.
    pub fn with_prefix(inner: S, prefix: Vec<u8>) -> Self {
        let mut fix = AuthorityFix::new(inner);
        fix.input = prefix;
        fix.process();
        fix
    }

    /// Move whatever can be decided from `input` to `out`.
    fn process(&mut self) {
        loop {
            match self.mode {
                Mode::Sniff => {
                    let n = self.input.len().min(PREFACE.len());
                    if self.input[..n] != PREFACE[..n] {
                        self.mode = Mode::Passthrough;
                    } else if n == PREFACE.len() {
                        self.out.extend(self.input.drain(..n));
                        self.mode = Mode::H2;
                    } else {
                        return;
                    }
                }
                Mode::Passthrough => {
                    self.out.append(&mut self.input);
                    return;
                }
                Mode::H2 => {
                    if self.input.len() < 9 {
                        return;
                    }
                    let len = usize::from(self.input[0]) << 16
                        | usize::from(self.input[1]) << 8
                        | usize::from(self.input[2]);
                    if len > MAX_FRAME {
                        // Over what the server allows: let it see this at once and refuse it.
                        self.give_up();
                        continue;
                    }
                    if self.input.len() < 9 + len {
                        return;
                    }
                    let frame: Vec<u8> = self.input.drain(..9 + len).collect();
                    self.frame(&frame);
                }
            }
        }
    }

    fn frame(&mut self, f: &[u8]) {
        let (kind, flags, payload) = (f[3], f[4], &f[9..]);
        let stream = [f[5], f[6], f[7], f[8]];
        match kind {
            HEADERS => {
                let mut p = payload;
                let mut pad = 0usize;
                if flags & PADDED != 0 {
                    let Some((&n, rest)) = p.split_first() else {
                        return self.out.extend_from_slice(f);
                    };
                    pad = usize::from(n);
                    p = rest;
                }
                if pad > p.len() {
                    return self.out.extend_from_slice(f);
                }
                p = &p[..p.len() - pad];
                let mut priority = Vec::new();
                if flags & PRIORITY != 0 {
                    if p.len() < 5 {
                        return self.out.extend_from_slice(f);
                    }
                    priority = p[..5].to_vec();
                    p = &p[5..];
                }
                let pending = Pending {
                    stream,
                    flags: flags & !PADDED,
                    priority,
                    block: p.to_vec(),
                };
                if flags & END_HEADERS != 0 {
                    self.emit(pending);
                } else {
                    self.pending = Some(pending);
                }
            }
            CONTINUATION if self.pending.as_ref().is_some_and(|p| p.stream == stream) => {
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.block.len() + payload.len() > MAX_HELD_BLOCK)
                {
                    self.give_up();
                    return self.out.extend_from_slice(f);
                }
                if let Some(mut p) = self.pending.take() {
                    p.block.extend_from_slice(payload);
                    if flags & END_HEADERS != 0 {
                        self.emit(p);
                    } else {
                        self.pending = Some(p);
                    }
                }
            }
            _ => self.out.extend_from_slice(f),
        }
    }

    /// Stop rewriting: hand on the header block held so far unchanged (its end is still to come) and
    /// pass the rest of the connection through.
    fn give_up(&mut self) {
        if let Some(p) = self.pending.take() {
            self.write_block(p.stream, p.flags, p.priority, &p.block, false);
        }
        self.mode = Mode::Passthrough;
    }

    /// Write the rewritten block as HEADERS (+ CONTINUATION frames if it no longer fits one frame).
    fn emit(&mut self, p: Pending) {
        let block = rewrite(&p.block).unwrap_or(p.block);
        self.write_block(p.stream, p.flags, p.priority, &block, true);
    }

    /// `block` as HEADERS (+ CONTINUATION) frames; `end` sets END_HEADERS on the last one.
    fn write_block(
        &mut self,
        stream: [u8; 4],
        flags: u8,
        priority: Vec<u8>,
        block: &[u8],
        end: bool,
    ) {
        let first = (MAX_FRAME - priority.len()).min(block.len());
        let (head, mut rest) = block.split_at(first);
        let mut flags = flags & !END_HEADERS;
        if rest.is_empty() && end {
            flags |= END_HEADERS;
        }
        let mut payload = priority;
        payload.extend_from_slice(head);
        self.write_frame(HEADERS, flags, stream, &payload);
        while !rest.is_empty() {
            let n = rest.len().min(MAX_FRAME);
            let (chunk, tail) = rest.split_at(n);
            let f = if tail.is_empty() && end {
                END_HEADERS
            } else {
                0
            };
            self.write_frame(CONTINUATION, f, stream, chunk);
            rest = tail;
        }
    }

    fn write_frame(&mut self, kind: u8, flags: u8, stream: [u8; 4], payload: &[u8]) {
        let len = payload.len();
        self.out
            .extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        self.out.extend_from_slice(&stream);
        self.out.extend_from_slice(payload);
    }
}

/// An HPACK integer with an `n`-bit prefix starting at `b[*i]`; advances `i`.
fn integer(b: &[u8], i: &mut usize, n: u32) -> Option<usize> {
    let mask = (1usize << n) - 1;
    let mut v = usize::from(*b.get(*i)?) & mask;
    *i += 1;
    if v < mask {
        return Some(v);
    }
    let mut shift = 0;
    loop {
        let byte = *b.get(*i)?;
        *i += 1;
        v = v.checked_add(usize::from(byte & 0x7f).checked_shl(shift)?)?;
        shift += 7;
        if byte & 0x80 == 0 || shift > 28 {
            return (byte & 0x80 == 0).then_some(v);
        }
    }
}

/// Skip an HPACK string literal; advances `i`.
fn skip_string(b: &[u8], i: &mut usize) -> Option<()> {
    let len = integer(b, i, 7)?;
    *i = i.checked_add(len).filter(|&e| e <= b.len())?;
    Some(())
}

/// The header block with every literal `:authority` value replaced; None if the block is malformed
/// (then it is passed on unchanged and the server reports the error).
fn rewrite(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let first = b[i];
        let prefix = if first & 0x80 != 0 {
            integer(b, &mut i, 7)?;
            out.extend_from_slice(&b[start..i]);
            continue;
        } else if first & 0xc0 == 0x40 {
            6
        } else if first & 0xe0 == 0x20 {
            integer(b, &mut i, 5)?;
            out.extend_from_slice(&b[start..i]);
            continue;
        } else {
            4
        };
        let index = integer(b, &mut i, prefix)?;
        if index == 0 {
            skip_string(b, &mut i)?;
        }
        let name_end = i;
        skip_string(b, &mut i)?;
        out.extend_from_slice(&b[start..name_end]);
        if index == 1 {
            out.extend_from_slice(&[1, NEUTRAL]);
        } else {
            out.extend_from_slice(&b[name_end..i]);
        }
    }
    Some(out)
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Passthrough) && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    // EOF: hand over anything undecided as it is and let the server judge it.
                    this.out.append(&mut this.input);
                    if this.out.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => {
                    this.input.extend_from_slice(rb.filled());
                    this.process();
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_authority_values_are_replaced_and_others_kept() {
        // :method GET (indexed), :authority "https://a:1" (incremental, name index 1), a custom literal.
        let mut block = vec![0x82, 0x41, 11];
        block.extend_from_slice(b"https://a:1");
        block.extend_from_slice(&[0x40, 1, b'k', 1, b'v']);
        let mut want = vec![0x82, 0x41, 1, b'x'];
        want.extend_from_slice(&[0x40, 1, b'k', 1, b'v']);
        assert_eq!(rewrite(&block), Some(want));
        // Huffman-coded value (H bit) of 3 bytes, never-indexed form with a 4-bit index.
        assert_eq!(rewrite(&[0x11, 0x83, 1, 2, 3]), Some(vec![0x11, 1, b'x']));
        // Truncated input is malformed, not a panic.
        assert_eq!(rewrite(&[0x41, 9, b'a']), None);
    }

    #[tokio::test]
    async fn headers_frames_are_rewritten_and_http1_passes() {
        use tokio::io::AsyncReadExt;
        let mut wire = PREFACE.to_vec();
        let mut block = vec![0x41, 4];
        block.extend_from_slice(b"a://");
        wire.extend_from_slice(&[
            0,
            0,
            block.len() as u8,
            HEADERS,
            END_HEADERS | PADDED,
            0,
            0,
            0,
            1,
        ]);
        wire[PREFACE.len() + 2] += 3; // pad length byte + 2 bytes of padding
        wire.push(2);
        wire.extend_from_slice(&block);
        wire.extend_from_slice(&[0, 0]);
        let mut want = PREFACE.to_vec();
        want.extend_from_slice(&[0, 0, 3, HEADERS, END_HEADERS, 0, 0, 0, 1, 0x41, 1, b'x']);
        let http1 = b"GET /health HTTP/1.1\r\n\r\n".to_vec();
        // Read whole, and with the first 8 bytes already taken by the peer port's protocol sniff.
        for (input, output) in [(&wire, &want), (&http1, &http1)] {
            let mut got = Vec::new();
            AuthorityFix::new(input.as_slice())
                .read_to_end(&mut got)
                .await
                .expect("read");
            assert_eq!(&got, output);
            let mut got = Vec::new();
            AuthorityFix::with_prefix(&input[8..], input[..8].to_vec())
                .read_to_end(&mut got)
                .await
                .expect("read");
            assert_eq!(&got, output);
        }
    }

    #[test]
    fn a_header_block_over_the_bound_and_an_oversized_frame_pass_through_unheld() {
        let frame = |kind: u8| {
            let mut f = vec![0x00, 0x40, 0x00, kind, 0, 0, 0, 0, 1];
            f.extend(std::iter::repeat_n(0x82, MAX_FRAME));
            f
        };
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(HEADERS));
        for _ in 0..MAX_HELD_BLOCK / MAX_FRAME + 2 {
            wire.extend(frame(CONTINUATION));
        }
        let mut fix = AuthorityFix::new(&[0u8; 0][..]);
        fix.input = wire.clone();
        fix.process();
        assert!(matches!(fix.mode, Mode::Passthrough) && fix.pending.is_none());
        assert_eq!(fix.out, wire, "handed on unchanged, nothing held back");

        let mut wire = PREFACE.to_vec();
        wire.extend_from_slice(&[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 7]);
        let mut fix = AuthorityFix::new(&[0u8; 0][..]);
        fix.input = wire.clone();
        fix.process();
        assert_eq!(fix.out, wire, "a frame over the limit is not waited for");
    }
}
