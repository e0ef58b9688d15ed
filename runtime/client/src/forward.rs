//! The headers that carry the caller's context to a called service: the
//! bearer token, `X-Request-Id`, and a `traceparent` of the same trace
//! whose parent is this call. Pure: a context in, header values out.

use crate::credentials::Credentials;
use pym_core::Context;

/// The header carrying the request id, as pym-http reads it.
pub const REQUEST_ID: &str = "x-request-id";
/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// What a call sends of its caller's context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarded {
    /// `Bearer <token>`; never logged.
    pub authorization: Option<String>,
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
}

/// The headers of a call made in `ctx` (`None`: outside any request or
/// task). `span_id` names this call in the trace (8 random bytes).
pub fn forwarded(ctx: Option<&Context>, credentials: &Credentials, span_id: u64) -> Forwarded {
    let caller_token = ctx.and_then(|c| c.token.as_deref());
    Forwarded {
        authorization: credentials
            .token(caller_token)
            .map(|t| format!("Bearer {t}")),
        request_id: ctx.and_then(|c| c.request_id.clone()),
        traceparent: ctx
            .and_then(|c| c.traceparent.as_deref())
            .and_then(|tp| child_traceparent(tp, span_id)),
    }
}

/// `traceparent` with its parent id replaced by `span_id`: the same trace,
/// this call as the parent of what the called service does. `None` when
/// `traceparent` is not a valid version-00 value (then none is sent).
pub fn child_traceparent(traceparent: &str, span_id: u64) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && hex(flags, 2)
        && span_id != 0;
    valid.then(|| format!("00-{}-{span_id:016x}-{flags}", trace.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_child_of_the_same_trace() {
        let cases = [
            (
                TP,
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000ab-01"),
            ),
            (
                " 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-00 ",
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000ab-00"),
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                None,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                None,
            ),
            ("garbage", None),
        ];
        for (tp, want) in cases {
            assert_eq!(child_traceparent(tp, 0xab).as_deref(), want, "{tp}");
        }
        assert_eq!(child_traceparent(TP, 0), None, "a zero span id is invalid");
    }

    #[test]
    fn what_a_call_carries() {
        let ctx = Context {
            user_id: Some("u1".into()),
            token: Some("tok".into()),
            request_id: Some("req-1".into()),
            traceparent: Some(TP.into()),
            ..Default::default()
        };
        let got = forwarded(Some(&ctx), &Credentials::Forward, 1);
        assert_eq!(
            got,
            Forwarded {
                authorization: Some("Bearer tok".into()),
                request_id: Some("req-1".into()),
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-01".into()),
            }
        );
        assert_eq!(
            forwarded(None, &Credentials::Forward, 1),
            Forwarded::default(),
            "outside a request or task: nothing"
        );
        let svc = Credentials::ForwardOr("svc".into());
        assert_eq!(
            forwarded(None, &svc, 1).authorization.as_deref(),
            Some("Bearer svc")
        );
        assert_eq!(
            forwarded(Some(&ctx), &Credentials::None, 1).authorization,
            None
        );
    }
}
