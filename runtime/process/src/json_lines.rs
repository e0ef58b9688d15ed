//! JSON log lines, written straight into the line buffer: one object per
//! event, `{"timestamp", "level", "fields": {...}, "target", "request_id",
//! "trace_id", "span": {...}}` (the layout of tracing-subscriber's JSON
//! format, innermost span only, and the caller's ids from
//! [`caller_fields`](crate::caller_fields)).
//!
//! tracing-subscriber's own JSON format parses every span's stored fields
//! back into a `serde_json::Value` for each event, and json-subscriber
//! builds a map per event; on a service's access line that was the largest
//! cost of a request. Here span fields are stored once, as a JSON fragment
//! (`"k":v,...`) by [`JsonFields`], and copied as they are into each line.

use crate::caller_fields;
use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format (see the module doc).
pub struct JsonLines;

/// Span fields as a JSON fragment: `"k":v` pairs separated by commas.
#[derive(Default)]
pub struct JsonFields;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        timestamp(&mut w, SystemTime::now())?;
        write!(w, "\",\"level\":\"{}\",\"fields\":{{", meta.level())?;
        let mut fields = Pairs::new(&mut w);
        event.record(&mut fields);
        fields.result?;
        w.write_str("},\"target\":")?;
        string(&mut w, meta.target())?;
        caller_fields::write_json(&mut w)?;
        if let Some(span) = ctx.lookup_current() {
            w.write_str(",\"span\":{\"name\":")?;
            string(&mut w, span.name())?;
            if let Some(f) = span.extensions().get::<FormattedFields<N>>()
                && !f.is_empty()
            {
                w.write_char(',')?;
                w.write_str(f)?;
            }
            w.write_char('}')?;
        }
        w.write_str("}\n")
    }
}

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut w: Writer<'w>, fields: R) -> fmt::Result {
        let mut pairs = Pairs::new(&mut w);
        fields.record(&mut pairs);
        pairs.result
    }

    fn add_fields(
        &self,
        current: &mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut pairs = Pairs::new(&mut current.fields);
        pairs.first = first;
        fields.record(&mut pairs);
        pairs.result
    }
}

/// Writes visited fields as `"name":value` pairs.
struct Pairs<'a> {
    w: &'a mut dyn Write,
    first: bool,
    result: fmt::Result,
}

impl<'a> Pairs<'a> {
    fn new(w: &'a mut dyn Write) -> Self {
        Pairs {
            w,
            first: true,
            result: Ok(()),
        }
    }

    /// Write `"name":` and then the value with `value`.
    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut dyn Write) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let comma = !std::mem::replace(&mut self.first, false);
        self.result = (|| {
            if comma {
                self.w.write_char(',')?;
            }
            string(self.w, field.name())?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for Pairs<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |w| string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // ryu's shortest form (`0.25`, `1e-7`) is valid JSON; JSON has no
        // NaN or infinity.
        self.pair(field, |w| {
            if value.is_finite() {
                w.write_str(ryu::Buffer::new().format_finite(value))
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.pair(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value}")?;
            w.write_char('"')
        });
    }
}

/// `now` in RFC 3339, UTC, to the microsecond (`2026-12-05T01:02:03.000004Z`).
/// The date and time of day are formatted once a second per thread; lines
/// within that second reuse them.
fn timestamp(w: &mut dyn Write, now: SystemTime) -> fmt::Result {
    thread_local! {
        /// The second last formatted, and its `YYYY-MM-DDTHH:MM:SS`.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            let ts = i64::try_from(secs)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            text.clear();
            write!(text, "{}", ts.strftime("%Y-%m-%dT%H:%M:%S"))?;
            *second = secs;
        }
        w.write_str(text)
    })?;
    write!(w, ".{:06}Z", since.subsec_micros())
}

