//! The takeover loop: once per beat, read the worker registry
//! ([`crate::workers`]) and take over, at once, the tasks of workers that
//! stopped beating (killed, crashed, cut off) on the streams this worker
//! reads; their visibility timeout stays the backstop for a worker that is
//! alive but stuck. Entries dead for [`workers::FORGET_AFTER`] are removed.

use super::Shared;
use super::dispatch::dispatch;
use crate::reclaim;
use crate::workers;
use std::sync::Arc;

/// Take over dead workers' tasks until the worker goes quiet.
pub(super) async fn takeover_loop(shared: Arc<Shared>) {
    let liveness = shared.config.liveness;
    let mut tick = tokio::time::interval(liveness.beat_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.quiet.cancelled() => break,
        }
        let (now, beats) = match workers::last_beats(&shared.broker).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "reading the worker registry failed");
                continue;
            }
        };
        let me = &shared.config.name;
        let (dead, forget) = workers::verdicts(me, now, &beats, liveness.dead_after);
        for name in &dead {
            if !take_over(&shared, name).await {
                return;
            }
        }
        for name in forget {
            if let Err(e) = workers::forget(&shared.broker, &name).await {
                tracing::debug!(worker = %name, error = %e, "forgetting a dead worker failed");
            }
        }
    }
}

/// Take over everything `dead` holds on this worker's streams, a free
/// slot's worth of tasks at a time. False once the worker is quiet.
async fn take_over(shared: &Arc<Shared>, dead: &str) -> bool {
    let me = &shared.config.name;
    for stream in &shared.streams.names {
        loop {
            let Some(first) = shared.slot().await else {
                return false;
            };
            let room = shared.room();
            match reclaim::takeover(&shared.broker, stream, dead, me, room).await {
                Ok(d) if d.is_empty() => break,
                Ok(d) => {
                    let more = d.len() == room;
                    tracing::info!(worker = %dead, stream = %stream, count = d.len(), "took over the tasks of a dead worker");
                    dispatch(shared, d, first).await;
                    if !more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %dead, stream = %stream, error = %e, "taking over a dead worker's tasks failed");
                    break;
                }
            }
        }
    }
    true
}
