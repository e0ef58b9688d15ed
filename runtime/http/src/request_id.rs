//! Request ids, with tower-http's `request-id` layers.
//!
//! The rule: a caller's `x-request-id` is kept when valid (1 to 128 bytes of
//! `A-Z a-z 0-9 - _ . : / + =`); a missing or invalid one is replaced by a
//! new UUIDv7. Handlers see the id in the request header, the
//! [`RequestId`] extension and [`pym_core::context()`]; the response echoes
//! it; the request span (so every log line of the request) carries it.
//!
//! tower-http's [`SetRequestIdLayer`] keeps any incoming header as it is and
//! only calls [`MakeRequestId`] when there is none, so the one piece of hand
//! code left is [`drop_invalid`], run just before it: it removes an invalid
//! header so that a new id replaces it.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::MapRequestLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

/// Header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
const HEADER: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// The request-id layers, outermost first, as a [`ServiceBuilder`] to add
/// more layers to: each request gets a valid id, each response echoes it.
/// Put them outermost, so the layers inside see the id.
pub(crate) type Layers = ServiceBuilder<
    Stack<
        PropagateRequestIdLayer,
        Stack<
            SetRequestIdLayer<MakeUuidV7>,
            Stack<MapRequestLayer<fn(Request) -> Request>, Identity>,
        >,
    >,
>;

/// See [`Layers`].
pub(crate) fn layers() -> Layers {
    ServiceBuilder::new()
        .layer(MapRequestLayer::new(drop_invalid as fn(Request) -> Request))
        .layer(SetRequestIdLayer::new(HEADER, MakeUuidV7))
        .layer(PropagateRequestIdLayer::new(HEADER))
}

/// The id [`layer`] gave the request (a new one if it did not run).
pub(crate) fn of(req: &Request) -> String {
    req.extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .map_or_else(new_id, String::from)
}

/// A new request id: a UUIDv7, so ids sort by time.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether a caller-supplied request id is kept.
pub(crate) fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        })
}

/// Remove an invalid `x-request-id` (the first one decides, as it is the
/// one read), so [`SetRequestIdLayer`] replaces it with a new id.
fn drop_invalid(mut req: Request) -> Request {
    let invalid = req
        .headers()
        .get(&HEADER)
        .is_some_and(|v| !v.to_str().is_ok_and(valid));
    if invalid {
        req.headers_mut().remove(&HEADER);
    }
    req
}

/// Makes UUIDv7 request ids (tower-http's `MakeRequestUuid` makes v4).
#[derive(Clone, Copy)]
pub(crate) struct MakeUuidV7;

impl MakeRequestId for MakeUuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let mut buf = uuid::Uuid::encode_buffer();
        let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        HeaderValue::from_str(id).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[test]
    fn validity_rule() {
        let long_ok = "a".repeat(128);
        let too_long = "a".repeat(129);
        let table: &[(&str, bool)] = &[
            ("abc-123", true),
            ("req_1.2:3/4+5=6", true),
            ("0190f1e2-7c3a-7b1e-9d2f-3a4b5c6d7e8f", true),
            (&long_ok, true),
            ("", false),
            (&too_long, false),
            ("a b", false),
            ("a,b", false),
            ("a;b", false),
            ("é", false),
            ("a\tb", false),
            ("{id}", false),
        ];
        for (id, want) in table {
            assert_eq!(valid(id), *want, "{id:?}");
        }
    }

    /// The id the handler saw (its context's view: [`of`]) and the one
    /// the response carries.
    async fn ids(incoming: Option<&[u8]>) -> (String, String) {
        let router =
            layers().service(Router::new().route("/", get(|req: Request| async move { of(&req) })));
        let mut req = Request::get("/");
        if let Some(v) = incoming {
            req = req.header(REQUEST_ID_HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        let r = router
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let echoed = r.headers()[REQUEST_ID_HEADER].to_str().unwrap().to_string();
        let body = axum::body::to_bytes(r.into_body(), 1000).await.unwrap();
        (String::from_utf8(body.to_vec()).unwrap(), echoed)
    }

    fn is_v7(id: &str) -> bool {
        uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
    }

    #[tokio::test]
    async fn kept_or_replaced() {
        let (seen, echoed) = ids(Some(&b"req-abc-123"[..])).await;
        assert_eq!(
            (seen.as_str(), echoed.as_str()),
            ("req-abc-123", "req-abc-123")
        );
        for bad in [&b"a b"[..], b"", &[b'a'; 129], b"caf\xc3\xa9"] {
            let (seen, echoed) = ids(Some(bad)).await;
            assert!(is_v7(&seen), "{bad:?} -> {seen}");
            assert_eq!(seen, echoed);
        }
        let (seen, echoed) = ids(None).await;
        assert!(is_v7(&seen), "{seen}");
        assert_eq!(seen, echoed);
    }
}
