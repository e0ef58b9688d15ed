//! # pym-process
//!
//! What every pym process does the same way, for the service binaries
//! (`pym-runtime`, `pym-broker`'s worker) and the operator alike — one
//! mechanism per module:
//!
//! | module | does |
//! |---|---|
//! | [`signals`] | SIGTERM or Ctrl-C → a cancelled [`CancellationToken`](tokio_util::sync::CancellationToken) |
//! | [`logs`] | the log setup: a filter from an environment variable, text or JSON lines on stderr |
//! | [`json_lines`] | the JSON line format: span fields rendered once, copied into each line |
//! | [`caller_fields`] | the request id and trace id of the request or task on every line, from pym's context |
//! | [`log_writer`] | lines batched in memory, written to stderr by a thread of their own |
//! | [`probes`] | the `/healthz`, `/readyz`, `/metrics` server (hyper), stopped by a token |

pub mod caller_fields;
pub mod json_lines;
pub mod log_writer;
pub mod logs;
pub mod probes;
pub mod signals;

pub use probes::Probes;
pub use signals::shutdown_on_signal;
