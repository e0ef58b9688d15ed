//! Starting the worker's loops and stopping them as sidekiq's manager does:
//! `stop(deadline)` goes quiet (no more fetching), waits for running tasks
//! until the deadline, then hands back what is left (hard shutdown), and
//! flushes the outcomes still queued.

use super::beat_loop::beat_loop;
use super::fetch_loop::fetch_loop;
use super::heartbeat::heartbeat_loop;
use super::reclaim_loop::reclaim_loop;
use super::schedule_loop::schedule_loop;
use super::settle_loop::settle_loop;
use super::takeover_loop::takeover_loop;
use super::{FETCHERS, SettleOp, Shared};
use crate::ack::Settle;
use crate::delay;
use pym_core::keys::QueueKeys;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Longest wait for the last outcomes to be written after the tasks ended.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A started worker.
pub(super) struct Running {
    shared: Arc<Shared>,
    /// Fetch, reclaim and promotion loops: they end when the worker is quiet.
    loops: Vec<JoinHandle<()>>,
    settler: JoinHandle<()>,
    flush: CancellationToken,
    heartbeat: JoinHandle<()>,
    beat: JoinHandle<()>,
    server: Option<JoinHandle<()>>,
}

/// The streams of each fetch loop (see [`Running::start`]): all of them
/// in each, or on a Redis Cluster those of one queue or shard in each.
fn fetch_sets(shared: &Shared) -> Vec<Arc<[String]>> {
    if !shared.broker.is_cluster() {
        let all: Arc<[String]> = shared.streams.names.clone().into();
        return vec![all; FETCHERS.min(shared.config.concurrency)];
    }
    shared
        .shards
        .iter()
        .map(|q| {
            let qk = QueueKeys::new(q);
            qk.ready.to_vec().into()
        })
        .collect()
}

impl Running {
    /// Start every loop of the worker.
    pub(super) fn start(
        shared: Arc<Shared>,
        settle_rx: mpsc::UnboundedReceiver<SettleOp>,
        server: Option<JoinHandle<()>>,
    ) -> Self {
        let flush = CancellationToken::new();
        let settler = tokio::spawn(settle_loop(shared.clone(), settle_rx, flush.clone()));
        let every = shared.config.visibility_timeout / 3;
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), every));
        let beat = tokio::spawn(beat_loop(shared.clone()));
        // Two fetch loops, each on its own connection, so one reads the
        // next batch while the other hands its batch out. On a Redis
        // Cluster one read cannot span queues (their slots differ): one
        // loop per queue, each blocking on its queue's node.
        let mut loops: Vec<_> = fetch_sets(&shared)
            .into_iter()
            .map(|streams| tokio::spawn(fetch_loop(shared.clone(), streams)))
            .collect();
        loops.push(tokio::spawn(reclaim_loop(shared.clone())));
        loops.push(tokio::spawn(takeover_loop(shared.clone())));
        loops.push(tokio::spawn(schedule_loop(shared.clone())));
        for q in &shared.shards {
            let promoter =
                delay::run_promoter(shared.broker.clone(), q.clone(), shared.quiet.clone());
            loops.push(tokio::spawn(promoter));
        }
        Running {
            shared,
            loops,
            settler,
            flush,
            heartbeat,
            beat,
            server,
        }
    }

    /// Quiet, then wait for running tasks until `deadline`, then hand back
    /// what is left, then flush the outcomes.
    pub(super) async fn stop(mut self, deadline: Instant) {
        let grace = deadline.saturating_duration_since(Instant::now());
        tracing::info!(?grace, "shutting down: no new tasks, draining");
        self.quiet().await;
        let tasks = &self.shared.tasks;
        tasks.close();
        let finished = tokio::time::timeout(grace, tasks.wait()).await.is_ok();
        let handed = self.hard_shutdown().await;
        if handed > 0 && !finished {
            tracing::warn!(
                handed,
                "grace period over: handed unfinished tasks back to the queue"
            );
        } else if handed > 0 {
            tracing::info!(
                handed,
                "handed tasks that had not started back to the queue"
            );
        }
        self.finish().await;
        tracing::info!("worker stopped");
    }

    /// Stop fetching, reclaiming and promoting; wait for those loops.
    async fn quiet(&mut self) {
        self.shared.quiet.cancel();
        for l in self.loops.drain(..) {
            let _ = l.await;
        }
    }

    /// Abort every task still running and hand back every held task not
    /// settled yet. Returns how many were handed back.
    async fn hard_shutdown(&self) -> usize {
        let handed = hand_back_all(&self.shared);
        // Aborted tasks end at their next await; one that never yields is
        // not waited for (its outcome is ignored: it was handed back).
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, self.shared.tasks.wait()).await;
        handed
    }

    /// Write the queued outcomes (for up to [`FLUSH_TIMEOUT`]), then stop
    /// the remaining loops.
    async fn finish(self) {
        self.flush.cancel();
        let mut settler = self.settler;
        if tokio::time::timeout(FLUSH_TIMEOUT, &mut settler)
            .await
            .is_err()
        {
            settler.abort();
        }
        self.heartbeat.abort();
        // Stopped cleanly, everything handed back: leave the registry, so
        // no one looks for tasks to take over.
        self.beat.abort();
        let forget = crate::workers::forget(&self.shared.broker, &self.shared.config.name);
        if let Ok(Err(e)) = tokio::time::timeout(FLUSH_TIMEOUT, forget).await {
            tracing::debug!(error = %e, "leaving the worker registry failed");
        }
        if let Some(s) = self.server {
            let _ = s.await;
        }
        let left = self.shared.held.lock().unwrap().len();
        if left > 0 {
            tracing::warn!(
                left,
                "could not settle every task (Redis unreachable?); they will be redelivered"
            );
        }
    }
}

/// Abort every unsettled task and queue its hand-back. Returns the count.
fn hand_back_all(shared: &Shared) -> usize {
    let mut ops = Vec::new();
    {
        let mut held = shared.held.lock().unwrap();
        for (key, h) in held.iter_mut() {
            if h.settling {
                continue;
            }
            h.settling = true;
            if let Some(a) = &h.abort {
                a.abort();
            }
            // Without a message there is nothing to hand back; leave it to
            // the reclaimer, which dead-letters it with its reason.
            let Some(message) = &h.delivery.message else {
                continue;
            };
            ops.push(SettleOp {
                key: key.clone(),
                queue: Some(h.queue.clone()),
                settle: Settle::HandBack {
                    message: message.clone(),
                },
            });
        }
    }
    let n = ops.len();
    for op in ops {
        let _ = shared.settle_tx.send(op);
    }
    n
}
