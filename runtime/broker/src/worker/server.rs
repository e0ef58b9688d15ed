//! The worker's own HTTP server: liveness, readiness and metrics.

use super::{Shared, WorkerError};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use pym_core::contract;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(super) async fn start(
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    metrics: pym_core::Metrics,
) -> Result<JoinHandle<()>, WorkerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WorkerError::Listen { addr, source })?;
    let app = Router::new()
        .route(contract::PATH_HEALTHZ, get(|| async { "ok" }))
        .route(contract::PATH_READYZ, get(readyz))
        .route(
            contract::PATH_METRICS,
            get(move || metrics_text(metrics.clone())),
        )
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

async fn metrics_text(metrics: pym_core::Metrics) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, contract::METRICS_CONTENT_TYPE)],
        metrics.encode(),
    )
}
