//! Running one delivered task: verify, decode, restore the caller's context,
//! run with a timeout and panic guard, and decide how to settle it.

use crate::ack::Settle;
use crate::dead::{DeadLetter, Reason};
use crate::envelope::{Envelope, Signer};
use crate::fetch::Delivery;
use crate::metrics::{TaskHandles, TaskMetrics};
use crate::retry::{Backoff, next_attempt};
use crate::task::Registry;
use futures::FutureExt;
use pym_core::context;
use pym_core::keys;
use pym_core::panic_message;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// What the executor needs, shared by all tasks of a worker.
pub(crate) struct Executor {
    pub signer: Signer,
    pub registry: &'static Registry,
    pub backoff: Backoff,
    pub max_deliveries: u64,
    /// Metric handles of each task whose own queue this worker consumes,
    /// resolved once at start.
    pub handles: HashMap<&'static str, TaskHandles>,
    pub metrics: Arc<TaskMetrics>,
}

impl Executor {
    pub fn new(
        signer: Signer,
        registry: &'static Registry,
        backoff: Backoff,
        max_deliveries: u64,
        queues: &[String],
        metrics: Arc<TaskMetrics>,
    ) -> Self {
        let m = &metrics;
        let handles = registry
            .names()
            .filter_map(|t| {
                let queue = registry.get(t)?.options.queue;
                queues
                    .iter()
                    .any(|q| q == queue)
                    .then(|| (t, m.handles(t, queue)))
            })
            .collect();
        Executor {
            signer,
            registry,
            backoff,
            max_deliveries,
            handles,
            metrics,
        }
    }

    /// Run `d` (from `queue`) to completion and say how to settle it.
    pub async fn run(&self, queue: &str, d: &Delivery) -> Settle {
        let dead = |message: &str, reason: Reason, error: String, attempts: u32| {
            tracing::warn!(queue, entry = %d.id, reason = reason.label(), %error, "task dead-lettered");
            self.metrics.dead_lettered(queue, reason.label());
            Settle::Dead(Box::new(DeadLetter::new(
                queue, &d.id, message, reason, error, attempts,
            )))
        };
        let Some(message) = d.message.as_deref() else {
            return dead(
                "",
                Reason::Malformed,
                format!("stream entry has no `{}` field", keys::FIELD_MESSAGE),
                0,
            );
        };
        let env = match self.signer.open(message) {
            Ok(env) => env,
            Err(e) => return dead(message, (&e).into(), e.to_string(), 0),
        };
        if d.deliveries > self.max_deliveries {
            return dead(
                message,
                Reason::TooManyDeliveries,
                format!(
                    "delivered {} times without finishing (limit {}): its workers crashed or were killed while running it",
                    d.deliveries, self.max_deliveries
                ),
                env.attempt + 1,
            );
        }
        let Some(reg) = self.registry.get(&env.task) else {
            let mut known: Vec<_> = self.registry.names().collect();
            known.sort_unstable();
            return dead(
                message,
                Reason::UnknownTask,
                format!(
                    "no task named {:?} in this worker (it has: {})",
                    env.task,
                    known.join(", ")
                ),
                env.attempt,
            );
        };
        if reg.options.fresh_token
            && let Some(exp) = env.ctx.token_expiry()
        {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if exp <= now {
                return dead(
                    message,
                    Reason::TokenExpired,
                    format!(
                        "the caller's token expired {}s ago, while the task was queued, and task {:?} requires a fresh token",
                        now - exp,
                        env.task
                    ),
                    env.attempt,
                );
            }
        }
        let fut = match reg.start(&env.args) {
            Ok(f) => f,
            Err(e) => {
                return dead(
                    message,
                    Reason::BadArgs,
                    format!(
                        "arguments do not match the parameters of task {:?}: {e}",
                        env.task
                    ),
                    env.attempt,
                );
            }
        };
        // A task sent to a queue other than its own has no handles yet.
        let m = match self.handles.get(reg.name) {
            Some(h) if reg.options.queue == queue => h.clone(),
            _ => self.metrics.handles(&env.task, queue),
        };
        m.started();
        let ctx = Arc::new(env.ctx.clone());
        let span = tracing::info_span!(
            "task",
            task = %env.task,
            id = %env.id,
            attempt = env.attempt,
            request_id = ctx.request_id.as_deref().unwrap_or(""),
            user_id = ctx.user_id.as_deref().unwrap_or(""),
        );
        let started = Instant::now();
        let timeout = reg.options.timeout;
        let result = tokio::time::timeout(
            timeout,
            AssertUnwindSafe(context::scope(ctx, fut)).catch_unwind(),
        )
        .instrument(span)
        .await;
        let (error, retryable) = match result {
            Ok(Ok(Ok(()))) => {
                m.finished(true, started.elapsed().as_secs_f64());
                return Settle::Ack;
            }
            Ok(Ok(Err(e))) => (e.message().to_owned(), e.is_retryable()),
            Ok(Err(panic)) => (format!("task panicked: {}", panic_message(&*panic)), true),
            Err(_) => (
                format!("task timed out after {}", fmt_duration(timeout)),
                true,
            ),
        };
        m.finished(false, started.elapsed().as_secs_f64());
        self.failed(
            queue,
            d,
            message,
            env,
            reg.options.max_retries,
            error,
            retryable,
            dead,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        queue: &str,
        d: &Delivery,
        message: &str,
        env: Envelope,
        max_retries: u32,
        error: String,
        retryable: bool,
        dead: impl Fn(&str, Reason, String, u32) -> Settle,
    ) -> Settle {
        if retryable && env.attempt < max_retries {
            let delay = self.backoff.delay(env.attempt, rand::random::<f64>());
            tracing::info!(
                queue, task = %env.task, id = %env.id, entry = %d.id, attempt = env.attempt,
                retry_in = ?delay, %error, "task failed; retry scheduled"
            );
            self.metrics.retried(&env.task, queue);
            let next = next_attempt(&env, &error, delay);
            Settle::Retry {
                due_ms: next.eta.unwrap_or(0),
                member: keys::delayed_member(next.priority, &self.signer.seal(&next)),
            }
        } else if retryable {
            dead(
                message,
                Reason::RetriesExhausted,
                format!("failed {} times; last error: {error}", env.attempt + 1),
                env.attempt + 1,
            )
        } else {
            dead(message, Reason::Fatal, error, env.attempt + 1)
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
