//! Task metrics: counters, a histogram and a gauge, registered into the
//! process's [`Metrics`] registry that is passed in. Names come from
//! [`pym_core::contract::metrics`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use pym_core::Metrics;
use pym_core::contract::metrics as names;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: String,
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLabels {
    pub queue: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

/// Task counters, histogram and gauge.
pub struct TaskMetrics {
    pub enqueued: Family<TaskLabels, Counter>,
    pub started: Family<TaskLabels, Counter>,
    pub succeeded: Family<TaskLabels, Counter>,
    pub failed: Family<TaskLabels, Counter>,
    pub retried: Family<TaskLabels, Counter>,
    pub replay_skipped: Family<TaskLabels, Counter>,
    pub expired: Family<TaskLabels, Counter>,
    pub deferred: Family<TaskLabels, Counter>,
    pub parked: Family<TaskLabels, Counter>,
    pub dead_lettered: Family<DeadLabels, Counter>,
    pub duration: Family<TaskLabels, Histogram>,
    pub in_flight: Family<QueueLabels, Gauge>,
}

impl TaskMetrics {
    /// Task metrics registered in no registry (eager queues, tests).
    pub fn unregistered() -> Arc<Self> {
        Arc::new(Self::new())
    }

    /// Task metrics registered in `registry`.
    pub fn registered(registry: &Metrics) -> Arc<Self> {
        let m = Self::new();
        m.register(registry);
        Arc::new(m)
    }

    fn new() -> Self {
        TaskMetrics {
            enqueued: Family::default(),
            started: Family::default(),
            succeeded: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            replay_skipped: Family::default(),
            expired: Family::default(),
            deferred: Family::default(),
            parked: Family::default(),
            dead_lettered: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 20))
            }),
            in_flight: Family::default(),
        }
    }

    fn register(&self, r: &Metrics) {
        let m = self;
        r.register(names::TASKS_ENQUEUED, "Tasks enqueued", m.enqueued.clone());
        r.register(
            names::TASKS_STARTED,
            "Task attempts started",
            m.started.clone(),
        );
        r.register(
            names::TASKS_SUCCEEDED,
            "Task attempts that succeeded",
            m.succeeded.clone(),
        );
        r.register(
            names::TASKS_FAILED,
            "Task attempts that failed (error, panic or timeout)",
            m.failed.clone(),
        );
        r.register(
            names::TASKS_RETRIED,
            "Failed tasks scheduled for a retry",
            m.retried.clone(),
        );
        r.register(
            names::TASKS_REPLAY_SKIPPED,
            "Deliveries of an already processed task id skipped by its replay guard",
            m.replay_skipped.clone(),
        );
        r.register(
            names::TASKS_EXPIRED,
            "Tasks not started before they expired (dead-lettered or discarded)",
            m.expired.clone(),
        );
        r.register(
            names::TASKS_DEFERRED,
            "Tasks deferred to a later rate-limit slot (not an attempt)",
            m.deferred.clone(),
        );
        r.register(
            names::TASKS_PARKED,
            "Tasks parked while their concurrency cap was full (not an attempt)",
            m.parked.clone(),
        );
        r.register(
            names::TASKS_DEAD_LETTERED,
            "Tasks moved to the dead letters, by reason",
            m.dead_lettered.clone(),
        );
        r.register(
            names::TASK_DURATION_SECONDS,
            "Run time of task attempts",
            m.duration.clone(),
        );
        r.register(
            names::TASKS_IN_FLIGHT,
            "Tasks held by this worker",
            m.in_flight.clone(),
        );
    }
}

fn labels(task: &str, queue: &str) -> TaskLabels {
    TaskLabels {
        task: task.to_owned(),
        queue: queue.to_owned(),
    }
}

impl TaskMetrics {
    pub fn enqueued(&self, task: &str, queue: &str) {
        self.enqueued.get_or_create(&labels(task, queue)).inc();
    }
    /// The counters and histogram of one task on one queue, resolved once:
    /// a worker keeps them so the per-task path does no label lookup.
    pub fn handles(&self, task: &str, queue: &str) -> TaskHandles {
        let l = labels(task, queue);
        TaskHandles {
            started: self.started.get_or_create(&l).clone(),
            succeeded: self.succeeded.get_or_create(&l).clone(),
            failed: self.failed.get_or_create(&l).clone(),
            duration: self.duration.get_or_create(&l).clone(),
        }
    }
    pub fn retried(&self, task: &str, queue: &str) {
        self.retried.get_or_create(&labels(task, queue)).inc();
    }
    pub fn replay_skipped(&self, task: &str, queue: &str) {
        self.replay_skipped
            .get_or_create(&labels(task, queue))
            .inc();
    }
    pub fn expired(&self, task: &str, queue: &str) {
        self.expired.get_or_create(&labels(task, queue)).inc();
    }
    pub fn deferred(&self, task: &str, queue: &str) {
        self.deferred.get_or_create(&labels(task, queue)).inc();
    }
    pub fn parked(&self, task: &str, queue: &str) {
        self.parked.get_or_create(&labels(task, queue)).inc();
    }
    pub fn dead_lettered(&self, queue: &str, reason: &str) {
        self.dead_lettered
            .get_or_create(&DeadLabels {
                queue: queue.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }
    pub fn in_flight(&self, queue: &str) -> Gauge {
        self.in_flight
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .clone()
    }
}

/// Metric handles of one task on one queue (see [`TaskMetrics::handles`]);
/// they share their values with the registry.
#[derive(Clone, Debug)]
pub struct TaskHandles {
    started: Counter,
    succeeded: Counter,
    failed: Counter,
    duration: Histogram,
}

impl TaskHandles {
    pub fn started(&self) {
        self.started.inc();
    }
    pub fn finished(&self, ok: bool, seconds: f64) {
        if ok {
            self.succeeded.inc();
        } else {
            self.failed.inc();
        }
        self.duration.observe(seconds);
    }
}

impl std::fmt::Debug for TaskMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskMetrics")
    }
}
