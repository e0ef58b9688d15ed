//! Prometheus metrics: one process-wide registry, served at `/metrics` by the
//! API and the worker. Names come from [`crate::contract::metrics`].

use crate::contract::metrics as names;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use std::sync::{LazyLock, Mutex};

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// Register a metric in the process-wide registry.
pub fn register(name: &str, help: &str, metric: impl Metric) {
    REGISTRY.lock().unwrap().register(name, help, metric);
}

/// The registry in the OpenMetrics text format.
pub fn encode_text() -> String {
    // Make sure the task metrics exist even before the first task.
    let _ = task();
    let mut out = String::new();
    encode(&mut out, &REGISTRY.lock().unwrap()).expect("writing to a String cannot fail");
    out
}

/// Content type of [`encode_text`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
    pub dead_lettered: Family<DeadLabels, Counter>,
    pub duration: Family<TaskLabels, Histogram>,
    pub in_flight: Family<QueueLabels, Gauge>,
}

static TASK: LazyLock<TaskMetrics> = LazyLock::new(|| {
    let m = TaskMetrics {
        enqueued: Family::default(),
        started: Family::default(),
        succeeded: Family::default(),
        failed: Family::default(),
        retried: Family::default(),
        dead_lettered: Family::default(),
        duration: Family::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 20))
        }),
        in_flight: Family::default(),
    };
    register(names::TASKS_ENQUEUED, "Tasks enqueued", m.enqueued.clone());
    register(
        names::TASKS_STARTED,
        "Task attempts started",
        m.started.clone(),
    );
    register(
        names::TASKS_SUCCEEDED,
        "Task attempts that succeeded",
        m.succeeded.clone(),
    );
    register(
        names::TASKS_FAILED,
        "Task attempts that failed (error, panic or timeout)",
        m.failed.clone(),
    );
    register(
        names::TASKS_RETRIED,
        "Failed tasks scheduled for a retry",
        m.retried.clone(),
    );
    register(
        names::TASKS_DEAD_LETTERED,
        "Tasks moved to the dead letters, by reason",
        m.dead_lettered.clone(),
    );
    register(
        names::TASK_DURATION_SECONDS,
        "Run time of task attempts",
        m.duration.clone(),
    );
    register(
        names::TASKS_IN_FLIGHT,
        "Tasks held by this worker",
        m.in_flight.clone(),
    );
    m
});

/// The task metrics.
pub fn task() -> &'static TaskMetrics {
    &TASK
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
