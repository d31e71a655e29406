//! etcd's JSON gateway on the client port, as etcd 3.4 serves it with grpc-gateway v1: every RPC that has a
//! `google.api.http` binding answers `POST /v3/...` (and `/v3beta/...`, which etcd 3.4 rewrites to `/v3/`)
//! with JSON, by calling the member's own gRPC services in-process (grpc.rs). Unary calls answer one
//! message; streaming calls (Watch, LeaseKeepAlive, Snapshot, Observe) answer newline-separated
//! `{"result": ...}` objects, and Watch and LeaseKeepAlive read a stream of JSON objects from the body.

mod grpc;
mod json;
mod routes;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt;
use tonic::{Code, Status};

use grpc::{Replies, Reply};
use json::Splitter;
pub use routes::RoutesError;
use routes::{Routes, Rpc};

/// What the gateway's handlers share.
#[derive(Clone)]
struct Gateway {
    routes: Arc<Routes>,
    /// The client port's gRPC services (the router gRPC clients reach).
    grpc: axum::Router,
    /// The largest request body read for a unary call.
    max_body_bytes: usize,
}

/// The gateway's routes, calling `grpc` (the client port's gRPC router). `max_request_bytes` is etcd's
/// `--max-request-bytes`; a unary body may be a few times that in JSON, the gRPC service enforces the limit.
pub fn router(grpc: axum::Router, max_request_bytes: usize) -> Result<axum::Router, RoutesError> {
    let gw = Gateway {
        routes: Arc::new(Routes::new()?),
        grpc,
        // base64 takes 4/3 of the bytes, and JSON adds names and quoting.
        max_body_bytes: max_request_bytes.saturating_mul(2).saturating_add(1 << 20),
    };
    Ok(axum::Router::new()
        .route("/v3/{*path}", any(handle))
        .route("/v3beta/{*path}", any(handle))
        .with_state(gw))
}

/// A text answer as Go's `http.Error` writes it (grpc-gateway v1's unknown path and wrong method).
fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

/// Reads a small refused request's body before the answer: answering while the client is still
/// sending makes h2 reset the stream, which curl reports as a framing error instead of the status.
pub async fn drain(req: Request) {
    let _ = axum::body::to_bytes(req.into_body(), 64 * 1024).await;
}

/// A JSON answer.
fn json(status: u16, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == 200 {
        // grpc-gateway forwards the gRPC response's header metadata; grpc-go's always holds its
        // content-type.
        h.insert(
            "grpc-metadata-content-type",
            HeaderValue::from_static("application/grpc"),
        );
    }
    resp
}

/// A failed call's answer: the HTTP status grpc-gateway maps the code to, and its error body.
fn error(status: &Status) -> Response {
    let code = status.code();
    json(
        json::http_status(code),
        json::error_body(code, status.message()),
    )
}

/// A service that is not registered answers Unimplemented with no message from tonic; grpc-go (etcd)
/// says which service it does not know, and so does the gateway.
fn explain(status: Status, rpc: &Rpc) -> Status {
    if status.code() != Code::Unimplemented || !status.message().is_empty() {
        return status;
    }
    let service = rpc
        .grpc_path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    Status::unimplemented(format!("unknown service {service}"))
}

