//! The OTLP/HTTP exporter: [`init`] reads the settings ([`crate::config`]),
//! and when they ask for export installs the OpenTelemetry SDK with a batch
//! span processor (its own thread: exporting never blocks a request or a
//! task; a collector that is down loses spans, never work) posting to the
//! collector with a blocking reqwest client (rustls on the ring provider).
//! The [`Exporter`] it returns flushes what is left when dropped, at exit.

use crate::config::{self, ConfigError, Protocol};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// Holds the SDK while spans are exported; dropping it flushes them.
#[must_use = "dropping it stops the export"]
pub struct Exporter(Option<SdkTracerProvider>);

impl Exporter {
    /// Whether spans are exported.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("OpenTelemetry: the last spans were not all exported: {e}");
        }
    }
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot start the OTLP exporter: {0}")]
    Build(String),
}

/// Read the `OTEL_*` settings of binary `service_name` and, if they ask for
/// it, start exporting spans. Call it once, before any span is made (and
/// outside an async runtime: the exporter's client makes its own).
pub fn init(service_name: &str) -> Result<Exporter, InitError> {
    let Some(export) = config::decide(|k| std::env::var(k).ok(), service_name)? else {
        return Ok(Exporter(None));
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let protocol = match export.protocol {
        Protocol::Protobuf => opentelemetry_otlp::Protocol::HttpBinary,
        Protocol::Json => opentelemetry_otlp::Protocol::HttpJson,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| InitError::Build(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(export.endpoint)
        .with_protocol(protocol)
        .build()
        .map_err(|e| InitError::Build(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(export.service_name)
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    crate::span::install(opentelemetry::global::tracer("pym"));
    Ok(Exporter(Some(provider)))
}
