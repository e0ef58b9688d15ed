//! The beat loop: once per [`WorkerLiveness::beat_every`], tell the registry
//! ([`crate::workers`]) that this worker lives, with its tasks in flight.
//! Runs until aborted, so a draining worker still counts as alive.
//!
//! [`WorkerLiveness::beat_every`]: crate::workers::WorkerLiveness

use super::Shared;
use crate::workers::{self, WorkerInfo};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Beat until aborted.
pub(super) async fn beat_loop(shared: Arc<Shared>) {
    let liveness = shared.config.liveness;
    let mut info = WorkerInfo {
        name: shared.config.name.clone(),
        pod: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
        queues: shared.queues.clone(),
        concurrency: shared.config.concurrency,
        in_flight: 0,
        started_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        last_beat: 0,
    };
    let mut tick = tokio::time::interval(liveness.beat_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        info.in_flight = shared.held.lock().unwrap().len();
        match workers::beat(&shared.broker, &info, liveness.dead_after * 2).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("beating again in the worker registry");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot beat in the worker registry: other workers will take this worker's tasks over");
            }
            Err(_) => {}
        }
    }
}
