//! The handle tasks are spawned on: Redis-backed, or eager (inline, for unit
//! tests and `up` without Redis).

use crate::envelope::{Envelope, now_ms};
use crate::handle::TaskHandle;
use crate::metrics::TaskMetrics;
use crate::task::{Task, TaskError, validate_queue_name};
use crate::task_spans;
use crate::{Broker, BrokerConfig, BrokerError, ShardChoice};
use pym_core::Metrics;
use pym_core::context::{self, Context};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Id of a spawned task.
pub type TaskId = Uuid;

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("task arguments do not serialise to JSON: {0}")]
    Args(#[from] serde_json::Error),
    #[error("cannot enqueue: {0}")]
    Broker(#[from] BrokerError),
    #[error("{0}")]
    InvalidQueue(String),
    /// The spawn's expiry falls before the task is due: it could never run.
    #[error("the task would expire before it is due: {0}")]
    ExpiresBeforeDue(String),
    /// Eager mode only: the task ran inline and failed.
    #[error("task failed (eager mode): {0}")]
    Eager(TaskError),
}

impl SpawnError {
    /// The broker is unreachable or has no master right now (e.g. during a
    /// Sentinel failover): an API answers 503 `SERVICE_UNAVAILABLE`, and the
    /// task was not enqueued (or, after a cut mid-command, may have been).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SpawnError::Broker(e) if e.is_unavailable())
    }
}

/// Where spawned tasks go.
#[derive(Clone, Debug)]
pub struct Queue {
    mode: Mode,
    metrics: Arc<TaskMetrics>,
}

#[derive(Clone, Debug)]
enum Mode {
    Redis(Broker),
    Eager,
}

/// When a spawned task should run.
#[derive(Clone, Copy, Debug, Default)]
pub enum When {
    #[default]
    Now,
    After(Duration),
    At(SystemTime),
}

/// Until when a task may start: if its first attempt has not started by
/// then, it is not run (dead-lettered with reason `expired`, or discarded
/// with `#[asynctask(on_expiry = "discard")]`). A retry of a task that
/// started never expires.
#[derive(Clone, Copy, Debug)]
pub enum Expiry {
    /// This long after the task is due (now, or its delay).
    In(Duration),
    /// At this time (refused at spawn if the task is due later).
    At(SystemTime),
}

/// How one task is spawned ([`Queue::spawn_with`]); the default is now,
/// round-robin over shards, with the task's own expiry.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpawnOptions<'a> {
    pub when: When,
    /// On a sharded queue, the shard of this key (see [`crate::shards`]);
    /// ignored by a flow-controlled task, which always goes to shard 0
    /// ([`crate::flow::on_first_shard`]).
    pub shard_key: Option<&'a str>,
    /// Overrides the task's `expires_in_secs`.
    pub expires: Option<Expiry>,
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// When a task due at `due_ms` (`None`: now, `now_ms`) expires: by the
/// spawn's `expires`, else by the task's `expires_in`; an error when the
/// expiry comes before it is due.
pub fn expires_at(
    now_ms: u64,
    due_ms: Option<u64>,
    expires: Option<Expiry>,
    task_expires_in: Option<Duration>,
) -> Result<Option<u64>, SpawnError> {
    let due = due_ms.unwrap_or(now_ms).max(now_ms);
    let at = match expires {
        Some(Expiry::At(t)) => epoch_ms(t),
        Some(Expiry::In(d)) => due + d.as_millis() as u64,
        None => match task_expires_in {
            Some(d) => due + d.as_millis() as u64,
            None => return Ok(None),
        },
    };
    if at <= due {
        return Err(SpawnError::ExpiresBeforeDue(format!(
            "its expiry is {} ms before it is due; expire it later or run it sooner",
            due - at
        )));
    }
    Ok(Some(at))
}

impl Queue {
    /// Tasks run inline, at once, in the caller's context; delays are
    /// ignored and a failure is returned as [`SpawnError::Eager`].
    pub fn eager() -> Self {
        Queue {
            mode: Mode::Eager,
            metrics: TaskMetrics::unregistered(),
        }
    }

    /// Record task metrics of an eager queue in `registry` (a Redis queue
    /// records where its [`BrokerConfig::metrics`] says).
    pub fn with_metrics(mut self, registry: &Metrics) -> Self {
        self.metrics = TaskMetrics::registered(registry);
        self
    }

    /// Tasks are enqueued in Redis for workers.
    pub async fn connect(config: &BrokerConfig) -> Result<Self, BrokerError> {
        Ok(Self::redis(Broker::connect(config).await?))
    }

    pub fn redis(broker: Broker) -> Self {
        Queue {
            metrics: broker.metrics().clone(),
            mode: Mode::Redis(broker),
        }
    }

    pub fn is_eager(&self) -> bool {
        matches!(self.mode, Mode::Eager)
    }

