//! OpenTelemetry spans of real `hello serve` + `hello worker` processes on
//! a real redis-server, received by an OTLP/HTTP collector inside this test
//! (axum + `opentelemetry-proto`, decoding protobuf and JSON):
//!
//! - request → `enqueue` → `run` in the caller's trace, each the child of
//!   the one before, and the task sees its `run` span as its traceparent;
//! - a `trace_link` task (`refresh_profile_async`) runs in a trace of its
//!   own, linked to its `enqueue` span;
//! - the task's call to another service (a fake greeter here) is a client
//!   span, the child of `run`, and the parent the called service is given;
//!   a call answered 500 and the run it failed are errors;
//! - probes make no span;
//! - `http/json` and `OTEL_SERVICE_NAME` are honoured, and the spans left
//!   in the batch are flushed when the process stops;
//! - `grpc` stops the binary with exit 2, naming the variable;
//! - a failed export is logged (the SDK's error, at ERROR).
//!
//! Needs `redis-server` on PATH (Debian package `redis-server`).

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{BIN, Procs, http, report_lines, spawn_hello, wait_for};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use pym_runtime::testing::{RedisServer, free_port};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "traces-secret-0123456789abcdefghijklmn";
/// The caller's trace of the signup.
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";
/// The caller's trace of the profile refresh.
const TRACE2: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// One span as received, with its service's name.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i32,
    links: Vec<(String, String)>,
    error: bool,
    attributes: Vec<KeyValue>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<Value> {
        let kv = self.attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(Value::from(s.clone())),
            Any::IntValue(i) => Some(Value::from(*i)),
            Any::BoolValue(b) => Some(Value::from(*b)),
            other => Some(Value::from(format!("{other:?}"))),
        }
    }

    /// Its traceparent, as the context of the code it covers carries it.
    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace, self.id)
    }
}

/// What the collector received: spans, and the content type of each post.
#[derive(Default)]
struct Received {
    spans: Vec<Got>,
    content_types: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

/// `POST /v1/traces`: decode protobuf or JSON as its content type says.
async fn receive(State(got): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    use prost::Message;
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let req = if ct.starts_with("application/json") {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
    } else {
        ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
    };
    let Ok(req) = req else {
        return StatusCode::BAD_REQUEST;
    };
    let mut got = got.lock().unwrap();
    got.content_types.push(ct);
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Any::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
            got.spans.push(Got {
                service: service.clone(),
                trace: hex(&s.trace_id),
                id: hex(&s.span_id),
                parent: hex(&s.parent_span_id),
                name: s.name,
                kind: s.kind,
                links: s
                    .links
                    .iter()
                    .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                    .collect(),
                error: s
                    .status
                    .is_some_and(|st| st.code == SpanStatus::Error as i32),
                attributes: s.attributes,
            });
        }
    }
    StatusCode::OK
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP collector on a free port, served by `rt`.
fn collector(rt: &tokio::runtime::Runtime) -> (u16, Shared) {
    let got = Shared::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(got.clone());
    (serve(rt, app), got)
}

/// Serve `app` on a free port with `rt`; the port.
fn serve(rt: &tokio::runtime::Runtime, app: axum::Router) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move { axum::serve(listener, app).await });
    port
}

/// The spans received so far named `name`.
fn named(got: &Shared, name: &str) -> Vec<Got> {
    let got = got.lock().unwrap();
    got.spans
        .iter()
        .filter(|s| s.name == name)
        .cloned()
        .collect()
}

/// Waits until exactly one span named `name` was received, and returns it.
fn one(got: &Shared, name: &str) -> Got {
    wait_for(name, Duration::from_secs(20), || {
        !named(got, name).is_empty()
    });
    let spans = named(got, name);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    spans[0].clone()
}

/// What the fake greeter was called with: (email, traceparent).
type Calls = Arc<Mutex<Vec<(String, String)>>>;

