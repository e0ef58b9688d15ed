//! The error reporter of the HTTP side: called once per 5xx answer and per
//! handler panic, with the error id the caller got, the operation, the
//! user and the request id; never for a 4xx.

mod http_common;

use axum::body::Body;
use axum::http::Request;
use http_common::*;
use pym_runtime::http::{ApiError, Claims, Service};
use pym_runtime::{ErrorReport, ErrorReporter, ErrorSource};
use std::sync::{Arc, Mutex};

const SPEC: &str = r#"
openapi: 3.1.0
info: {title: reported, version: '1'}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
paths:
  /down:
    get:
      operationId: down
      security: [{bearer: []}]
      responses: {'200': {description: never}}
  /panics:
    get:
      operationId: panics
      security: [{}, {bearer: []}]
      responses: {'200': {description: never}}
  /refused:
    get:
      operationId: refused
      responses: {'200': {description: never}}
"#;

async fn down(_: Claims) -> Result<(), ApiError> {
    Err(ApiError::service_unavailable("the database is down"))
}
async fn panics() -> Result<(), ApiError> {
    panic!("index out of bounds")
}
async fn refused() -> Result<(), ApiError> {
    Err(ApiError::bad_request("not like this"))
}

fn service() -> (Service, Arc<Mutex<Vec<ErrorReport>>>) {
    let reports: Arc<Mutex<Vec<ErrorReport>>> = Arc::default();
    let r = reports.clone();
    let svc = Service::builder(config())
        .spec_str("reported.yaml", SPEC)
        .handler("down", down)
        .handler("panics", panics)
        .handler("refused", refused)
        .error_reporter(ErrorReporter::new(move |e| {
            r.lock().unwrap().push(e.clone())
        }))
        .build()
        .unwrap();
    (svc, reports)
}

fn request(uri: &str, token: Option<&str>, request_id: &str) -> Request<Body> {
    let mut r = Request::get(uri).header("x-request-id", request_id);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn five_hundreds_and_panics_are_reported_once_with_their_caller() {
    let (svc, reports) = service();
    let token = auth().encode(&claims(serde_json::json!({}))).unwrap();

    let r = call(&svc, request("/down", Some(&token), "rq-down")).await;
    let down = r.error(503, "SERVICE_UNAVAILABLE");
    let r = call(&svc, request("/panics", None, "rq-panic")).await;
    let panicked = r.error(500, "SERVER_ERROR");
    let r = call(&svc, request("/refused", None, "rq-refused")).await;
    r.error(400, "BAD_REQUEST");

    let reports = reports.lock().unwrap().clone();
    assert_eq!(
        reports,
        [
            ErrorReport {
                source: ErrorSource::Http {
                    operation: "down".into(),
                    status: 503,
                },
                error_id: down["error_id"].as_str().unwrap().into(),
                code: "SERVICE_UNAVAILABLE".into(),
                message: "the database is down".into(),
                user_id: Some("u-1".into()),
                request_id: Some("rq-down".into()),
            },
            ErrorReport {
                source: ErrorSource::Panic {
                    operation: "panics".into(),
                },
                error_id: panicked["error_id"].as_str().unwrap().into(),
                code: "SERVER_ERROR".into(),
                message: "handler panicked: index out of bounds".into(),
                user_id: None,
                request_id: Some("rq-panic".into()),
            },
        ],
        "the 400 is not reported"
    );
}
