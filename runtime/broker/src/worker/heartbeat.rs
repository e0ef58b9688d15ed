//! Lease renewal: every third of the visibility timeout, renew the lease of
//! every held task, so long tasks are not reclaimed by other workers.

use super::Shared;
use crate::reclaim;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Renew the leases of every held task. Runs until aborted, so leases stay
/// renewed while the worker drains.
pub(super) async fn heartbeat_loop(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut by_stream: HashMap<Arc<str>, Vec<String>> = HashMap::new();
        for (stream, id) in shared.held.lock().unwrap().keys() {
            by_stream
                .entry(stream.clone())
                .or_default()
                .push(id.clone());
        }
        let name = &shared.config.name;
        for (stream, ids) in by_stream {
            match reclaim::heartbeat(&shared.broker, &stream, name, &ids).await {
                Ok(lost) if !lost.is_empty() => {
                    tracing::warn!(stream = %stream, lost = lost.len(), "lease lost: tasks were reclaimed by another worker and may run twice");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "renewing task leases failed"),
            }
        }
    }
}