    pub fn broker(&self) -> Option<&Broker> {
        match &self.mode {
            Mode::Redis(b) => Some(b),
            Mode::Eager => None,
        }
    }

    /// Spawn `T` with `args`, capturing the current request context.
    pub async fn spawn<T: Task>(
        &self,
        args: T::Args,
        when: When,
    ) -> Result<TaskHandle, SpawnError> {
        let opts = SpawnOptions {
            when,
            ..SpawnOptions::default()
        };
        self.spawn_with::<T>(args, opts).await
    }

    /// [`Queue::spawn`] with options: when, the shard key (the tasks of one
    /// key stay on one shard, in order; see [`crate::shards`]) and expiry.
    pub async fn spawn_with<T: Task>(
        &self,
        args: T::Args,
        opts: SpawnOptions<'_>,
    ) -> Result<TaskHandle, SpawnError> {
        let SpawnOptions {
            when,
            shard_key: key,
            expires,
        } = opts;
        let queue = T::OPTIONS.queue;
        validate_queue_name(queue).map_err(SpawnError::InvalidQueue)?;
        let raw = RawValue::from_string(serde_json::to_string(&args)?)?;
        let ctx: Context = context::with_current(|c| c.cloned().unwrap_or_default());
        let mut env = Envelope::new(T::NAME, queue, T::OPTIONS.priority, raw, ctx);
        let now = now_ms();
        env.eta = match when {
            When::Now => None,
            When::After(d) => Some(now + d.as_millis() as u64),
            When::At(t) => Some(epoch_ms(t)),
        };
        env.expires_at = expires_at(now, env.eta, expires, T::OPTIONS.expires_in)?;
        env.flow = T::flow(&args);
        match &self.mode {
            Mode::Redis(b) => {
                let id = env.id;
                let span = task_spans::enqueue(&mut env);
                let key = match key {
                    _ if crate::flow::on_first_shard(&T::OPTIONS) => ShardChoice::First,
                    Some(k) => ShardChoice::Key(k.as_bytes()),
                    None => ShardChoice::Next,
                };
                if let (Some(u), Some(_)) = (T::OPTIONS.unique, &env.flow.unique) {
                    // The key held: the holder's id, nothing enqueued.
                    // Boxed, as the tracked branch: the spawn's future is
                    // built (and moved) at its full size by every spawn.
                    let held = Box::pin(b.enqueue_unique(env, u.ttl, key, T::OPTIONS.track)).await;
                    task_spans::enqueued(span, held.as_ref().map(|_| ()));
                    let holder = held?;
                    if holder == id {
                        self.metrics.enqueued(T::NAME, queue);
                    }
                    return Ok(TaskHandle::new::<T>(holder, Some(b.clone()), None));
                }
                let enqueued = match T::OPTIONS.track {
                    None => b.enqueue_keyed(env, key).await.map(|()| None),
                    Some(ttl) => Box::pin(b.enqueue_tracked(env, key, ttl)).await.map(Some),
                };
                task_spans::enqueued(span, enqueued.as_ref().map(|_| ()));
                let sent_to = enqueued?;
                self.metrics.enqueued(T::NAME, queue);
                Ok(TaskHandle::new::<T>(id, Some(b.clone()), sent_to))
            }
            Mode::Eager => {
                // Round-trip the arguments as a worker would, so eager tests
                // catch what the wire would break.
                let args: T::Args = serde_json::from_str(env.args.get())?;
                let ctx = Arc::new(env.ctx.clone());
                self.metrics.enqueued(T::NAME, queue);
                context::scope(ctx, T::call(args))
                    .await
                    .map_err(SpawnError::Eager)?;
                Ok(TaskHandle::new::<T>(env.id, None, None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_counts_from_when_the_task_is_due() {
        let now = 1_000_000;
        let s = Duration::from_secs;
        let at = |ms: u64| Some(Expiry::At(UNIX_EPOCH + Duration::from_millis(ms)));
        let table = [
            // (due, the spawn's expiry, the task's, want)
            (None, None, None, Ok(None)),
            (None, None, Some(s(10)), Ok(Some(now + 10_000))),
            (Some(now + 5_000), None, Some(s(10)), Ok(Some(now + 15_000))),
            (
                None,
                Some(Expiry::In(s(2))),
                Some(s(10)),
                Ok(Some(now + 2_000)),
            ),
            (None, at(now + 1), None, Ok(Some(now + 1))),
            // a due time in the past counts from now
            (Some(now - 5_000), None, Some(s(1)), Ok(Some(now + 1_000))),
            (Some(now + 5_000), at(now + 5_000), None, Err(())),
            (None, at(now - 1), Some(s(10)), Err(())),
        ];
        for (due, expires, task, want) in table {
            let got = expires_at(now, due, expires, task).map_err(|e| {
                assert!(e.to_string().contains("expire it later"), "{e}");
            });
            assert_eq!(got, want, "{due:?} {expires:?} {task:?}");
        }
    }
}
