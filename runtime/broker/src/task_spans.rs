//! The OpenTelemetry spans of a task: `enqueue <task>` (kind producer, the
//! child of the current request or task, its `traceparent` the one the
//! envelope carries) and, in the worker, `run <task>` (kind consumer, the
//! child of that `enqueue`, one per attempt: retries are siblings). A task
//! declared `#[asynctask(trace_link)]` runs instead as the root of a trace
//! of its own with a link to `enqueue`: one run that may answer many
//! requests does not belong to one of them. The run's `traceparent` is the
//! task's context's, so its calls and the tasks it spawns continue it.
//! Nothing is built when spans are off.

use crate::envelope::Envelope;
use pym_trace::{KeyValue, Kind, Span};

/// Messaging attributes of `env`'s task, `operation` `send` or `process`.
fn attributes(env: &Envelope, operation: &'static str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", "redis"),
        KeyValue::new("messaging.operation.type", operation),
        KeyValue::new("messaging.destination.name", env.queue.clone()),
        KeyValue::new("messaging.message.id", env.id.to_string()),
        KeyValue::new("pym.task", env.task.clone()),
    ]
}

/// Start the `enqueue` span of `env`, the child of the context it carries,
/// and put the span's `traceparent` in that context in its place. None
/// (and `env` unchanged) when spans are off.
pub fn enqueue(env: &mut Envelope) -> Span {
    if !pym_trace::exporting() {
        return Span::none();
    }
    let span = Span::start(
        format!("enqueue {}", env.task),
        Kind::Producer,
        env.ctx.traceparent.as_deref(),
        None,
        attributes(env, "send"),
    );
    if let Some(tp) = span.traceparent() {
        env.ctx.traceparent = Some(tp);
    }
    span
}

/// End the `enqueue` span, failed with `error` if the enqueue failed.
pub fn enqueued<E: std::fmt::Display>(mut span: Span, outcome: Result<(), &E>) {
    if let Err(e) = outcome {
        span.set_error(e.to_string());
    }
}

/// Start the `run` span of this attempt of `env`: the child of its
/// `enqueue` span or, with `link`, a new trace linked to it. Returns the
/// span and the `traceparent` the task's context carries while it runs
/// (`None`: keep the envelope's, spans are off).
#[cfg(feature = "worker")]
pub(crate) fn run(env: &Envelope, link: bool) -> (Span, Option<String>) {
    if !pym_trace::exporting() {
        return (Span::none(), None);
    }
    let enqueue = env.ctx.traceparent.as_deref();
    let (parent, link) = if link {
        (None, enqueue)
    } else {
        (enqueue, None)
    };
    let mut attributes = attributes(env, "process");
    attributes.push(KeyValue::new("pym.attempt", i64::from(env.attempt)));
    let span = Span::start(
        format!("run {}", env.task),
        Kind::Consumer,
        parent,
        link,
        attributes,
    );
    let tp = span.traceparent();
    (span, tp)
}

/// End the `run` span of an attempt, failed with the error if it failed.
#[cfg(feature = "worker")]
pub(crate) fn ran(mut span: Span, outcome: Result<(), &str>) {
    if let Err(e) = outcome {
        span.set_error(e.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pym_core::{Context, Priority};
    use serde_json::value::RawValue;

    #[test]
    fn spans_off_leave_the_envelope_as_it_is() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = Context {
            traceparent: Some(tp.into()),
            ..Context::default()
        };
        let args = RawValue::from_string("null".into()).unwrap();
        let mut env = Envelope::new("t", "default", Priority::Normal, args, ctx);
        let span = enqueue(&mut env);
        assert!(!span.is_recording());
        assert_eq!(env.ctx.traceparent.as_deref(), Some(tp));
        enqueued::<String>(span, Ok(()));
    }
}
