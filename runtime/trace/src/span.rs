//! One exported span, named by W3C `traceparent` strings: its parent comes
//! in as one, and [`Span::traceparent`] gives its own, which goes on in the
//! request's or task's context (and in task envelopes).
//!
//! When nothing exports (no [`crate::exporter`] installed, or none
//! configured), [`exporting`] is one atomic load and [`Span::start`]
//! builds nothing: callers check [`exporting`] first so they build no
//! name or attribute either.

use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer,
};
use opentelemetry::{Context, KeyValue};
use std::borrow::Cow;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static EXPORTING: AtomicBool = AtomicBool::new(false);
static TRACER: OnceLock<BoxedTracer> = OnceLock::new();

/// Whether spans are exported: false until an exporter was installed.
#[inline]
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Make spans with `tracer` from now on (the exporter calls this once).
pub fn install(tracer: BoxedTracer) {
    if TRACER.set(tracer).is_ok() {
        EXPORTING.store(true, Ordering::Release);
    }
}

/// What a span stands for, as OpenTelemetry names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An HTTP request served.
    Server,
    /// A message sent (a task enqueued).
    Producer,
    /// A message processed (a task run).
    Consumer,
    /// An HTTP call made to another service.
    Client,
}

/// A span being recorded (or, when nothing exports, nothing): ended when
/// dropped.
pub struct Span(Option<BoxedSpan>);

impl Span {
    /// No span.
    pub const fn none() -> Self {
        Span(None)
    }

    /// Start `name` of `kind` as the child of `parent` (a `traceparent`;
    /// none or malformed: the root of a new trace), with a link to the span
    /// of `link` (a `traceparent`), and `attributes`.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        parent: Option<&str>,
        link: Option<&str>,
        attributes: Vec<KeyValue>,
    ) -> Self {
        let Some(tracer) = TRACER.get().filter(|_| exporting()) else {
            return Span::none();
        };
        let cx = match parent.and_then(parse) {
            Some(sc) => Context::new().with_remote_span_context(sc),
            None => Context::new(),
        };
        let links = link
            .and_then(parse)
            .map(|sc| vec![Link::with_context(sc)])
            .unwrap_or_default();
        let builder = tracer
            .span_builder(name)
            .with_kind(match kind {
                Kind::Server => SpanKind::Server,
                Kind::Producer => SpanKind::Producer,
                Kind::Consumer => SpanKind::Consumer,
                Kind::Client => SpanKind::Client,
            })
            .with_attributes(attributes)
            .with_links(links);
        Span(Some(tracer.build_with_context(builder, &cx)))
    }

    /// Whether this is a span (not [`Span::none`]).
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// This span's `traceparent` (`None` for no span).
    pub fn traceparent(&self) -> Option<String> {
        let sc = opentelemetry::trace::Span::span_context(self.0.as_ref()?);
        sc.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            )
        })
    }

    /// Rename it (e.g. once the operation is known).
    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(s) = &mut self.0 {
            opentelemetry::trace::Span::update_name(s, name);
        }
    }

    /// Add or replace an attribute.
    pub fn set_attribute(&mut self, kv: KeyValue) {
        if let Some(s) = &mut self.0 {
            opentelemetry::trace::Span::set_attribute(s, kv);
        }
    }

    /// Mark it failed, with `message`.
    pub fn set_error(&mut self, message: impl Into<Cow<'static, str>>) {
        if let Some(s) = &mut self.0 {
            opentelemetry::trace::Span::set_status(s, Status::error(message));
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(s) = &mut self.0 {
            opentelemetry::trace::Span::end(s);
        }
    }
}

/// The span context of a version-00 `traceparent`
/// (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`), from a remote
/// parent; `None` when malformed or all-zero.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if !(hex(version, 2) && version != "ff" && hex(trace, 32) && hex(span, 16) && hex(flags, 2)) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let sc = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & 1),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_valid_traceparents_only() {
        let table = [
            (
                TP,
                Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true)),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                Some((
                    "4bf92f3577b34da6a3ce929d0e0e4736",
                    "00f067aa0ba902b7",
                    false,
                )),
            ),
            // a later version may carry more parts
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true)),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                None,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                None,
            ),
            ("garbage", None),
            ("", None),
        ];
        for (tp, want) in table {
            let got = parse(tp).map(|sc| {
                (
                    sc.trace_id().to_string(),
                    sc.span_id().to_string(),
                    sc.is_sampled(),
                )
            });
            let want = want.map(|(t, s, f)| (t.to_string(), s.to_string(), f));
            assert_eq!(got, want, "{tp}");
        }
    }

    #[test]
    fn no_exporter_no_span() {
        assert!(!exporting());
        let s = Span::start("x", Kind::Server, Some(TP), None, vec![]);
        assert!(!s.is_recording());
        assert_eq!(s.traceparent(), None);
    }
}
