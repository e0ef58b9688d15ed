//! Helpers shared by the runtime's HTTP tests.
#![allow(dead_code)]

use axum::Json;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use pym_runtime::config::Config;
use pym_runtime::http::{ApiError, Auth, Claims, Service, ServiceBuilder};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "test-api";
pub const API30: &str = include_str!("../http_fixtures/api30.yaml");
pub const API31: &str = include_str!("../http_fixtures/api31.yaml");

/// Claims of a valid token for `u-1` (this issuer and audience, 10 minutes),
/// with `extra` merged in; a `null` in `extra` removes that claim.
pub fn claims(extra: serde_json::Value) -> serde_json::Value {
    let now = pym_http::auth::now_secs();
    let mut c = serde_json::json!({"sub": "u-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

pub fn config() -> Config {
    let yaml = format!(
        "name: test\nversion: 9.9.9\njwt_issuer: {ISSUER}\njwt_audience: {AUDIENCE}\njwt_secret_env: TEST_SECRET\nvalidate_responses: true\nbody_limit: 4096\n"
    );
    Config::from_yaml("test-config.yaml", &yaml, &|k| {
        (k == "TEST_SECRET").then(|| SECRET.to_string())
    })
    .unwrap()
}

pub fn auth() -> Auth {
    Auth::hs256(SECRET, Some(ISSUER), Some(AUDIENCE))
}

async fn signup(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({"id": "u-1", "email": body["email"]}))
}
async fn get_item() -> Json<Value> {
    Json(json!({"ok": true}))
}
async fn me(claims: Claims) -> Json<Value> {
    let ctx = pym_runtime::context();
    Json(json!({
        "claims": claims.0,
        "ctx_user_id": ctx.user_id,
        "ctx_request_id": ctx.request_id,
        "ctx_traceparent": ctx.traceparent,
        "ctx_method": ctx.method,
        "ctx_path": ctx.path,
        "ctx_has_token": ctx.token.is_some(),
    }))
}
async fn maybe() -> Json<Value> {
    Json(json!({"user_id": pym_runtime::context().user_id}))
}
async fn boom() -> Json<Value> {
    panic!("kaboom with secret detail");
}
async fn bad_response() -> Json<Value> {
    Json(json!({"id": 12}))
}
async fn custom_error() -> Result<Json<Value>, ApiError> {
    Err(
        ApiError::new(StatusCode::CONFLICT, "EMAIL_TAKEN", "that email is taken")
            .with_user_message("This email is already registered."),
    )
}

pub fn builder() -> ServiceBuilder {
    builder_with(config())
}

/// [`builder`] with another config.
pub fn builder_with(config: Config) -> ServiceBuilder {
    Service::builder(config)
        .spec_str("api30.yaml", API30)
        .handler("signup", signup)
        .handler("get_item", get_item)
        .handler("me", me)
        .handler("maybe", maybe)
        .handler("boom", boom)
        .handler("bad_response", bad_response)
        .handler("custom_error", custom_error)
}

pub fn service() -> Service {
    builder().build().unwrap()
}

pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    /// Asserts the pym error shape and code; returns the body.
    pub fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        let o = v.as_object().expect("object");
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "error",
                "error_description",
                "error_id",
                "status",
                "user_message"
            ],
            "{v}"
        );
        assert_eq!(v["status"], status, "{v}");
        assert_eq!(v["error"], code, "{v}");
        assert!(uuid::Uuid::parse_str(v["error_id"].as_str().unwrap()).is_ok());
        v
    }
}

pub async fn call(svc: &Service, req: Request<Body>) -> Reply {
    let r = svc.router().oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let b = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&b).to_string(),
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn get_auth(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

pub fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}