/// `s` as a JSON string.
pub(crate) fn string(w: &mut dyn Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what is written through it for the inside of a JSON string.
struct Escaped<'a>(&'a mut dyn Write);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let plain = |b: u8| b >= b' ' && b != b'"' && b != b'\\';
        if s.bytes().all(plain) {
            return self.0.write_str(s);
        }
        let mut rest = s;
        while let Some(i) = rest.find(|c: char| c < ' ' || c == '"' || c == '\\') {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().expect("found at i");
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{:04x}", u32::from(c))?,
            }
            rest = &rest[i + 1..];
        }
        self.0.write_str(rest)
    }
}

/// What a [`capture`] subscriber wrote.
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(any(test, feature = "testing"))]
impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
impl Captured {
    /// The lines written so far, parsed (a line that is not JSON panics).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes)
            .expect("log lines are UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// For tests (feature `testing`): a subscriber writing pym's JSON lines,
/// every level, into memory, and the handle to read them.
#[cfg(any(test, feature = "testing"))]
pub fn capture() -> (impl Subscriber + Send + Sync, Captured) {
    let captured = Captured::default();
    let out = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || out.clone())
        .fmt_fields(JsonFields)
        .event_format(JsonLines)
        .finish();
    (subscriber, captured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The lines `f` logs, parsed.
    fn lines(f: impl FnOnce()) -> Vec<Value> {
        let (subscriber, captured) = capture();
        tracing::subscriber::with_default(subscriber, f);
        captured.lines()
    }

    #[test]
    fn an_event_in_a_span() {
        let got = lines(|| {
            let span = tracing::info_span!("request", request_id = "r-1", n = 3_u64);
            span.in_scope(|| {
                tracing::info!(
                    method = "GET",
                    status = 200_u16,
                    latency_ms = 0.25,
                    ok = true,
                    delta = -4_i64,
                    what = ?Some("x"),
                    "request done"
                );
            });
        });
        let line = &got[0];
        assert_eq!(
            line["fields"],
            json!({"message": "request done", "method": "GET", "status": 200,
                   "latency_ms": 0.25, "ok": true, "delta": -4, "what": "Some(\"x\")"})
        );
        assert_eq!(
            line["span"],
            json!({"name": "request", "request_id": "r-1", "n": 3})
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], module_path!());
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn outside_a_span_and_with_recorded_fields() {
        let got = lines(|| {
            tracing::warn!(x = f64::NAN, tiny = 1e-7, big = 1e300, "no span");
            let span = tracing::info_span!("task", id = tracing::field::Empty);
            span.record("id", "t-9");
            span.in_scope(|| tracing::info!("in"));
            let empty = tracing::info_span!("bare");
            empty.in_scope(|| tracing::info!("in bare"));
        });
        assert!(got[0].get("span").is_none());
        assert_eq!(got[0]["fields"]["x"], Value::Null);
        assert_eq!(got[0]["fields"]["tiny"], 1e-7);
        assert_eq!(got[0]["fields"]["big"], 1e300);
        assert_eq!(got[1]["span"], json!({"name": "task", "id": "t-9"}));
        assert_eq!(got[2]["span"], json!({"name": "bare"}));
    }

    #[test]
    fn timestamps() {
        use std::time::Duration;
        let at = |secs, micros| {
            let mut s = String::new();
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            timestamp(&mut s, t).unwrap();
            s
        };
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (1_796_432_523, 4, "2026-12-05T01:02:03.000004Z"),
            (1_796_432_523, 999_999, "2026-12-05T01:02:03.999999Z"),
            (1_796_432_524, 10, "2026-12-05T01:02:04.000010Z"),
            (951_782_400, 0, "2000-02-29T00:00:00.000000Z"),
        ];
        for (secs, micros, want) in cases {
            assert_eq!(at(secs, micros), want, "{secs} {micros}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        let cases = [
            "plain",
            "quote \" backslash \\",
            "lines\nand\r\ttabs",
            "control \u{1} \u{1f}",
            "unicode é 🚀",
            "",
        ];
        for s in cases {
            let got = lines(|| tracing::info!(s, debug = ?s, "{s}"));
            assert_eq!(got[0]["fields"]["s"], s, "{s:?}");
            assert_eq!(got[0]["fields"]["message"], s, "{s:?}");
            assert_eq!(got[0]["fields"]["debug"], format!("{s:?}"), "{s:?}");
        }
    }
}
