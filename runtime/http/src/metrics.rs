//! HTTP request metrics (count and latency by operation, method and status),
//! registered in the [`Metrics`] registry the service is given.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use pym_core::Metrics;
use pym_core::contract::metrics as names;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// operationId, a built-in's name, or `unmatched`.
    pub operation: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub operation: String,
    pub method: String,
    pub status: u16,
}

pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<LatencyLabels, Histogram>,
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
}

impl HttpMetrics {
    pub fn observe(&self, operation: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&LatencyLabels {
                operation: operation.to_owned(),
                method: method.to_owned(),
                status,
            })
            .observe(seconds);
    }
}
