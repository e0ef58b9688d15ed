//! The log setup of a pym process: events on stderr, filtered by an
//! environment variable (tracing's `EnvFilter` syntax, e.g.
//! `info,pym_broker=debug`), as text for humans or one JSON object per line;
//! panics become one error event.
//!
//! The service binaries read [`pym_core::contract::ENV_LOG`] and
//! [`pym_core::contract::ENV_LOG_FORMAT`]; the operator reads `RUST_LOG` and
//! its `--log-format` flag.

use crate::caller_fields::WithCaller;
use crate::json_lines::{JsonFields, JsonLines};
use crate::log_writer::LogWriter;
use std::fmt;
use std::io::IsTerminal;
use std::io::Stderr;
use std::str::FromStr;
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// How events are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (`pretty`, `text`).
    Text,
    /// One JSON object per line (`json`): the event's fields under
    /// `fields`, its innermost span under `span`.
    Json,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "pretty" | "text" => Ok(Format::Text),
            _ => Err(format!("unknown log format {s:?}: use json or pretty")),
        }
    }
}

impl Format {
    /// The format named by `value` (`json`, `pretty`, `text`); unset or
    /// unknown: text on a terminal, JSON otherwise.
    pub fn choose(value: Option<&str>, terminal: bool) -> Format {
        match value.map(str::parse) {
            Some(Ok(f)) => f,
            _ if terminal => Format::Text,
            _ => Format::Json,
        }
    }

    /// [`Format::choose`] with the environment variable `var` and whether
    /// stderr is a terminal.
    pub fn from_env(var: &str) -> Format {
        Format::choose(
            std::env::var(var).ok().as_deref(),
            std::io::stderr().is_terminal(),
        )
    }
}

/// The filter variable held an invalid filter; logging uses the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFilter {
    pub var: String,
    pub value: String,
    pub default: String,
}

impl fmt::Display for BadFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is not a valid log filter; using {:?}",
            self.var, self.value, self.default
        )
    }
}

impl std::error::Error for BadFilter {}

/// The filter of `value` (the variable's content), else `default`.
pub fn filter(var: &str, value: Option<&str>, default: &str) -> (EnvFilter, Option<BadFilter>) {
    match value {
        None => (EnvFilter::new(default), None),
        Some(v) => match EnvFilter::try_new(v) {
            Ok(f) => (f, None),
            Err(_) => (
                EnvFilter::new(default),
                Some(BadFilter {
                    var: var.to_string(),
                    value: v.to_string(),
                    default: default.to_string(),
                }),
            ),
        },
    }
}

/// Keeps the log writer running (see [`log_writer`](crate::log_writer)):
/// events are formatted by the thread that logs them and written to stderr
/// in batches by a thread of its own. Dropping the guard writes what is
/// buffered; hold it until the process ends (the binaries keep it in
/// `main`).
#[must_use = "dropping the guard stops the log writer: hold it for the life of the process"]
pub struct LogGuard {
    writer: &'static LogWriter<Stderr>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.writer.stop();
    }
}

/// The process's writer, for the panic hook to write out at once.
static WRITER: OnceLock<LogWriter<Stderr>> = OnceLock::new();

/// Install the process's logger: the filter in `filter_var` (unset:
/// `default_filter`), `format`, stderr through the batching writer (see
/// [`LogGuard`]); and log panics (see [`log_panics`]). With an invalid
/// filter the default is used and the error returned beside the guard,
/// for the caller to report (logging works by then). A second call leaves
/// the first logger in place.
pub fn init(
    filter_var: &str,
    default_filter: &str,
    format: Format,
) -> (LogGuard, Option<BadFilter>) {
    let value = std::env::var(filter_var).ok();
    let (filter, bad) = filter(filter_var, value.as_deref(), default_filter);
    let writer: &'static LogWriter<Stderr> =
        WRITER.get_or_init(|| LogWriter::new(std::io::stderr()));
    let _ = match format {
        Format::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .try_init(),
        Format::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .event_format(WithCaller(
                tracing_subscriber::fmt::format().with_ansi(std::io::stderr().is_terminal()),
            ))
            .try_init(),
    };
    log_panics();
    (LogGuard { writer }, bad)
}

/// Log panics as one error event (with the caller's ids, as every line of
/// a request or task) instead of raw text on stderr.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = pym_core::panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %msg, %location, "panic");
        if let Some(w) = WRITER.get() {
            w.flush_now();
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names() {
        let cases = [
            ("json", Ok(Format::Json)),
            ("JSON", Ok(Format::Json)),
            ("pretty", Ok(Format::Text)),
            ("text", Ok(Format::Text)),
            (" json ", Ok(Format::Json)),
            ("yaml", Err(())),
            ("", Err(())),
        ];
        for (name, want) in cases {
            assert_eq!(name.parse::<Format>().map_err(|_| ()), want, "{name:?}");
        }
    }

    #[test]
    fn format_choice() {
        // (value, stderr is a terminal, format)
        let cases = [
            (Some("json"), true, Format::Json),
            (Some("pretty"), false, Format::Text),
            (None, true, Format::Text),
            (None, false, Format::Json),
            (Some("nonsense"), true, Format::Text),
            (Some("nonsense"), false, Format::Json),
        ];
        for (value, terminal, want) in cases {
            assert_eq!(
                Format::choose(value, terminal),
                want,
                "{value:?} {terminal}"
            );
        }
    }

    #[test]
    fn filters() {
        // (value, default, the filter used, whether the value was bad)
        let cases = [
            (None, "info", "info", false),
            (Some("warn"), "info", "warn", false),
            (
                Some("info,pym_broker=debug"),
                "info",
                "pym_broker=debug,info",
                false,
            ),
            (Some("info,[nonsense"), "info", "info", true),
            (Some("=="), "warn", "warn", true),
        ];
        for (value, default, used, bad) in cases {
            let (f, err) = filter("PYM_LOG", value, default);
            assert_eq!(f.to_string(), used, "{value:?}");
            assert_eq!(err.is_some(), bad, "{value:?}");
            if let Some(e) = err {
                assert!(e.to_string().starts_with("PYM_LOG="), "{e}");
            }
        }
    }
}
