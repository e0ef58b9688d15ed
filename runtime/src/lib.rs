//! # pym-runtime
//!
//! Microservices with OpenAPI-bound endpoints, JWT auth, one error format,
//! and `#[asynctask]` functions that run later in a worker with the caller's
//! context restored. See the repository README and ARCHITECTURE.md.
//!
//! What a service uses:
//!
//! | item | for |
//! |---|---|
//! | [`App`] | the service binary: `serve`, `worker`, `up`, `check`, `token`, `dead`, `stats` |
//! | [`api!`] | types, a typed handler trait, `bind` and a typed client from an OpenAPI spec |
//! | [`client`] | settings of generated clients (timeouts, retries, credentials) |
//! | [`asynctask`], [`Queue`], [`When`], [`TaskError`] | tasks: declare, spawn, fail |
//! | [`context()`], [`Context`] | who called, in handlers and in tasks |
//! | [`http`] | handlers' errors ([`http::ApiError`]), the service builder, axum |
//! | [`config::Config`] | `pym-config.yaml` and its `PYM_*` overrides |
//! | [`contract`] | the environment variables, ports and paths the operator sets |
//! | `testing` (feature) | a real `redis-server` for tests |

mod admin;
mod cli;
pub mod config;

pub use cli::App;
/// Task records (`#[asynctask(track)]`): what a handle reads.
pub use pym_broker::task_record;
pub use pym_broker::{
    Cancelled, Expiry, HandleError, Priority, Queue, SpawnError, SpawnOptions, TaskError,
    TaskHandle, TaskId, TaskOptions, TaskRecord, TaskState, When, task::Tick,
};
pub use pym_core::{Context, ErrorReport, ErrorReporter, ErrorSource, context, contract};
pub use pym_macros::{api, asynctask};

/// The HTTP layer: the service builder, handlers' errors, axum.
pub mod http {
    pub use pym_http::{
        ApiError, Auth, Claims, Email, ErrorBody, HttpConfig, JwtConfig, NotAnEmail, OperationName,
        Service, ServiceBuilder, ServiceError, Spec, axum, codes, typed,
    };
}

/// Calling other APIs: what the client `api!` generates uses, and its
/// settings ([`client::ClientConfig`], [`client::Credentials`]).
pub mod client {
    pub use pym_client::{
        Answer, Client, ClientConfig, ClientSetupError, Credentials, Method, Request, StatusCode,
        params,
    };
}

/// The types generated code uses for `format: email`, `uuid` and `date-time`.
pub use pym_http::Email;
pub use {chrono, uuid};

/// The crates the code [`api!`] generates uses, so a service needs none
/// of them as its own dependencies.
#[doc(hidden)]
pub mod __private {
    pub use chrono;
    pub use regress;
    pub use serde;
    pub use serde_json;
    pub use uuid;
}

/// Re-exported for the code `#[asynctask]` generates.
#[doc(hidden)]
pub use inventory;
/// The task machinery, for the code `#[asynctask]` generates.
#[doc(hidden)]
pub use pym_broker::task;

#[cfg(feature = "testing")]
pub mod testing;
