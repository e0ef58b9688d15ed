//! The reclaim loop: every sixth of the visibility timeout, take over tasks
//! whose lease expired (their worker died or hangs) and run them here;
//! every ten minutes, remove consumers idle for an hour.

use super::Shared;
use super::dispatch::dispatch;
use crate::fetch::Delivery;
use crate::reclaim;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REAP_EVERY: Duration = Duration::from_secs(600);
const REAP_IDLE: Duration = Duration::from_secs(3600);

/// How often expired leases are looked for.
fn every(visibility_timeout: Duration) -> Duration {
    (visibility_timeout / 6).max(Duration::from_millis(500))
}

/// Reclaim until the worker goes quiet.
pub(super) async fn reclaim_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(every(shared.config.visibility_timeout));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reap = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.quiet.cancelled() => break,
        }
        let Some(first) = shared.slot().await else {
            break;
        };
        let deliveries = reclaim_expired(&shared, shared.room()).await;
        if deliveries.is_empty() {
            drop(first);
        } else {
            dispatch(&shared, deliveries, first).await;
        }
        if last_reap.elapsed() >= REAP_EVERY {
            last_reap = Instant::now();
            for s in &shared.streams.names {
                let _ = reclaim::reap_consumers(&shared.broker, s, &shared.config.name, REAP_IDLE)
                    .await;
            }
        }
    }
}

/// Up to `room` deliveries per stream whose lease expired, without the
/// ones still running here (they come back only if a heartbeat was late).
async fn reclaim_expired(shared: &Shared, room: usize) -> Vec<Delivery> {
    let mut out = Vec::new();
    for s in &shared.streams.names {
        let (name, vt) = (&shared.config.name, shared.config.visibility_timeout);
        let mut r = match reclaim::reclaim(&shared.broker, s, name, vt, room).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(stream = %s, error = %e, "reclaiming expired tasks failed");
                continue;
            }
        };
        let key: Arc<str> = Arc::from(s.as_str());
        {
            let held = shared.held.lock().unwrap();
            r.retain(|d| !held.contains_key(&(key.clone(), d.id.clone())));
        }
        if !r.is_empty() {
            tracing::info!(stream = %s, count = r.len(), "reclaimed tasks of a dead or stuck worker");
        }
        out.append(&mut r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_for_expired_leases_six_times_per_timeout_at_most_twice_a_second() {
        let table = [(30_000, 5_000), (6_000, 1_000), (3_000, 500), (1_000, 500)];
        for (vt_ms, want_ms) in table {
            let got = every(Duration::from_millis(vt_ms));
            assert_eq!(got, Duration::from_millis(want_ms), "{vt_ms}");
        }
    }
}
