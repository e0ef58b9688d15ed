//! Service layer: binding, validation, errors, panics, built-ins, request id.

mod http_common;

use axum::body::Body;
use axum::http::Request;
use http_common::*;
use pym_runtime::http::{Service, ServiceError};
use serde_json::json;

#[test]
fn binding_mismatch_lists_both_sides() {
    let err = Service::builder(config())
        .spec_str("api30.yaml", API30)
        .handler("signup", || async { "x" })
        .handler("sign_up_typo", || async { "x" })
        .build()
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, ServiceError::Binding(_)), "{msg}");
    assert!(msg.contains("operations without a handler"), "{msg}");
    assert!(msg.contains("get_item (GET /items/{id})"), "{msg}");
    assert!(msg.contains("me (GET /me)"), "{msg}");
    assert!(
        msg.contains("handlers without an operation: sign_up_typo"),
        "{msg}"
    );
    assert!(!msg.contains("signup ("), "bound op listed: {msg}");
}

#[test]
fn handler_bound_twice() {
    let err = builder()
        .handler("me", || async { "x" })
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("handlers bound twice: me"), "{err}");
}

#[test]
fn spec_errors_are_collected() {
    let spec = r#"
openapi: 3.0.0
info: {title: t, version: '1'}
paths:
  /a:
    get:
      responses: {'200': {description: ok}}
  /b/{id}:
    get:
      operationId: b
      responses: {'200': {description: ok}}
  /c:
    post:
      operationId: c
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Nope'}
      responses: {'200': {description: ok}}
  /ping:
    get:
      operationId: my_ping
      responses: {'200': {description: ok}}
"#;
    let err = Service::builder(config())
        .spec_str("bad.yaml", spec)
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("paths./a.get: no operationId"), "{err}");
    assert!(err.contains("path parameter 'id' is not declared"), "{err}");
    assert!(err.contains("paths./c.post.requestBody.schema"), "{err}");
}

#[test]
fn builtin_paths_are_reserved() {
    let spec = "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /ping:\n    get:\n      operationId: my_ping\n      responses: {'200': {description: ok}}\n";
    let err = Service::builder(config())
        .spec_str("s.yaml", spec)
        .handler("my_ping", || async { "x" })
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/ping, a pym built-in path"), "{err}");
}

#[test]
fn secured_ops_need_a_key() {
    let cfg =
        pym_runtime::config::Config::from_yaml("c.yaml", "jwt_secret_env: NOPE_SECRET\n", &|_| {
            None
        })
        .unwrap();
    let spec = "openapi: 3.0.0\ninfo: {title: t, version: '1'}\ncomponents: {securitySchemes: {bearer: {type: http, scheme: bearer}}}\npaths:\n  /me:\n    get:\n      operationId: me\n      security: [{bearer: []}]\n      responses: {'200': {description: ok}}\n";
    let err = Service::builder(cfg)
        .spec_str("s.yaml", spec)
        .handler("me", || async { "x" })
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("NOPE_SECRET"), "{err}");
}

