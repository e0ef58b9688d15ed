//! The metrics registry a process owns and passes to whatever records
//! metrics (the queue, the worker, the HTTP layer, the operator); it is
//! served at [`crate::contract::PATH_METRICS`] in the OpenMetrics format.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};
use std::fmt;
use std::sync::{Arc, Mutex};

/// A shared Prometheus registry. Cloning shares it.
#[derive(Clone, Default)]
pub struct Metrics(Arc<Mutex<Registry>>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Register a metric.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.lock().register(name, help, metric);
    }

    /// Everything registered, in the OpenMetrics text format
    /// ([`crate::contract::METRICS_CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.lock()).expect("writing to a String cannot fail");
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn registered_metrics_are_encoded_and_shared_by_clones() {
        let m = Metrics::default();
        let c = Counter::<u64>::default();
        m.clone().register("pym_x", "X", c.clone());
        c.inc();
        let text = m.encode();
        assert!(text.contains("pym_x_total 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
