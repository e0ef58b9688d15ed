//! HTTP service layer: OpenAPI binding, validation, JWT auth, errors, built-ins.
//!
//! Build a [`Service`] from a [`crate::config::Config`], an OpenAPI 3.x
//! document and handlers bound by `operationId`; see [`server`].

pub mod auth;
pub mod builtins;
pub mod error;
pub mod metrics;
pub mod server;
pub mod spec;
pub mod validate;

pub use auth::{Auth, Claims};
pub use error::{ApiError, ErrorBody, codes};
pub use server::{Service, ServiceBuilder, ServiceError};
pub use spec::Spec;

/// The axum version pym is built on, for handlers' extractors and responses.
pub use axum;