#[tokio::test]
async fn valid_signup_passes() {
    let svc = service();
    let r = call(
        &svc,
        post_json(
            "/signup",
            r#"{"email":"a@example.com","name":"Ann","age":null}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["email"], "a@example.com");
}

#[tokio::test]
async fn body_validation_failures() {
    let svc = service();
    let cases = [
        (r#"{"name":"x"}"#, "email: is required"),
        (r#"{"email":"not-an-email"}"#, "email:"),
        (r#"{"email":42}"#, "email:"),
        (
            r#"{"email":"a@b.co","name":"012345678901234567890123"}"#,
            "name:",
        ),
        (r#"{"email":"a@b.co","age":-1}"#, "age:"),
        (r#"{"email":"a@b.co","zzz":1}"#, "unexpected properties zzz"),
        (
            r#"{"email":"a@b.co","address":{}}"#,
            "address.city: is required",
        ),
        (
            r#"{"email":"a@b.co","address":{"city":""}}"#,
            "address.city:",
        ),
        (r#"[1,2]"#, "body:"),
        (r#"{"email": "#, "body: not valid JSON"),
        ("", "body: a JSON body is required"),
    ];
    for (body, want) in cases {
        let r = call(&svc, post_json("/signup", body)).await;
        let v = r.error(400, "INVALID_PARAMETER");
        let d = v["error_description"].as_str().unwrap();
        assert!(
            d.starts_with(want) || d.contains(want),
            "body {body}: got {d}, want {want}"
        );
    }
}

#[tokio::test]
async fn body_wrong_content_type() {
    let svc = service();
    let req = Request::post("/signup")
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"email":"a@b.co"}"#))
        .unwrap();
    call(&svc, req).await.error(415, "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn body_too_large() {
    let svc = service();
    let big = format!(r#"{{"email":"a@b.co","name":"{}"}}"#, "x".repeat(10_000));
    call(&svc, post_json("/signup", &big))
        .await
        .error(413, "PAYLOAD_TOO_LARGE");
}

fn item(uri: &str, tenant: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(t) = tenant {
        b = b.header("x-tenant", t);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn parameter_validation() {
    let svc = service();
    let ok = call(
        &svc,
        item("/items/5?limit=10&tags=a&tags=b&flag=true", Some("t1")),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let cases = [
        ("/items/abc", Some("t1"), "id: must be an integer"),
        ("/items/0", Some("t1"), "id:"),
        ("/items/5?limit=500", Some("t1"), "limit:"),
        ("/items/5?limit=x", Some("t1"), "limit: must be an integer"),
        (
            "/items/5?limit=1&limit=2",
            Some("t1"),
            "limit: given more than once",
        ),
        ("/items/5?tags=c", Some("t1"), "tags.0:"),
        (
            "/items/5?flag=maybe",
            Some("t1"),
            "flag: must be true or false",
        ),
        (
            "/items/5",
            None,
            "x-tenant: the header parameter is required",
        ),
        ("/items/5", Some("zzz"), "x-tenant:"),
    ];
    for (uri, tenant, want) in cases {
        let r = call(&svc, item(uri, tenant)).await;
        let v = r.error(400, "INVALID_PARAMETER");
        let d = v["error_description"].as_str().unwrap();
        assert!(d.starts_with(want), "{uri}: got {d}, want {want}");
    }
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let svc = service();
    call(&svc, get("/nope")).await.error(404, "NOT_FOUND");
    call(&svc, get("/signup"))
        .await
        .error(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn panic_becomes_server_error() {
    let svc = service();
    let r = call(&svc, get("/boom")).await;
    let v = r.error(500, "SERVER_ERROR");
    assert!(
        !r.text.contains("kaboom"),
        "panic message leaked: {}",
        r.text
    );
    assert!(!r.text.contains("src/"), "location leaked: {}", r.text);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains(v["error_id"].as_str().unwrap())
    );
    // The server keeps serving.
    assert_eq!(call(&svc, get("/ping")).await.status, 200);
}

#[tokio::test]
async fn response_validation_in_debug() {
    let svc = service();
    call(&svc, get("/bad-response"))
        .await
        .error(500, "SERVER_ERROR");
}

#[tokio::test]
async fn custom_error_codes() {
    let svc = service();
    let v = call(&svc, get("/custom-error"))
        .await
        .error(409, "EMAIL_TAKEN");
    assert_eq!(v["error_description"], "that email is taken");
    assert_eq!(v["user_message"], "This email is already registered.");
}

#[tokio::test]
async fn builtins() {
    let svc = service();
    let r = call(&svc, get("/ping")).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    let v = call(&svc, get("/version")).await.json();
    assert_eq!(v["name"], "test");
    assert_eq!(v["version"], "9.9.9");
    assert_eq!(v["api_version"], "1.2.3");
    call(&svc, get("/auth/version"))
        .await
        .error(401, "AUTHORIZATION_HEADER_MISSING");
    let token = auth().mint("u-7", json!(null)).unwrap();
    let r = call(&svc, get_auth("/auth/version", &token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["user_id"], "u-7");
    let r = call(&svc, get("/openapi.yaml")).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("operationId: signup"));
    assert_eq!(r.headers["content-type"], "application/yaml");
    assert_eq!(call(&svc, get("/healthz")).await.status, 200);
    assert_eq!(call(&svc, get("/readyz")).await.status, 200);
    let m = call(&svc, get("/metrics")).await;
    assert_eq!(m.status, 200);
    assert!(m.text.contains("pym_http_requests_total"), "{}", m.text);
    assert!(m.text.contains(r#"operation="ping""#), "{}", m.text);
    assert!(
        m.text.contains("pym_http_request_duration_seconds"),
        "{}",
        m.text
    );
}

#[tokio::test]
async fn request_id_and_trace_reach_the_handler() {
    let svc = service();
    let token = auth().mint("u-1", json!({"role": "admin"})).unwrap();
    let req = Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .header("x-request-id", "req-abc-123")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    let r = call(&svc, req).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["x-request-id"], "req-abc-123");
    let v = r.json();
    assert_eq!(v["ctx_user_id"], "u-1");
    assert_eq!(v["claims"]["role"], "admin");
    assert_eq!(v["ctx_request_id"], "req-abc-123");
    assert_eq!(v["ctx_method"], "GET");
    assert_eq!(v["ctx_path"], "/me");
    assert_eq!(v["ctx_has_token"], true);
    let tp = v["ctx_traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );

    // Without an X-Request-Id, one is generated and returned.
    let r = call(&svc, get("/ping")).await;
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn optional_security() {
    let svc = service();
    let r = call(&svc, get("/maybe")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["user_id"], serde_json::Value::Null);
    let token = auth().mint("u-9", json!(null)).unwrap();
    let r = call(&svc, get_auth("/maybe", &token)).await;
    assert_eq!(r.json()["user_id"], "u-9");
    call(&svc, get_auth("/maybe", "garbage"))
        .await
        .error(401, "TOKEN_INVALID");
}

#[tokio::test]
async fn openapi_31_documents_work() {
    let svc = Service::builder(config())
        .spec_str("api31.yaml", API31)
        .handler("create_thing", || async {
            (axum::http::StatusCode::CREATED, "")
        })
        .build()
        .unwrap();
    let r = call(
        &svc,
        post_json("/things", r#"{"label":"a","note":null,"count":1}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = call(&svc, post_json("/things", r#"{"label":"a","count":0}"#)).await;
    assert!(
        r.error(400, "INVALID_PARAMETER")["error_description"]
            .as_str()
            .unwrap()
            .starts_with("count:")
    );
    let r = call(&svc, post_json("/things", r#"{"note":"x"}"#)).await;
    assert!(
        r.error(400, "INVALID_PARAMETER")["error_description"]
            .as_str()
            .unwrap()
            .starts_with("label: is required")
    );
}
