//! The worker's own HTTP server: liveness, readiness (the broker is
//! reachable) and metrics, served by `pym_process::probes`.

use super::{Shared, WorkerError};
use pym_process::Probes;
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
    let probes = Probes::new(metrics).ready_when(
        move || shared.ready.load(Ordering::Relaxed),
        "broker unreachable",
    );
    let (_, task) = probes
        .start(addr, stop)
        .await
        .map_err(|source| WorkerError::Listen { addr, source })?;
    Ok(task)
}
