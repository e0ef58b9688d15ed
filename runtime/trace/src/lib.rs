//! # pym-trace
//!
//! OpenTelemetry spans for pym: [`config`] decides from the `OTEL_*`
//! variables whether and where spans go, [`span`] makes them (named by W3C
//! `traceparent`s, the form the request and task contexts carry) and, with
//! the `export` feature, [`exporter`] sends them over OTLP/HTTP. Libraries
//! make spans with the API alone; only the binary enables `export`.

pub mod config;
#[cfg(feature = "export")]
pub mod exporter;
pub mod span;

pub use opentelemetry::KeyValue;
pub use span::{Kind, Span, exporting};
