//! Task handles: what every generated `spawn*` returns. A handle is the
//! task's id (shown as the id, equal to handles of the same task) and, for
//! a task declared `track`, its state, progress and typed result read from
//! its record ([`crate::task_record`]); any handle can cancel its task
//! ([`crate::cancel`]). `<task>::handle(&queue, id)` builds one in another
//! process.

use crate::cancel::{self, Cancelled};
use crate::queue::{Queue, TaskId};
use crate::task::Task;
use crate::task_record::{self, Progress, TaskRecord, TaskState};
use crate::{Broker, BrokerError, shards};
use pym_core::keys;
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// Why a handle could not answer.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(
        "task {task:?} is not tracked: declare it #[asynctask(track)] to read its state, progress and result"
    )]
    NotTracked { task: &'static str },
    #[error("task {id} ran inline on an eager queue: it keeps no record and cannot be cancelled")]
    Eager { id: TaskId },
    #[error(
        "no record of task {id}: it was not spawned on this queue, or its record outlived its TTL (track(ttl_secs = N))"
    )]
    NotFound { id: TaskId },
    #[error("the result of task {id} does not decode as the task's return type: {error}")]
    Result {
        id: TaskId,
        error: serde_json::Error,
    },
    #[error("task {id} is still {state} after {waited:?}")]
    Timeout {
        id: TaskId,
        state: TaskState,
        waited: Duration,
    },
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A spawned task; `T` is what the task returns in `Ok`.
pub struct TaskHandle<T = ()> {
    id: TaskId,
    task: &'static str,
    queue: &'static str,
    tracked: bool,
    /// The queue (shard) it was sent to, if known (else any shard of its
    /// queue may hold it). Not a shared list: a spawn allocates nothing
    /// for it.
    sent_to: Option<String>,
    broker: Option<Broker>,
    _result: PhantomData<fn() -> T>,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new<K: Task>(
        id: TaskId,
        broker: Option<Broker>,
        sent_to: Option<String>,
    ) -> Self {
        TaskHandle {
            id,
            task: K::NAME,
            queue: K::OPTIONS.queue,
            tracked: K::OPTIONS.track.is_some(),
            sent_to,
            broker,
            _result: PhantomData,
        }
    }

    /// The handle of task `id` of type `K` spawned on `queue` by any
    /// process.
    pub fn of<K: Task>(queue: &Queue, id: TaskId) -> Self {
        Self::new::<K>(id, queue.broker().cloned(), None)
    }

    /// The queues that may hold the task: the one it was sent to, else
    /// every shard of its queue (declared here or recorded).
    async fn queues(&self, broker: &Broker) -> Result<Vec<String>, HandleError> {
        if let Some(q) = &self.sent_to {
            return Ok(vec![q.clone()]);
        }
        let recorded = shards::recorded_of(&mut broker.conn(), self.queue).await?;
        let n = recorded.max(broker.declared_shards(self.queue));
        Ok(keys::shards(self.queue, n))
    }

    /// The same handle, reading the result as `U`.
    pub fn typed<U>(self) -> TaskHandle<U> {
        TaskHandle {
            id: self.id,
            task: self.task,
            queue: self.queue,
            tracked: self.tracked,
            sent_to: self.sent_to,
            broker: self.broker,
            _result: PhantomData,
        }
    }

    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name.
    pub fn task(&self) -> &'static str {
        self.task
    }

    /// Whether the task keeps a record (`#[asynctask(track)]`).
    pub fn is_tracked(&self) -> bool {
        self.tracked
    }

    fn broker(&self) -> Result<&Broker, HandleError> {
        self.broker
            .as_ref()
            .ok_or(HandleError::Eager { id: self.id })
    }

    /// The task's record.
    pub async fn record(&self) -> Result<TaskRecord, HandleError> {
        if !self.tracked {
            return Err(HandleError::NotTracked { task: self.task });
        }
        let broker = self.broker()?;
        for q in self.queues(broker).await?.iter() {
            if let Some(r) = task_record::read(&mut broker.conn(), q, self.id).await? {
                return Ok(r);
            }
        }
        Err(HandleError::NotFound { id: self.id })
    }

    pub async fn status(&self) -> Result<TaskState, HandleError> {
        Ok(self.record().await?.state)
    }

    /// The progress the task last reported (written within a second).
    pub async fn progress(&self) -> Result<Option<Progress>, HandleError> {
        Ok(self.record().await?.progress)
    }

    /// Wait until the task is in a final state (polling its record), at
    /// most `timeout`.
    pub async fn wait(&self, timeout: Duration) -> Result<TaskRecord, HandleError> {
        let start = Instant::now();
        let mut every = Duration::from_millis(20);
        loop {
            let r = self.record().await?;
            if r.state.is_final() {
                return Ok(r);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(HandleError::Timeout {
                    id: self.id,
                    state: r.state,
                    waited,
                });
            }
            tokio::time::sleep(every.min(timeout - waited)).await;
            every = (every * 2).min(Duration::from_millis(250));
        }
    }

    /// Cancel the task, from any process: one that has not started never
    /// runs; a running one is told through its context.
    pub async fn cancel(&self) -> Result<Cancelled, HandleError> {
        let broker = self.broker()?;
        let mut found = Cancelled::Marked;
        for q in self.queues(broker).await?.iter() {
            match cancel::cancel(broker, q, self.id).await? {
                Cancelled::Marked => {}
                other => found = other,
            }
        }
        Ok(found)
    }
}

impl<T: DeserializeOwned> TaskHandle<T> {
    /// The task's return value once it succeeded (`None` before, or in
    /// another final state).
    pub async fn result(&self) -> Result<Option<T>, HandleError> {
        let r = self.record().await?;
        match (r.state, r.result) {
            (TaskState::Succeeded, Some(v)) => serde_json::from_value(v)
                .map(Some)
                .map_err(|error| HandleError::Result { id: self.id, error }),
            _ => Ok(None),
        }
    }
}

impl<T> Clone for TaskHandle<T> {
    fn clone(&self) -> Self {
        TaskHandle {
            id: self.id,
            task: self.task,
            queue: self.queue,
            tracked: self.tracked,
            sent_to: self.sent_to.clone(),
            broker: self.broker.clone(),
            _result: PhantomData,
        }
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .field("task", &self.task)
            .field("tracked", &self.tracked)
            .finish()
    }
}

/// Shows the id.
impl<T> fmt::Display for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.id, f)
    }
}

/// Handles of the same task are equal.
impl<T, U> PartialEq<TaskHandle<U>> for TaskHandle<T> {
    fn eq(&self, other: &TaskHandle<U>) -> bool {
        self.id == other.id && self.task == other.task
    }
}

impl<T> Eq for TaskHandle<T> {}

impl<T> From<TaskHandle<T>> for TaskId {
    fn from(h: TaskHandle<T>) -> TaskId {
        h.id
    }
}

impl<T> From<&TaskHandle<T>> for TaskId {
    fn from(h: &TaskHandle<T>) -> TaskId {
        h.id
    }
}