async fn handle(State(gw): State<Gateway>, Path(path): Path<String>, req: Request) -> Response {
    let Some(rpc) = gw.routes.get(&path).cloned() else {
        drain(req).await;
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    if req.method() != Method::POST {
        drain(req).await;
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let (parts, body) = req.into_parts();
    if rpc.client_streaming {
        return stream_in(gw, rpc, parts, body).await;
    }
    let bytes = match axum::body::to_bytes(body, gw.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error(&Status::invalid_argument(e.to_string())),
    };
    // grpc-gateway decodes the first JSON value of the body; an empty body is the empty request.
    let mut split = Splitter::default();
    split.push(&bytes);
    let value = match split.next_value() {
        Ok(v) => v.unwrap_or_else(|| serde_json::json!({})),
        Err(e) => return error(&Status::invalid_argument(e)),
    };
    let msg = match json::to_proto(&rpc.input, value) {
        Ok(m) => m,
        Err(e) => return error(&Status::invalid_argument(e)),
    };
    let replies = grpc::call(
        gw.grpc.clone(),
        &rpc.grpc_path,
        &parts,
        Body::from(grpc::frame(&msg)),
    )
    .await;
    if rpc.server_streaming {
        stream_out(rpc, replies).await
    } else {
        unary(rpc, replies).await
    }
}

async fn unary(rpc: Rpc, mut replies: Replies) -> Response {
    let msg = match replies.next().await {
        Reply::Message(m) => m,
        Reply::End(s) if s.code() != Code::Ok => return error(&explain(s, &rpc)),
        Reply::End(_) => return error(&Status::internal("gateway: no response message")),
    };
    if let Reply::End(s) = replies.next().await {
        if s.code() != Code::Ok {
            return error(&s);
        }
    }
    match json::to_json(&rpc.output, &msg) {
        Ok(body) => json(200, body),
        Err(e) => error(&Status::internal(e)),
    }
}

/// A client-streaming call: the first JSON object is decoded before the call (a bad one is a 400, as in
/// grpc-gateway), the rest are forwarded as they arrive; the end of the body ends the request stream.
async fn stream_in(
    gw: Gateway,
    rpc: Rpc,
    parts: axum::http::request::Parts,
    mut body: Body,
) -> Response {
    let mut split = Splitter::default();
    let first = loop {
        match split.next_value() {
            Ok(Some(v)) => break Some(v),
            Ok(None) => {}
            Err(e) => return error(&Status::invalid_argument(e)),
        }
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    split.push(&d);
                }
            }
            Some(Err(e)) => return error(&Status::invalid_argument(e.to_string())),
            None if split.is_blank() => break None,
            None => return error(&Status::invalid_argument("unexpected end of JSON input")),
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::convert::Infallible>>(16);
    if let Some(v) = first {
        match json::to_proto(&rpc.input, v) {
            Ok(m) => {
                let _ = tx.send(Ok(grpc::frame(&m))).await;
            }
            Err(e) => return error(&Status::invalid_argument(e)),
        }
        let input = rpc.input.clone();
        tokio::spawn(pump(split, body, input, tx));
    } else {
        // An empty body: the request stream is closed at once.
        drop(tx);
    }
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let replies = grpc::call(
        gw.grpc.clone(),
        &rpc.grpc_path,
        &parts,
        Body::from_stream(stream),
    )
    .await;
    stream_out(rpc, replies).await
}

/// Forward the rest of a streaming body; a value that does not decode ends the request stream (as
/// grpc-gateway's sender goroutine does), and so does the end of the body.
async fn pump(
    mut split: Splitter,
    mut body: Body,
    input: prost_reflect::MessageDescriptor,
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::convert::Infallible>>,
) {
    loop {
        loop {
            match split.next_value() {
                Ok(Some(v)) => match json::to_proto(&input, v) {
                    Ok(m) => {
                        if tx.send(Ok(grpc::frame(&m))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!("gateway: dropping stream after a bad request: {e}");
                        return;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("gateway: dropping stream after a bad request: {e}");
                    return;
                }
            }
        }
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    split.push(&d);
                }
            }
            _ => return,
        }
    }
}

/// A server-streaming answer: the status is decided by the first reply (an error before any message is
/// that error's HTTP status), then one `{"result": ...}` line per message, and an `{"error": ...}` object
/// if the call fails later.
async fn stream_out(rpc: Rpc, mut replies: Replies) -> Response {
    let first = match replies.next().await {
        Reply::Message(m) => m,
        Reply::End(s) if s.code() == Code::Ok => return json(200, Body::empty()),
        Reply::End(s) => {
            let s = explain(s, &rpc);
            let code = s.code();
            return json(
                json::http_status(code),
                json::stream_error_chunk(code, s.message()),
            );
        }
    };
    let output = rpc.output;
    let chunk = |m: &[u8], output: &prost_reflect::MessageDescriptor| match json::to_json(output, m)
    {
        Ok(j) => (json::stream_result_chunk(&j), false),
        Err(e) => (json::stream_error_chunk(Code::Internal, &e), true),
    };
    let (head, failed) = chunk(&first, &output);
    let state = Some((replies, output));
    let rest = futures::stream::unfold(state, move |state| async move {
        let (mut replies, output) = state?;
        match replies.next().await {
            Reply::Message(m) => {
                let (c, failed) = chunk(&m, &output);
                let next = (!failed).then_some((replies, output));
                Some((
                    Ok::<_, std::convert::Infallible>(bytes::Bytes::from(c)),
                    next,
                ))
            }
            Reply::End(s) if s.code() == Code::Ok => None,
            Reply::End(s) => Some((
                Ok(bytes::Bytes::from(json::stream_error_chunk(
                    s.code(),
                    s.message(),
                ))),
                None,
            )),
        }
    });
    let head = futures::stream::once(async move { Ok(bytes::Bytes::from(head)) });
    if failed {
        return json(200, Body::from_stream(head));
    }
    use futures::StreamExt;
    json(200, Body::from_stream(head.chain(rest)))
}
