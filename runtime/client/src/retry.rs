//! Which failed attempts are tried again, and after how long. Pure.

use reqwest::Method;
use std::time::Duration;

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: nothing reached the service.
    Connect,
    /// No complete answer in time.
    Timeout,
    /// The connection broke, or the answer could not be read.
    Transport,
    /// The service answered this status, with its `Retry-After` if any.
    Status(u16, Option<Duration>),
}

/// Methods that may be sent twice with the effect of once (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// Whether `failure` of a `method` call may be retried: when the service
/// cannot have acted on it (no connection, `429`), or when acting twice is
/// harmless (an idempotent method, on a timeout, a broken connection,
/// `502`, `503` or `504`).
pub fn retryable(method: &Method, failure: Failure) -> bool {
    match failure {
        Failure::Connect | Failure::Status(429, _) => true,
        Failure::Timeout | Failure::Transport | Failure::Status(502..=504, _) => {
            is_idempotent(method)
        }
        Failure::Status(..) => false,
    }
}

/// The delay before the next attempt: the service's `Retry-After` when it
/// sent one (capped at `max`), else the backoff's.
pub fn delay(failure: Failure, backoff: Duration, max: Duration) -> Duration {
    match failure {
        Failure::Status(_, Some(after)) => after.min(max),
        _ => backoff,
    }
}

/// A `Retry-After` in seconds (the HTTP-date form is not read: the
/// backoff applies instead).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        let (get, post, put) = (Method::GET, Method::POST, Method::PUT);
        let cases = [
            (&post, Failure::Connect, true),
            (&post, Failure::Status(429, None), true),
            (&post, Failure::Timeout, false),
            (&post, Failure::Transport, false),
            (&post, Failure::Status(503, None), false),
            (&get, Failure::Timeout, true),
            (&get, Failure::Transport, true),
            (&get, Failure::Status(502, None), true),
            (&put, Failure::Status(503, None), true),
            (&get, Failure::Status(504, None), true),
            (&get, Failure::Status(500, None), false),
            (&get, Failure::Status(404, None), false),
            (&Method::PATCH, Failure::Status(503, None), false),
        ];
        for (method, failure, want) in cases {
            assert_eq!(retryable(method, failure), want, "{method} {failure:?}");
        }
    }

    #[test]
    fn retry_after_is_followed_within_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(retry_after(Some(" 2 ")), Some(s(2)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
        assert_eq!(delay(Failure::Status(429, Some(s(2))), s(1), s(5)), s(2));
        assert_eq!(delay(Failure::Status(503, Some(s(60))), s(1), s(5)), s(5));
        assert_eq!(delay(Failure::Connect, s(1), s(5)), s(1));
    }
}
