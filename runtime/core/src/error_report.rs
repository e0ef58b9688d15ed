//! Crash reporting (pymacaron's `error_reporter`): one call of the
//! service's [`ErrorReporter`] for every 5xx answer, handler panic and
//! dead-lettered task, with the error's id, where it happened, and who
//! caused it (user id, request id). Tokens never reach it.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// Where a reported error happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorSource {
    /// An operation (or a built-in) answered a 5xx.
    Http { operation: String, status: u16 },
    /// A handler panicked; the caller got a 500.
    Panic { operation: String },
    /// A task was dead-lettered (`task` is `None` when its message could
    /// not be read); `reason` is the dead letter's (`retries_exhausted`,
    /// `fatal`, `bad_signature`, ...).
    DeadLetter {
        task: Option<String>,
        queue: String,
        reason: String,
        attempts: u32,
    },
}

/// One reported error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    pub source: ErrorSource,
    /// The `error_id` the caller got (HTTP), or the dead letter's id.
    pub error_id: String,
    /// The error code (`SERVER_ERROR`, ...), or the dead letter's reason.
    pub code: String,
    /// What went wrong, for developers (never sent to HTTP callers for a 5xx).
    pub message: String,
    pub user_id: Option<String>,
    pub request_id: Option<String>,
}

/// The hook a service sets (`App::error_reporter`). It is called inline,
/// on the thread that saw the error: keep it quick, and spawn anything
/// that does I/O (sending to Sentry, a webhook...). A panic in it is
/// caught and logged, never passed on.
#[derive(Clone)]
pub struct ErrorReporter(Arc<dyn Fn(&ErrorReport) + Send + Sync>);

impl ErrorReporter {
    pub fn new(f: impl Fn(&ErrorReport) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Call the hook with `report`.
    pub fn report(&self, report: &ErrorReport) {
        let f = &self.0;
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| f(report))) {
            tracing::warn!(
                error_id = %report.error_id,
                "the error reporter panicked: {}",
                crate::panic_message(&*panic)
            );
        }
    }
}

impl fmt::Debug for ErrorReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorReporter(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn report(id: &str) -> ErrorReport {
        ErrorReport {
            source: ErrorSource::Panic {
                operation: "op".into(),
            },
            error_id: id.into(),
            code: "SERVER_ERROR".into(),
            message: "boom".into(),
            user_id: None,
            request_id: None,
        }
    }

    #[test]
    fn the_hook_gets_each_report_and_its_panics_stay_inside() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let reporter = ErrorReporter::new(move |r| {
            s.lock().unwrap().push(r.error_id.clone());
            assert_ne!(r.error_id, "bad", "the hook itself fails");
        });
        reporter.report(&report("a"));
        reporter.report(&report("bad"));
        reporter.report(&report("b"));
        assert_eq!(*seen.lock().unwrap(), ["a", "bad", "b"]);
    }
}
