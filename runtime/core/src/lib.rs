//! # pym-core
//!
//! What every pym crate and the operator agree on, with no I/O: the
//! operator ↔ runtime [`contract`], the request [`Context`], the Redis
//! [`keys`] layout, [`Priority`], the [`queue_name`] rule and the [`Metrics`]
//! registry type.

pub mod context;
pub mod contract;
pub mod error_report;
pub mod keys;
pub mod metrics;
mod panic;
mod priority;
pub mod queue_name;
pub mod task_run;

pub use context::{Context, context};
pub use error_report::{ErrorReport, ErrorReporter, ErrorSource};
pub use metrics::Metrics;
pub use panic::panic_message;
pub use priority::Priority;
