//! The client `api!` generates, against a served pym service and a raw
//! server: typed calls, the caller's context forwarded (token, request id,
//! trace), errors read back as `ApiError`, retries only when safe.

mod http_common;

use axum::http::StatusCode;
use http_common::*;
use pym_runtime::client::ClientConfig;
use pym_runtime::http::{ApiError, Claims, Service};
use pym_runtime::{Context, context};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pym_runtime::api!("http_fixtures/echo.yaml");

struct EchoService;

impl EchoApi for EchoService {
    async fn echo(
        &self,
        claims: Option<Claims>,
        word: String,
        times: Option<i64>,
        x_tenant: Option<String>,
    ) -> Result<echo::Response, ApiError> {
        let ctx = context();
        Ok(echo::Response::Ok(Echo {
            word,
            times,
            tenant: x_tenant,
            user: claims.map(|c| c.user_id().to_string()),
            request_id: ctx.request_id.clone(),
            traceparent: ctx.traceparent.clone(),
        }))
    }

    async fn fail(
        &self,
        status: i64,
        _body: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<fail::Response, ApiError> {
        let status = StatusCode::from_u16(status as u16).unwrap();
        Err(ApiError::new(
            status,
            "FAILED_AS_ASKED",
            format!("failed with {status}"),
        ))
    }
}

/// A pym service on a free port; its base URL.
async fn serve(svc: Service) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(svc.serve(listener, std::future::pending()));
    url
}

/// A raw axum server (not pym) on a free port; its base URL.
async fn serve_raw(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

fn fast() -> ClientConfig {
    ClientConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5))
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_call_carries_the_caller_s_context() {
    let url = serve(
        bind(Service::builder(config()), EchoService)
            .build()
            .unwrap(),
    )
    .await;
    let client = EchoClient::new(&url).unwrap();
    let token = auth().encode(&claims(serde_json::json!({}))).unwrap();
    let caller = Arc::new(Context {
        user_id: Some("u-1".into()),
        token: Some(token),
        request_id: Some("req-42".into()),
        traceparent: Some(TP.into()),
        ..Default::default()
    });
    let seen = pym_runtime::context::scope(caller, async {
        client
            .echo("a b/c?".into(), Some(3), Some("acme".into()))
            .await
    })
    .await
    .unwrap();
    assert_eq!(
        seen.word, "a b/c?",
        "the path parameter is encoded and decoded"
    );
    assert_eq!(
        (seen.times, seen.tenant.as_deref()),
        (Some(3), Some("acme"))
    );
    assert_eq!(
        seen.user.as_deref(),
        Some("u-1"),
        "the caller's token went along"
    );
    assert_eq!(seen.request_id.as_deref(), Some("req-42"));
    let tp = seen.traceparent.unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && !tp.contains("00f067aa0ba902b7"),
        "same trace, this call as the parent: {tp}"
    );

    // Outside a request or task: no token, the far side's own request id.
    let seen = client.echo("x".into(), None, None).await.unwrap();
    assert_eq!((seen.user, seen.times, seen.tenant), (None, None, None));
    assert_ne!(seen.request_id.as_deref(), Some("req-42"));
    assert!(seen.request_id.is_some());
}

#[tokio::test]
async fn errors_come_back_as_the_far_side_s_api_error() {
    let url = serve(
        bind(Service::builder(config()), EchoService)
            .build()
            .unwrap(),
    )
    .await;
    let client = EchoClient::with_config(&url, fast()).unwrap();
    let e = client.fail(409, None).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (409, "FAILED_AS_ASKED")
    );
    assert_eq!(e.description, "failed with 409 Conflict");
    let id = e.error_id.clone().expect("the far side's error_id");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    // Sent on by this service, it keeps its id.
    assert_eq!(e.body().error_id, id);

    // The spec refuses the request on the far side: its 400 comes back.
    let e = client.echo("x".into(), Some(10), None).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (400, "INVALID_PARAMETER")
    );
    assert_eq!(e.description, "times: 10 is greater than the maximum of 9");

    // A 5xx's description stays on the far side; its status and code come back.
    let e = client.fail(503, None).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (503, "FAILED_AS_ASKED")
    );
    assert!(
        e.description.starts_with("internal error; quote error_id"),
        "{}",
        e.description
    );
}

