//! Issue #14 items 7 and 8 on a real service: validation errors never echo
//! a large value or a secret (response and log), and a malformed
//! `security` stops the service from being built.

mod http_common;

use axum::Json;
use http_common::{SECRET, builder, config};
use pym_runtime::config::Config;
use pym_runtime::http::{Service, ServiceError};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SPEC: &str = r#"
openapi: 3.1.0
info: {title: secrets, version: '1'}
components:
  schemas:
    Password: {type: string, format: password, minLength: 12}
    Signup:
      type: object
      required: [email, password]
      properties:
        email: {type: string, format: email}
        password: {$ref: '#/components/schemas/Password'}
        pin: {type: string, writeOnly: true, pattern: '^[0-9]{6}$'}
        profile:
          type: object
          properties:
            bio: {type: string, maxLength: 200}
paths:
  /signup:
    post:
      operationId: signup
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Signup'}
      responses: {'200': {description: ok}}
"#;

/// A service for [`SPEC`] taking bodies up to 4 MiB.
fn service() -> Service {
    let yaml = "name: secrets\nversion: 1.0.0\njwt_secret_env: TEST_SECRET\nbody_limit: 4194304\n";
    let cfg = Config::from_yaml("c.yaml", yaml, &|k| {
        (k == "TEST_SECRET").then(|| SECRET.to_string())
    })
    .unwrap();
    Service::builder(cfg)
        .spec_str("secrets.yaml", SPEC)
        .handler("signup", || async { Json(json!({})) })
        .build()
        .unwrap()
}

/// The events and span fields logged while it was the default subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut Fields(&mut self.0.lock().unwrap()));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut log = self.0.lock().unwrap();
        event.record(&mut Fields(&mut log));
        log.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// POST `body` to `/signup` over TCP; the status and the response body.
async fn post(addr: std::net::SocketAddr, body: &[u8]) -> (u16, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /signup HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

#[tokio::test]
async fn errors_echo_no_large_value_and_no_secret() {
    let log = Capture::default();
    let _guard = tracing::subscriber::set_default(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service().serve(listener, async {
        let _ = stopped.await;
    }));

    // A 2 MB string where an object is expected, and a 2 MB array as the body.
    let big = "a".repeat(2 * 1024 * 1024);
    let wrong_field =
        json!({"email": "a@b.co", "password": "correct horse battery", "profile": big});
    let wrong_body = Value::Array(vec![json!(1234567); 256 * 1024]);
    for (body, field) in [(&wrong_field, "profile: "), (&wrong_body, "body: ")] {
        let bytes = serde_json::to_vec(body).unwrap();
        assert!(bytes.len() >= 2 * 1024 * 1024);
        let (status, text) = post(addr, &bytes).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.len() < 2048, "{} bytes: {}", text.len(), &text[..300]);
        let v: Value = serde_json::from_str(&text).unwrap();
        let d = v["error_description"].as_str().unwrap();
        assert!(d.starts_with(field), "{d}");
        assert!(d.contains("is not of type"), "{d}");
    }

    // A short password, a wrong pin: the rule and the field, not the value.
    let cases = [
        (
            json!({"email": "a@b.co", "password": "hunter2"}),
            "hunter2",
            "password: <hidden> is shorter than 12 characters",
        ),
        (
            json!({"email": "a@b.co", "password": "correct horse battery", "pin": "12ab56"}),
            "12ab56",
            "pin: <hidden> does not match",
        ),
    ];
    for (body, secret, want) in cases {
        let (status, text) = post(addr, &serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(status, 400, "{text}");
        assert!(!text.contains(secret), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let d = v["error_description"].as_str().unwrap();
        assert!(d.starts_with(want), "{d}");
    }

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let log = log.0.lock().unwrap().clone();
    assert!(
        log.contains("<hidden> is shorter than 12 characters"),
        "{log}"
    );
    for secret in ["hunter2", "12ab56", "aaaaaaaaaa".repeat(20).as_str()] {
        assert!(
            !log.contains(secret),
            "{secret} logged:\n{}",
            &log[..log.len().min(3000)]
        );
    }
    assert!(log.lines().all(|l| l.len() < 4096), "a long log line");
}

#[test]
fn null_security_on_an_operation_stops_the_build() {
    let spec = http_common::API30.replacen("security: [{bearer: []}]", "security: ~", 1);
    assert_ne!(
        spec,
        http_common::API30,
        "the fixture has a secured operation"
    );
    let err = builder()
        .spec_str("api30.yaml", &spec)
        .build()
        .err()
        .expect("a spec error");
    let msg = err.to_string();
    assert!(matches!(err, ServiceError::Spec(_)), "{msg}");
    assert!(
        msg.contains("paths./me.get (operationId 'me'): 'security' is null; expected a list of security requirements"),
        "{msg}"
    );
}

#[test]
fn unknown_security_scheme_stops_the_build() {
    let spec = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /me:\n    get:\n      operationId: me\n      security: [{bearer: []}]\n      responses: {'200': {description: ok}}\n";
    let err = Service::builder(config())
        .spec_str("s.yaml", spec)
        .handler("me", || async { "x" })
        .build()
        .err()
        .expect("a spec error")
        .to_string();
    assert!(
        err.contains(
            "names the scheme 'bearer', which is not defined in components.securitySchemes"
        ),
        "{err}"
    );
}