/// A greeter on a free port, served by `rt`: answers a greeting, or a 500
/// to an email starting with `fail`; keeps each call's traceparent.
fn fake_greeter(rt: &tokio::runtime::Runtime) -> (u16, Calls) {
    async fn greet(
        State(calls): State<Calls>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        let req: Value = serde_json::from_slice(&body).unwrap_or_default();
        let email = req["email"].as_str().unwrap_or("").to_string();
        let tp = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        calls.lock().unwrap().push((email.clone(), tp));
        if email.starts_with("fail") {
            let e = r#"{"status":500,"error":"SERVER_ERROR","error_description":"greeter broke"}"#;
            return (StatusCode::INTERNAL_SERVER_ERROR, e.into());
        }
        (StatusCode::CREATED, r#"{"text":"Welcome!"}"#.into())
    }
    let calls = Calls::default();
    let app = axum::Router::new()
        .route("/greetings", axum::routing::post(greet))
        .with_state(calls.clone());
    (serve(rt, app), calls)
}

/// `hello serve` and `hello worker` with `env`, once both are ready.
fn start(procs: &mut Procs, env: &[(&str, String)], dir: &Path, (api, worker): (u16, u16)) {
    procs
        .0
        .push(spawn_hello(&["worker"], env, &dir.join("worker.log")));
    procs
        .0
        .push(spawn_hello(&["serve"], env, &dir.join("api.log")));
    for (what, port) in [("API /readyz", api), ("worker /readyz", worker)] {
        wait_for(what, Duration::from_secs(20), || {
            http(port, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
        });
    }
}

fn token(user: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", user])
        .env("PYM_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success());
    format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim())
}

/// The report line of `task` (waiting for it).
fn reported(report: &Path, task: &str) -> Value {
    let mut line = None;
    wait_for(task, Duration::from_secs(20), || {
        line = report_lines(report).into_iter().find(|l| l["task"] == task);
        line.is_some()
    });
    line.unwrap()
}

#[test]
fn request_enqueue_and_run_spans_reach_an_otlp_collector() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (otlp, got) = collector(&rt);
    let (greeter, calls) = fake_greeter(&rt);
    let redis_server = RedisServer::start();
    let (api, worker) = (free_port(), free_port());
    let report = dir.join("report.jsonl");
    let env = vec![
        ("PYM_REDIS_URL", redis_server.url()),
        ("PYM_JWT_SECRET", SECRET.to_string()),
        ("PYM_PORT", api.to_string()),
        ("PYM_WORKER_PORT", worker.to_string()),
        ("PYM_LOG_FORMAT", "json".to_string()),
        ("HELLO_TASK_REPORT", report.display().to_string()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ("PYM_API_GREETER_URL", format!("http://127.0.0.1:{greeter}")),
    ];
    let mut procs = Procs(Vec::new());
    start(&mut procs, &env, dir, (api, worker));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            http(api, "GET", path, &[], "").unwrap().status,
            200,
            "{path}"
        );
    }

    // request → enqueue → run, in the caller's trace
    let caller = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let r = http(
        api,
        "POST",
        "/signup",
        &[
            ("content-type", "application/json"),
            ("traceparent", &caller),
        ],
        r#"{"email":"ann@example.com"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let request = one(&got, "POST signup");
    let enqueue = one(&got, "enqueue send_welcome_email_async");
    let run = one(&got, "run send_welcome_email_async");
    assert_eq!(
        (request.trace.as_str(), request.parent.as_str()),
        (TRACE, CALLER_SPAN)
    );
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(request.service, "hello");
    assert_eq!(request.attr("pym.operation"), Some("signup".into()));
    assert_eq!(request.attr("http.request.method"), Some("POST".into()));
    assert_eq!(request.attr("http.response.status_code"), Some(201.into()));
    assert!(!request.error);
    assert_eq!(
        (enqueue.trace.as_str(), &enqueue.parent),
        (TRACE, &request.id)
    );
    assert_eq!(enqueue.kind, SpanKind::Producer as i32);
    assert_eq!((run.trace.as_str(), &run.parent), (TRACE, &enqueue.id));
    assert_eq!(run.kind, SpanKind::Consumer as i32);
    assert_eq!(
        run.attr("pym.task"),
        Some("send_welcome_email_async".into())
    );
    assert_eq!(run.attr("pym.attempt"), Some(0.into()));
    assert!(run.links.is_empty() && !run.error, "{run:?}");
    let welcome = reported(&report, "send_welcome_email_async");
    assert_eq!(welcome["traceparent"], run.traceparent(), "{welcome}");
    // the task's call to greeter: a client span, the child of the run,
    // and greeter's parent is that span
    let call = one(&got, "POST /greetings");
    assert_eq!((call.trace.as_str(), &call.parent), (TRACE, &run.id));
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(call.attr("http.response.status_code"), Some(201.into()));
    assert_eq!(call.attr("pym.service"), Some("greeter".into()));
    assert_eq!(call.attr("url.template"), Some("/greetings".into()));
    assert!(!call.error, "{call:?}");
    let sent = calls.lock().unwrap().clone();
    assert_eq!(
        sent,
        [("ann@example.com".to_string(), call.traceparent())],
        "greeter's parent is the call's span"
    );

    // a call answered 500: the call and the run that failed are errors
    let failing = "0123456789abcdef0123456789abcdef";
    let r = http(
        api,
        "POST",
        "/signup",
        &[
            ("content-type", "application/json"),
            ("traceparent", &format!("00-{failing}-{CALLER_SPAN}-01")),
        ],
        r#"{"email":"fail@example.com"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let of_trace = |name: &str| {
        let mut spans = Vec::new();
        wait_for(name, Duration::from_secs(20), || {
            spans = named(&got, name)
                .into_iter()
                .filter(|s| s.trace == failing)
                .collect();
            !spans.is_empty()
        });
        spans[0].clone()
    };
    let (call, run) = (
        of_trace("POST /greetings"),
        of_trace("run send_welcome_email_async"),
    );
    assert_eq!(call.parent, run.id);
    assert!(call.error && run.error, "{call:?} {run:?}");
    assert_eq!(call.attr("http.response.status_code"), Some(500.into()));

    // a trace_link task: a trace of its own, linked to its enqueue
    let r = http(
        api,
        "POST",
        "/me/refresh",
        &[
            ("authorization", &token("user-7")),
            ("traceparent", &format!("00-{TRACE2}-{CALLER_SPAN}-01")),
        ],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let request = one(&got, "POST refresh_me");
    let enqueue = one(&got, "enqueue refresh_profile_async");
    let run = one(&got, "run refresh_profile_async");
    assert_eq!(
        (request.trace.as_str(), &enqueue.trace),
        (TRACE2, &request.trace)
    );
    assert_eq!(enqueue.parent, request.id);
    assert_ne!(run.trace, TRACE2);
    assert_eq!(run.parent, "", "the root of its own trace: {run:?}");
    assert_eq!(run.links, vec![(TRACE2.to_string(), enqueue.id.clone())]);
    let refresh = reported(&report, "refresh_profile_async");
    assert_eq!(refresh["traceparent"], run.traceparent(), "{refresh}");

    // probes and /metrics: no span
    let paths: Vec<Value> = got
        .lock()
        .unwrap()
        .spans
        .iter()
        .filter_map(|s| s.attr("url.path"))
        .collect();
    assert_eq!(paths, ["/signup", "/signup", "/me/refresh"], "{paths:?}");
    assert!(
        got.lock()
            .unwrap()
            .content_types
            .iter()
            .all(|c| c == "application/x-protobuf"),
        "the default protocol is http/protobuf"
    );
    drop(procs);

    // http/json, OTEL_SERVICE_NAME, and the batch flushed at exit: a
    // schedule too long to send anything before SIGTERM.
    let json_port = free_port();
    let mut env = env.clone();
    env.retain(|(k, _)| !["PYM_PORT", "OTEL_BSP_SCHEDULE_DELAY"].contains(k));
    env.push(("PYM_PORT", json_port.to_string()));
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "600000".to_string()));
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()));
    env.push(("OTEL_SERVICE_NAME", "hello-json".to_string()));
    let mut serve = spawn_hello(&["serve"], &env, &dir.join("json.log"));
    wait_for("the http/json API", Duration::from_secs(20), || {
        http(json_port, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    });
    let r = http(
        json_port,
        "GET",
        "/me",
        &[("authorization", &token("user-8"))],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_millis(300));
    assert!(named(&got, "GET me").is_empty(), "sent before the exit");
    let term = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = serve.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let me = one(&got, "GET me");
    assert_eq!(me.service, "hello-json");
    assert_eq!(me.kind, SpanKind::Server as i32);
    assert!(
        got.lock()
            .unwrap()
            .content_types
            .iter()
            .any(|c| c == "application/json")
    );
}

