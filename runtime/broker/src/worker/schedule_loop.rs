//! The schedule loop: fires the periodic tasks of the queues this worker
//! consumes. Every worker runs it; the compare-and-set of
//! [`crate::schedule::fire`] makes each tick fire once among them.
//!
//! At start it upserts each schedule by name and prunes the schedules of
//! its queues that no task declares any more. Then it sleeps until the
//! next tick of any schedule (at most [`MAX_IDLE`]), reads the last tick
//! decided of each, and fires the pending ones as [`pym_schedule::plan`]
//! says (on-time ticks, and missed ones by the schedule's policy).

use super::{Shared, WorkerError};
use crate::envelope::now_ms;
use crate::schedule;
use crate::task::Registry;
use pym_core::Priority;
use pym_schedule::{Overrides, Periodic, Resolved, plan, resolve};
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep between two looks at the schedules.
pub(super) const MAX_IDLE: Duration = Duration::from_secs(5);
/// Ticks read back per schedule beyond its policy's missed ones: more than
/// fall within the on-time grace at one tick per second.
const ON_TIME_TICKS: usize = 16;

/// One periodic task this worker fires.
#[derive(Clone, Debug)]
pub(super) struct PeriodicTask {
    pub(super) queue: String,
    pub(super) priority: Priority,
    pub(super) resolved: Resolved,
}

/// The periodic tasks of `queues`, with `overrides` applied; an error
/// names a bad override (every periodic task of the binary is known, so
/// an override of a task on another queue is not refused).
pub(super) fn periodic_tasks(
    registry: &Registry,
    queues: &[String],
    overrides: &Overrides,
) -> Result<Vec<PeriodicTask>, WorkerError> {
    let mut declared: Vec<(&str, Periodic, &'static str, Priority)> = registry
        .names()
        .filter_map(|n| {
            let o = registry.get(n)?.options;
            o.schedule.map(|p| (n, p, o.queue, o.priority))
        })
        .collect();
    declared.sort_by_key(|d| d.0);
    let pairs: Vec<(&str, Periodic)> = declared.iter().map(|d| (d.0, d.1)).collect();
    let resolved =
        resolve(&pairs, overrides).map_err(|e| WorkerError::Config(format!("schedules: {e}")))?;
    Ok(resolved
        .into_iter()
        .zip(&declared)
        .filter(|(_, d)| queues.iter().any(|q| q == d.2))
        .map(|(resolved, d)| PeriodicTask {
            queue: d.2.to_owned(),
            priority: d.3,
            resolved,
        })
        .collect())
}

/// Upsert, prune, then fire ticks until the worker goes quiet.
pub(super) async fn schedule_loop(shared: Arc<Shared>) {
    let tasks = &shared.schedules;
    if tasks.is_empty() {
        return;
    }
    let mut backoff = crate::fetch::Reconnect::default();
    let mut registered = false;
    while !shared.quiet.is_cancelled() {
        let now = now_ms();
        let step = match registered {
            false => register(&shared, now).await.map(|()| registered = true),
            true => fire_due(&shared, now).await,
        };
        let wait = match step {
            Ok(()) => {
                backoff.reset();
                until_next(tasks, now_ms())
            }
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "periodic tasks: Redis call failed");
                d
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.quiet.cancelled() => {}
        }
    }
}

/// Upserts every schedule and prunes those no task declares any more.
async fn register(shared: &Shared, now: u64) -> crate::Result<()> {
    for t in &shared.schedules {
        let r = &t.resolved;
        let changed = schedule::upsert(&shared.broker, &t.queue, r, now).await?;
        tracing::info!(
            task = %r.name, cron = r.schedule.expr(), tz = r.schedule.tz(), missed = %r.missed,
            enabled = r.enabled, changed, "periodic task registered"
        );
    }
    for q in &shared.queues {
        let keep: Vec<&str> = shared
            .schedules
            .iter()
            .filter(|t| &t.queue == q)
            .map(|t| t.resolved.name.as_str())
            .collect();
        let gone = schedule::prune(&shared.broker, q, &keep).await?;
        if !gone.is_empty() {
            tracing::info!(queue = %q, removed = ?gone, "periodic tasks no longer declared removed");
        }
    }
    Ok(())
}

/// Fires the pending ticks of every enabled schedule.
async fn fire_due(shared: &Shared, now: u64) -> crate::Result<()> {
    for t in shared.schedules.iter().filter(|t| t.resolved.enabled) {
        let r = &t.resolved;
        let last = schedule::last_ticks(&shared.broker, &t.queue, &[r.name.as_str()]).await?;
        let after = last.first().copied().flatten().unwrap_or(now);
        let pending = r
            .schedule
            .ticks_back(after, now, ON_TIME_TICKS + r.missed.most());
        let p = plan(&pending, now, r.missed);
        for &tick in &p.fire {
            let next = r.schedule.next_after(tick);
            let fired =
                schedule::fire(&shared.broker, &t.queue, (r, t.priority), tick, true, next).await?;
            if fired {
                tracing::debug!(task = %r.name, tick, "periodic task enqueued");
            }
        }
        if let Some(newest) = p.newest.filter(|n| !p.fire.contains(n)) {
            let next = r.schedule.next_after(newest);
            schedule::fire(
                &shared.broker,
                &t.queue,
                (r, t.priority),
                newest,
                false,
                next,
            )
            .await?;
        }
        if p.dropped > 0 {
            tracing::info!(task = %r.name, dropped = p.dropped, missed = %r.missed, "missed ticks dropped by the policy");
        }
    }
    Ok(())
}

/// How long until the next tick of any enabled schedule (at most
/// [`MAX_IDLE`]).
fn until_next(tasks: &[PeriodicTask], now: u64) -> Duration {
    tasks
        .iter()
        .filter(|t| t.resolved.enabled)
        .filter_map(|t| t.resolved.schedule.next_after(now))
        .map(|n| Duration::from_millis(n.saturating_sub(now) + 1))
        .min()
        .unwrap_or(MAX_IDLE)
        .min(MAX_IDLE)
}
