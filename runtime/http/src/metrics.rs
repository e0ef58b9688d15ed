//! HTTP request metrics (count and latency by operation, method and status),
//! registered in the [`Metrics`] registry the service is given.
//!
//! Recording allocates nothing: the operation label is the shared name the
//! response carries ([`OperationName`](crate::OperationName)) and the
//! method label a static string.

use axum::http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use pym_core::Metrics;
use pym_core::contract::metrics as names;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// operationId, a built-in's name, or `unmatched`.
    pub operation: Label,
    /// The method, or `other` for a method HTTP does not define (so a
    /// client cannot grow the label set at will).
    pub method: &'static str,
    pub status: u16,
}

/// A label value shared, not copied, by every request that carries it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(pub Arc<str>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.0.as_ref().encode(encoder)
    }
}

/// The method's label.
pub fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, label)| label)
}

pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RequestLabels, Histogram>,
}

impl HttpMetrics {
    /// Request metrics registered in `registry`.
    pub fn registered(registry: &Metrics) -> Self {
        let m = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
        };
        registry.register(
            names::HTTP_REQUESTS,
            "HTTP requests by operation, method and status",
            m.requests.clone(),
        );
        registry.register(
            names::HTTP_REQUEST_DURATION_SECONDS,
            "HTTP request latency by operation, method and status",
            m.duration.clone(),
        );
        m
    }

    pub fn observe(&self, labels: &RequestLabels, seconds: f64) {
        self.requests.get_or_create(labels).inc();
        self.duration.get_or_create(labels).observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels() {
        let cases = [
            (Method::GET, "GET"),
            (Method::DELETE, "DELETE"),
            (Method::from_bytes(b"BREW").unwrap(), "other"),
        ];
        for (method, want) in cases {
            assert_eq!(method_label(&method), want, "{method}");
        }
    }

    #[test]
    fn one_series_per_operation_method_status() {
        let registry = Metrics::default();
        let m = HttpMetrics::registered(&registry);
        let labels = |op: &str, status| RequestLabels {
            operation: Label(Arc::from(op)),
            method: "GET",
            status,
        };
        m.observe(&labels("ping", 200), 0.001);
        m.observe(&labels("ping", 200), 0.002);
        m.observe(&labels("me", 401), 0.001);
        let text = registry.encode();
        assert!(
            text.contains(
                r#"pym_http_requests_total{operation="ping",method="GET",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"pym_http_requests_total{operation="me",method="GET",status="401"} 1"#),
            "{text}"
        );
    }
}
