//! # pym-broker
//!
//! Tasks on Redis Streams: the [`task`] registry, the signed [`envelope`],
//! the producer's [`Queue`], the broker's mechanisms (one module each) and,
//! with the `worker` feature, the [`worker`].
//!
//! `enqueue` → `delay` (promotion) → `fetch` → `ack` | `retry` | `dead`,
//! with `workers` (the registry of live workers) and `reclaim` returning
//! tasks of dead workers, and `stats` reading depth.

mod broker;
mod cluster;
pub mod envelope;
pub mod metrics;
pub mod queue;
pub mod task;

pub mod ack;
pub mod cancel;
pub mod cluster_url;
pub mod concurrency;
pub mod dead;
pub mod delay;
pub mod enqueue;
pub mod fetch;
pub mod flow;
pub mod handle;
pub mod primary;
pub mod reclaim;
pub mod redis_url;
pub mod retry;
pub mod schedule;
pub mod sentinel_events;
pub mod sentinel_url;
pub mod shards;
pub mod stats;
pub mod task_record;
pub mod task_spans;
pub mod unique;
pub mod workers;

#[cfg(feature = "worker")]
pub mod worker;

pub use broker::{
    Broker, BrokerConfig, BrokerError, Result, ShardChoice, connect_reader, redis_unavailable,
};
pub use cancel::Cancelled;
pub use handle::{HandleError, TaskHandle};
pub use primary::BrokerConn;
pub use pym_core::keys;
pub use queue::{Expiry, Queue, SpawnError, SpawnOptions, TaskId, When};
pub use redis_url::redact as redact_url;
pub use task::{Priority, TaskError, TaskOptions};
pub use task_record::{TaskRecord, TaskState};
