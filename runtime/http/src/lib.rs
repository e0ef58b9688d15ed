//! # pym-http
//!
//! The HTTP service layer: an OpenAPI document bound to handlers by
//! `operationId`, parameter/body validation, JWT auth, one error format,
//! request ids and trace context, metrics and the built-in endpoints.
//! It knows no task queue: the runtime passes what handlers need as
//! extensions and what `/readyz` checks as [`ServiceBuilder::readiness`].

mod around;
pub mod auth;
mod auth_cookie;
mod builtins;
pub mod config;
mod email;
pub mod error;
mod metrics;
pub mod readiness;
mod request_id;
mod request_span;
mod server;
pub mod spec;
pub mod typed;
mod validate;

pub use auth::{Auth, Claims};
pub use config::{HttpConfig, JwtConfig};
pub use email::{Email, NotAnEmail};
pub use error::{ApiError, ErrorBody, codes};
pub use server::{OperationName, Service, ServiceBuilder, ServiceError};
pub use spec::Spec;

/// The axum version pym is built on, for handlers' extractors and responses.
pub use axum;
/// The JWT library, for its `Algorithm`.
pub use jsonwebtoken;
