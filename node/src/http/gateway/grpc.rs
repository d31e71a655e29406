//! Calls into the member's own tonic services in-process: a gRPC request built from the HTTP request (its
//! TLS and connection extensions kept, `Authorization` as the `token` metadata etcd reads), answered by the
//! same router that serves gRPC clients, so auth, errors and limits are those of gRPC exactly.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, Version};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tonic::{Code, Status};
use tower::ServiceExt;

/// gRPC's message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// One gRPC message as gRPC frames it (uncompressed).
pub fn frame(msg: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX + msg.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out.freeze()
}

/// Call `grpc_path` on `grpc` with `body` (framed messages) for the HTTP request `parts`.
pub async fn call(
    grpc: axum::Router,
    grpc_path: &str,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Replies {
    let mut req = Request::new(body);
    *req.method_mut() = axum::http::Method::POST;
    *req.version_mut() = Version::HTTP_2;
    *req.extensions_mut() = parts.extensions.clone();
    match grpc_path.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return Replies::failed(Status::internal("bad gateway path")),
    }
    let h = req.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    // grpc-gateway v1 passes `Grpc-Metadata-<key>` headers on as metadata `<key>` (e.g.
    // `Grpc-Metadata-Hasleader: true`, etcd's require-leader).
    for (name, value) in &parts.headers {
        let key = name.as_str().strip_prefix("grpc-metadata-");
        // Never the call's own framing headers.
        let key = key.filter(|k| !matches!(*k, "content-type" | "te") && !k.starts_with("grpc-"));
        if let Some(key) = key {
            if let Ok(key) = header::HeaderName::from_bytes(key.as_bytes()) {
                h.append(key, value.clone());
            }
        }
    }
    // etcd's auth reads the token from the `token` metadata; grpc-gateway clients send it as Authorization.
    if let Some(token) = parts.headers.get(header::AUTHORIZATION) {
        h.insert("token", token.clone());
    }
    let resp: Response<Body> = match grpc.oneshot(req).await {
        Ok(r) => r,
        Err(e) => {
            let e: Infallible = e;
            match e {}
        }
    };
    Replies::new(resp)
}

/// What the service sent next.
pub enum Reply {
    /// One message.
    Message(Bytes),
    /// The end of the call, with its status (Ok or the error).
    End(Status),
}

/// The messages of a gRPC response, read as they arrive.
pub struct Replies {
    body: Option<Body>,
    buf: BytesMut,
    /// A trailers-only response carries its status in the headers.
    head_status: Option<Status>,
}

impl Replies {
    fn new(resp: Response<Body>) -> Replies {
        let head_status = Status::from_header_map(resp.headers());
        let body = resp.into_body();
        Replies {
            body: Some(body),
            buf: BytesMut::new(),
            head_status,
        }
    }

    fn failed(status: Status) -> Replies {
        Replies {
            body: None,
            buf: BytesMut::new(),
            head_status: Some(status),
        }
    }

    /// The next message or the end of the call.
    pub async fn next(&mut self) -> Reply {
        loop {
            if let Some(msg) = self.take_message() {
                return msg;
            }
            let Some(body) = self.body.as_mut() else {
                return Reply::End(self.end_status());
            };
            match body.frame().await {
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => self.buf.extend_from_slice(&d),
                    Err(f) => {
                        self.body = None;
                        if let Some(t) = f.trailers_ref() {
                            self.head_status = Status::from_header_map(t);
                        }
                    }
                },
                Some(Err(e)) => {
                    self.body = None;
                    self.head_status = Some(Status::unavailable(e.to_string()));
                }
                None => self.body = None,
            }
        }
    }

    fn take_message(&mut self) -> Option<Reply> {
        if self.buf.len() < PREFIX {
            return None;
        }
        if self.buf[0] != 0 {
            // Never asked for (no grpc-accept-encoding is sent), so never expected.
            self.body = None;
            self.buf.clear();
            return Some(Reply::End(Status::internal(
                "gateway: compressed gRPC message",
            )));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if self.buf.len() < PREFIX + len {
            return None;
        }
        self.buf.advance(PREFIX);
        Some(Reply::Message(self.buf.split_to(len).freeze()))
    }

    fn end_status(&mut self) -> Status {
        match self.head_status.take() {
            Some(s) => s,
            None => Status::new(
                Code::Internal,
                "gateway: gRPC response ended without a status",
            ),
        }
    }
}
