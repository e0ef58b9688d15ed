//! # pym-runtime
//!
//! Microservices with OpenAPI-bound endpoints, JWT auth, one error format,
//! and `#[asynctask]` functions that run later in a worker with the caller's
//! context restored. See the repository README and ARCHITECTURE.md.

pub mod context;
pub mod contract;

pub use context::{Context, context};
pub mod broker;
pub mod cli;
pub mod config;
pub mod envelope;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod task;
pub mod worker;

pub use pym_macros::asynctask;
pub use queue::{Queue, SpawnError, TaskId, When};
pub use task::{Priority, TaskError, TaskOptions};

/// Re-exported for the code `#[asynctask]` generates.
#[doc(hidden)]
pub use inventory;
pub mod testing;
