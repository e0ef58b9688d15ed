//! The caller on every log line: the request id and trace id of the
//! request or task being served, read from pym's context
//! ([`pym_core::context::with_current`]) when the line is written.
//!
//! A request used to open a tracing span only to carry these two ids into
//! its lines; creating, entering and closing it on every request cost
//! more than the access line. The context is set for the request anyway
//! (and restored in the worker for each task), so the ids come from there:
//! a request's lines and the lines of the tasks it spawned carry the same
//! `request_id` and `trace_id`.
//!
//! JSON lines get top-level `"request_id"` and `"trace_id"` keys
//! ([`write_json`]); text lines end with `request_id=… trace_id=…`
//! ([`WithCaller`]).

use crate::json_lines::string;
use pym_core::context::{Context, with_current};
use std::fmt::{self, Write};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The caller's ids, as `(name, value)` pairs, present ones only.
fn ids(c: &Context) -> [(&'static str, Option<&str>); 2] {
    [
        ("request_id", c.request_id.as_deref()),
        ("trace_id", c.trace_id()),
    ]
}

/// `,"request_id":"…","trace_id":"…"` for the current context (nothing
/// outside a request or task).
pub(crate) fn write_json(w: &mut dyn Write) -> fmt::Result {
    with_current(|c| {
        for (name, value) in c.map(ids).into_iter().flatten() {
            if let Some(v) = value {
                w.write_char(',')?;
                string(w, name)?;
                w.write_char(':')?;
                string(w, v)?;
            }
        }
        Ok(())
    })
}

/// A text event format followed by the caller's ids: `F`'s line, then
/// ` request_id=… trace_id=…` before its newline.
pub struct WithCaller<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithCaller<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        w.write_str(line)?;
        with_current(|c| {
            for (name, value) in c.map(ids).into_iter().flatten() {
                if let Some(v) = value {
                    write!(w, " {name}={v}")?;
                }
            }
            Ok::<_, fmt::Error>(())
        })?;
        w.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pym_core::context::scope;
    use std::sync::Arc;

    fn caller(request_id: Option<&str>, traceparent: Option<&str>) -> Arc<Context> {
        Arc::new(Context {
            request_id: request_id.map(String::from),
            traceparent: traceparent.map(String::from),
            ..Context::default()
        })
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[tokio::test]
    async fn json_ids_of_the_current_context() {
        let json = || {
            let mut s = String::new();
            write_json(&mut s).unwrap();
            s
        };
        assert_eq!(json(), "", "outside a request or task");
        let cases = [
            (
                caller(Some("r-1"), Some(TP)),
                r#","request_id":"r-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736""#,
            ),
            (caller(Some("a\"b"), None), r#","request_id":"a\"b""#),
            (caller(None, None), ""),
        ];
        for (ctx, want) in cases {
            assert_eq!(scope(ctx, async { json() }).await, want);
        }
    }

    #[tokio::test]
    async fn text_lines_end_with_the_ids() {
        use tracing_subscriber::fmt::MakeWriter;
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buf {
            type Writer = Buf;
            fn make_writer(&'a self) -> Buf {
                self.clone()
            }
        }
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .event_format(WithCaller(
                tracing_subscriber::fmt::format().with_ansi(false),
            ))
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        tracing::info!("outside");
        scope(caller(Some("r-2"), Some(TP)), async {
            tracing::info!(n = 1, "inside");
        })
        .await;
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("outside"), "{text}");
        assert!(
            lines[1]
                .ends_with("inside n=1 request_id=r-2 trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
            "{text}"
        );
    }
}
