//! The handle tasks are spawned on: Redis-backed, or eager (inline, for unit
//! tests and `up` without Redis).

use crate::envelope::{Envelope, now_ms};
use crate::metrics::TaskMetrics;
use crate::task::{Task, TaskError, validate_queue_name};
use crate::{Broker, BrokerConfig, BrokerError};
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
#[derive(Clone, Copy, Debug)]
pub enum When {
    Now,
    After(Duration),
    At(SystemTime),
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
    pub async fn spawn<T: Task>(&self, args: T::Args, when: When) -> Result<TaskId, SpawnError> {
        self.spawn_keyed::<T>(args, when, None).await
    }

    /// [`Queue::spawn`] on the shard of `key` when `T`'s queue is sharded:
    /// the tasks of one key stay on one shard, in order (see
    /// [`crate::shards`]); `None` spreads tasks round-robin.
    pub async fn spawn_keyed<T: Task>(
        &self,
        args: T::Args,
        when: When,
        key: Option<&str>,
    ) -> Result<TaskId, SpawnError> {
        let queue = T::OPTIONS.queue;
        validate_queue_name(queue).map_err(SpawnError::InvalidQueue)?;
        let raw = RawValue::from_string(serde_json::to_string(&args)?)?;
        let ctx: Context = context::with_current(|c| c.cloned().unwrap_or_default());
        let mut env = Envelope::new(T::NAME, queue, T::OPTIONS.priority, raw, ctx);
        env.eta = match when {
            When::Now => None,
            When::After(d) => Some(now_ms() + d.as_millis() as u64),
            When::At(t) => Some(
                t.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            ),
        };
        match &self.mode {
            Mode::Redis(b) => {
                let id = env.id;
                b.enqueue_keyed(env, key.map(str::as_bytes)).await?;
                self.metrics.enqueued(T::NAME, queue);
                Ok(id)
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
                Ok(env.id)
            }
        }
    }
}
