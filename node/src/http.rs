//! HTTP endpoints on the client port (or `--listen-metrics-urls`): /health, /livez, /readyz, /version,
//! /metrics, answering like etcd so load balancers, probes and Prometheus need no changes; and etcd's JSON
//! gateway (`/v3/...`, gateway/).

pub mod access;
pub mod gateway;
mod grpc_metrics;

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::member::App;

/// How long /health waits for a linearizable read (etcd: 1 s).
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The HTTP routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Why the member is not healthy, or None when it is: a leader, and a linearizable read within 1 s.
async fn unhealthy(app: &App) -> Option<String> {
    if app.status().leader.is_none() {
        return Some("RAFT NO LEADER".into());
    }
    match tokio::time::timeout(HEALTH_READ_TIMEOUT, app.read_barrier()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("QGET ERROR: {e}")),
        Err(_) => Some("QGET ERROR: timed out".into()),
    }
}

async fn health(axum::extract::State(app): axum::extract::State<App>) -> impl IntoResponse {
    match unhealthy(&app).await {
        None => (
            StatusCode::OK,
            // Exactly etcd 3.4's healthy body; some probes compare it byte for byte.
            Json(json!({"health": "true"})),
        ),
        Some(reason) => {
            tracing::warn!(%reason, "/health error");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"health": "false", "reason": reason})),
            )
        }
    }
}

async fn readyz(axum::extract::State(app): axum::extract::State<App>) -> impl IntoResponse {
    match unhealthy(&app).await {
        None => (StatusCode::OK, "ok".to_string()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[-]{reason}\nreadyz check failed"),
        ),
    }
}

/// etcd 3.4's `/version`, plus cairn's own version in a field of its own: clients parse `etcdserver` as a
/// plain semantic version (etcd3gw splits it on dots), so it carries no build metadata here.
async fn version() -> impl IntoResponse {
    let server = crate::api::SERVER_VERSION
        .split('+')
        .next()
        .unwrap_or(crate::api::SERVER_VERSION);
    Json(Versions {
        etcdserver: server,
        etcdcluster: crate::api::CLUSTER_VERSION,
        cairn: env!("CARGO_PKG_VERSION"),
    })
}

/// `/version`'s body, fields in etcd's order.
#[derive(serde::Serialize)]
struct Versions {
    etcdserver: &'static str,
    etcdcluster: &'static str,
    cairn: &'static str,
}

/// Go's `http.NotFound`, which etcd answers for any path it does not serve (the body is drained
/// first, see [`gateway::drain`]).
async fn not_found(req: axum::extract::Request) -> impl IntoResponse {
    gateway::drain(req).await;
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "404 page not found\n",
    )
}

/// The client port: gRPC requests (content-type `application/grpc*`, as etcd tells them apart) go to
/// `grpc`, everything else to the HTTP endpoints and the JSON gateway, which calls `grpc` in-process;
/// unknown HTTP paths answer 404. `access` guards the HTTP side as etcd's access controller does.
pub fn client_port(
    app: App,
    grpc: Router,
    max_request_bytes: usize,
    access: access::Access,
) -> Result<Router, gateway::RoutesError> {
    // Counted below the gateway too, as etcd's gateway reaches its gRPC server like any client.
    let grpc = grpc.layer(axum::middleware::from_fn(grpc_metrics::count));
    let http = router(app)
        .merge(gateway::router(grpc.clone(), max_request_bytes)?)
        .fallback(not_found);
    let http = access.layer(http);
    let dispatch = tower::service_fn(move |req: axum::extract::Request| {
        let is_grpc = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let target = if is_grpc { grpc.clone() } else { http.clone() };
        tower::ServiceExt::oneshot(target, req)
    });
    Ok(Router::new().fallback_service(dispatch))
}

async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&app.metrics()),
    )
}
