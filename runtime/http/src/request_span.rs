//! The OpenTelemetry span of a request: `<METHOD> <operationId>`, kind
//! server, the child of the caller's `traceparent` (none: a new trace).
//! Its `traceparent` is the request context's, so the tasks it spawns and
//! the calls it makes continue its trace. Probes and `/metrics` make none;
//! a 5xx answer marks it failed. Nothing is built when spans are off.

use axum::http::Method;
use pym_core::contract::{PATH_HEALTHZ, PATH_METRICS, PATH_READYZ};
use pym_trace::{KeyValue, Kind, Span};

/// Whether a request to `path` gets a span: not the probes nor `/metrics`
/// (they are not the service's work).
pub(crate) fn traced(path: &str) -> bool {
    ![PATH_HEALTHZ, PATH_READYZ, PATH_METRICS].contains(&path)
}

/// Start the span of a request (named by its method until the operation
/// is known), or none when spans are off or `path` is not [`traced`].
pub(crate) fn start(method: &Method, path: &str, incoming: Option<&str>) -> Span {
    if !pym_trace::exporting() || !traced(path) {
        return Span::none();
    }
    let attributes = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("url.path", path.to_owned()),
        KeyValue::new("url.scheme", "http"),
    ];
    Span::start(method.to_string(), Kind::Server, incoming, None, attributes)
}

/// End the span of a request answered with `status` by `operation`.
pub(crate) fn finish(mut span: Span, method: &Method, operation: &str, status: u16) {
    if !span.is_recording() {
        return;
    }
    span.set_name(format!("{method} {operation}"));
    span.set_attribute(KeyValue::new("pym.operation", operation.to_owned()));
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    if status >= 500 {
        span.set_attribute(KeyValue::new("error.type", status.to_string()));
        span.set_error(format!("answered {status}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_metrics_are_not_traced() {
        let table = [
            ("/healthz", false),
            ("/readyz", false),
            ("/metrics", false),
            ("/signup", true),
            ("/healthz/x", true),
            ("/", true),
        ];
        for (path, want) in table {
            assert_eq!(traced(path), want, "{path}");
        }
    }

    #[test]
    fn nothing_when_spans_are_off() {
        let span = start(&Method::GET, "/signup", None);
        assert!(!span.is_recording());
        finish(span, &Method::GET, "signup", 500);
    }
}
