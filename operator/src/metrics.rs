//! Prometheus metrics of the operator process (`/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub namespace: String,
    pub name: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    /// Where they are registered (served by `pym_process::Probes`).
    pub registry: pym_core::Metrics,
    pub reconciles: Counter,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub leader: Gauge,
    /// Per-PymService queue depth; fed by the autoscaler (issue #7).
    pub queue_depth: Family<ServiceLabels, Gauge>,
    /// Per-PymService worker replicas the autoscaler recommends.
    pub workers_desired: Family<ServiceLabels, Gauge>,
    /// Per-PymService worker Deployment `spec.replicas`.
    pub workers_current: Family<ServiceLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = pym_core::Metrics::default();
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let leader = Gauge::default();
        let queue_depth = Family::<ServiceLabels, Gauge>::default();
        let workers_desired = Family::<ServiceLabels, Gauge>::default();
        let workers_current = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "pym_operator_reconcile",
            "Reconciles started",
            reconciles.clone(),
        );
        registry.register(
            "pym_operator_reconcile_errors",
            "Reconciles that failed, by error kind",
            errors.clone(),
        );
        registry.register(
            "pym_operator_reconcile_duration_seconds",
            "Duration of one reconcile",
            duration.clone(),
        );
        registry.register(
            "pym_operator_leader",
            "1 while this process holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "pym_operator_queue_depth",
            "Tasks ready + in flight + due per PymService",
            queue_depth.clone(),
        );
        registry.register(
            "pym_operator_workers_desired",
            "Worker replicas the autoscaler recommends per PymService",
            workers_desired.clone(),
        );
        registry.register(
            "pym_operator_workers_current",
            "Worker Deployment spec.replicas per PymService",
            workers_current.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            leader,
            queue_depth,
            workers_desired,
            workers_current,
        }
    }
}

impl Metrics {
    /// Text exposition format.
    pub fn encode(&self) -> String {
        self.registry.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_named_metrics() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.errors
            .get_or_create(&ErrorLabels {
                error: "api".into(),
            })
            .inc();
        let text = m.encode();
        assert!(text.contains("pym_operator_reconcile_total 1"), "{text}");
        assert!(text.contains("pym_operator_reconcile_errors_total{error=\"api\"} 1"));
        assert!(text.contains("pym_operator_reconcile_duration_seconds_bucket"));
        assert!(text.contains("pym_operator_leader 0"));
    }
}
