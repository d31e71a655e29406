//! HTTP endpoints on the client port (or `--listen-metrics-urls`): /health, /livez, /readyz, /version,
//! /metrics, answering like etcd so load balancers, probes and Prometheus need no changes.

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

async fn version() -> impl IntoResponse {
    Json(
        json!({"etcdserver": crate::api::SERVER_VERSION, "etcdcluster": crate::api::CLUSTER_VERSION}),
    )
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
