//! # pym-client
//!
//! What the client `pym_runtime::api!` generates for a spec stands on: one
//! [`Client`] per called API, holding a pooled HTTP client (reqwest).
//!
//! - **The caller's context goes along** ([`forward`]): inside a request
//!   handler or a task, a call carries the caller's bearer token (or a
//!   service token, see [`Credentials`]), `X-Request-Id` and a
//!   `traceparent` of the same trace, so the called service sees the same
//!   user and request.
//! - **Failures are retried when that is safe** ([`retry`]): a connection
//!   that could not be made, and `429`, for every method; a timeout,
//!   `502`, `503` and `504` for idempotent methods only. Delays grow
//!   exponentially with jitter, or follow `Retry-After`.
//! - **Errors come back as [`pym_http::ApiError`]** ([`answer`]): an error
//!   in pym's standard JSON keeps its status, code and `error_id`; a
//!   transport failure is a 503 (no connection), 504 (timeout) or 502.

pub mod answer;
mod client;
mod config;
mod credentials;
pub mod forward;
pub mod params;
pub mod retry;

pub use answer::Answer;
pub use client::{Client, ClientSetupError, Request};
pub use config::ClientConfig;
pub use credentials::Credentials;
pub use reqwest::{Method, StatusCode};