/// A raw server answering `/echo/{w}` with 503 `fails` times, then 200;
/// and `/fail/{s}` with 503 always. Counts the requests it got.
async fn flaky(fails: usize) -> (String, Arc<AtomicUsize>) {
    use axum::routing::{get, post};
    let hits = Arc::new(AtomicUsize::new(0));
    let (h1, h2) = (hits.clone(), hits.clone());
    let router = axum::Router::new()
        .route(
            "/echo/{w}",
            get(move || {
                let n = h1.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < fails {
                        (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string())
                    } else {
                        (StatusCode::OK, r#"{"word":"w"}"#.to_string())
                    }
                }
            }),
        )
        .route(
            "/fail/{s}",
            post(move || {
                h2.fetch_add(1, Ordering::SeqCst);
                async { (StatusCode::SERVICE_UNAVAILABLE, "busy") }
            }),
        );
    (serve_raw(router).await, hits)
}

#[tokio::test]
async fn idempotent_calls_are_retried_and_posts_are_not() {
    let (url, hits) = flaky(2).await;
    let client = EchoClient::with_config(&url, fast()).unwrap();
    let seen = client.echo("w".into(), None, None).await.unwrap();
    assert_eq!(seen.word, "w");
    assert_eq!(hits.load(Ordering::SeqCst), 3, "two 503s, then the answer");

    let (url, hits) = flaky(10).await;
    let client = EchoClient::with_config(&url, fast().retries(2)).unwrap();
    let e = client.echo("w".into(), None, None).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (503, "SERVICE_UNAVAILABLE")
    );
    assert_eq!(
        e.description,
        "echo: GET /echo/w answered 503: busy (3 attempts)"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // A POST that reached the service is not sent twice.
    let (url, hits) = flaky(0).await;
    let client = EchoClient::with_config(&url, fast()).unwrap();
    let e = client
        .fail(500, Some(&Default::default()))
        .await
        .unwrap_err();
    assert_eq!(e.status.as_u16(), 503);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn no_service_and_no_answer_are_503_and_504() {
    // Nothing listens: no connection, so even a POST is retried.
    let port = pym_runtime::testing::free_port();
    let client = EchoClient::with_config(&format!("http://127.0.0.1:{port}"), fast()).unwrap();
    let e = client.fail(500, None).await.unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (503, "SERVICE_UNAVAILABLE")
    );
    assert!(
        e.description
            .starts_with("echo: POST /fail/500: cannot connect")
            && e.description.ends_with("(4 attempts)"),
        "{}",
        e.description
    );

    let slow = axum::Router::new().route(
        "/echo/{w}",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let url = serve_raw(slow).await;
    let cfg = fast().timeout(Duration::from_millis(200)).retries(1);
    let e = EchoClient::with_config(&url, cfg)
        .unwrap()
        .echo("w".into(), None, None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status.as_u16(), e.code.as_str()),
        (504, "GATEWAY_TIMEOUT")
    );
    assert!(e.description.ends_with("(2 attempts)"), "{}", e.description);
}

#[test]
fn base_urls_are_checked() {
    let cases = [
        ("ftp://x", "scheme 'ftp' is not http or https"),
        ("http://x/?a=1", "a base URL has no query or fragment"),
        ("not a url", "relative URL without a base"),
    ];
    for (url, why) in cases {
        let e = EchoClient::new(url).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains("the API echo"), "{url}: {e}");
    }
    let e = EchoClient::from_env(ClientConfig::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "the API echo: no base URL: set PYM_API_ECHO_URL to its base URL, e.g. http://echo:8080"
    );
}
