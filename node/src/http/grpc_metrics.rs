//! Counts every gRPC call on the client port into `grpc_server_started_total` / `grpc_server_handled_total`
//! (crate::metrics::grpc). The status of a call is in the response headers when it failed before any
//! message (a trailers-only response), else in the trailers at the end of the body.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;

use crate::metrics::grpc::{method, Method};

/// axum middleware (`axum::middleware::from_fn`) around the gRPC services.
pub async fn count(req: Request, next: Next) -> Response {
    let Some(m) = method(req.uri().path()) else {
        return next.run(req).await;
    };
    m.start();
    let resp = next.run(req).await;
    if let Some(code) = grpc_status(resp.headers()) {
        m.handled(code);
        return resp;
    }
    let mut pending = Pending(Some(m));
    resp.map(|body| {
        Body::new(body.map_frame(move |frame| {
            if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                pending.finish(code);
            }
            frame
        }))
    })
}

fn grpc_status(headers: &axum::http::HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// A call whose status has not been seen yet: a body dropped before its trailers is a call the client
/// canceled (go-grpc-prometheus counts what the handler returned, `Canceled` for a gone client).
struct Pending(Option<&'static Method>);

impl Pending {
    fn finish(&mut self, code: u32) {
        if let Some(m) = self.0.take() {
            m.handled(code);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.finish(1);
    }
}
