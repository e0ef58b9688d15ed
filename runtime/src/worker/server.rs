//! The worker's own HTTP server: liveness, readiness and metrics.

use super::{Shared, WorkerError};
use crate::contract;
use crate::metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(super) async fn start(
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, WorkerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WorkerError::Listen { addr, source })?;
    let app = Router::new()
        .route(contract::PATH_HEALTHZ, get(|| async { "ok" }))
        .route(contract::PATH_READYZ, get(readyz))
        .route(contract::PATH_METRICS, get(metrics_text))
        .with_state(shared);
    tracing::info!(%addr, "worker health and metrics server listening");
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    }))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "broker unreachable")
    }
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode_text(),
    )
}