#[test]
fn an_unusable_setting_stops_the_binary_naming_it() {
    for cmd in ["serve", "worker"] {
        let out = Command::new(BIN)
            .arg(cmd)
            .env_remove("PYM_CONFIG")
            .env("PYM_JWT_SECRET", SECRET)
            .env("PYM_REDIS_URL", "redis://127.0.0.1:1")
            .env("PYM_LOG_FORMAT", "pretty")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\"")
                && stderr.contains("http/protobuf or http/json"),
            "{cmd}: {stderr}"
        );
    }
}

#[test]
fn a_failed_export_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let redis_server = RedisServer::start();
    let api = free_port();
    // Nothing listens there: every export fails.
    let nowhere = free_port();
    let env = vec![
        ("PYM_REDIS_URL", redis_server.url()),
        ("PYM_JWT_SECRET", SECRET.to_string()),
        ("PYM_PORT", api.to_string()),
        ("PYM_LOG_FORMAT", "json".to_string()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{nowhere}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    let log = dir.path().join("api.log");
    let _serve = Procs(vec![spawn_hello(&["serve"], &env, &log)]);
    wait_for("the API", Duration::from_secs(20), || {
        http(api, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    });
    let r = http(
        api,
        "GET",
        "/me",
        &[("authorization", &token("user-9"))],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let mut logged = String::new();
    wait_for(
        "the export error in the log",
        Duration::from_secs(20),
        || {
            logged = std::fs::read_to_string(&log).unwrap_or_default();
            logged.contains("ExportError")
        },
    );
    let line = logged.lines().find(|l| l.contains("ExportError")).unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "ERROR", "{line}");
}
