//! Built-in endpoints: `/ping`, `/version`, `/auth/version`,
//! `/openapi.yaml`, `/healthz`, `/readyz`, `/metrics`.

use crate::config::HttpConfig;
use crate::error::ApiError;
use crate::server::{OperationName, Shared};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pym_core::contract;
use serde_json::json;
use std::sync::Arc;

pub const PING: &str = "/ping";
pub const VERSION: &str = "/version";
pub const AUTH_VERSION: &str = "/auth/version";
pub const OPENAPI: &str = "/openapi.yaml";

/// Paths reserved for built-ins (a spec may not declare them).
pub const PATHS: &[&str] = &[
    PING,
    VERSION,
    AUTH_VERSION,
    OPENAPI,
    contract::PATH_HEALTHZ,
    contract::PATH_READYZ,
    contract::PATH_METRICS,
];

/// The built-ins of the API port, by path; `/metrics` is among them
/// unless `metrics_port` is set ([`metrics_router`] serves it then).
const ROUTES: [(&str, &str); 7] = [
    (PING, "ping"),
    (VERSION, "version"),
    (AUTH_VERSION, "auth_version"),
    (OPENAPI, "openapi"),
    (contract::PATH_HEALTHZ, "healthz"),
    (contract::PATH_READYZ, "readyz"),
    (contract::PATH_METRICS, "metrics"),
];

/// The built-ins this port serves, with the operation name their requests
/// are counted and logged under (the request layer names them by path).
pub(crate) fn names(config: &HttpConfig) -> Vec<(&'static str, OperationName)> {
    ROUTES
        .iter()
        .filter(|(path, _)| *path != contract::PATH_METRICS || config.metrics_port.is_none())
        .map(|(path, name)| (*path, OperationName(Arc::from(*name))))
        .collect()
}

/// The built-ins of the API port (see [`names`]).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let router = Router::new()
        .route(PING, get(ping))
        .route(VERSION, get(version))
        .route(AUTH_VERSION, get(auth_version))
        .route(OPENAPI, get(openapi))
        .route(contract::PATH_HEALTHZ, get(healthz))
        .route(contract::PATH_READYZ, get(readyz));
    let router = if shared.config.metrics_port.is_none() {
        router.route(contract::PATH_METRICS, get(metrics))
    } else {
        router
    };
    router.with_state(shared)
}

/// `/metrics` alone, for the metrics port; anything else is a 404.
pub(crate) fn metrics_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(contract::PATH_METRICS, get(metrics))
        .with_state(shared)
        .fallback(|| async { ApiError::not_found("only /metrics is served on this port") })
}

async fn ping() -> impl IntoResponse {
    axum::Json(json!({}))
}

fn version_body(s: &Shared) -> serde_json::Value {
    json!({
        "name": s.config.name,
        "version": s.config.version,
        "env": s.config.env,
        "api_version": s.spec.version,
        "pym_version": env!("CARGO_PKG_VERSION"),
    })
}

async fn version(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(version_body(&s))
}

async fn auth_version(State(s): State<Arc<Shared>>, req: Request) -> Result<Response, ApiError> {
    let auth = s
        .auth
        .as_ref()
        .ok_or_else(|| ApiError::service_unavailable("no JWT key configured for this service"))?;
    let h = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let (claims, _) = auth.verify_header(h)?;
    let mut body = version_body(&s);
    body["user_id"] = json!(claims.user_id());
    Ok(axum::Json(body).into_response())
}

async fn openapi(State(s): State<Arc<Shared>>) -> Response {
    let mut r = s.spec.yaml.clone().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    r
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<Arc<Shared>>) -> Result<Response, ApiError> {
    s.readiness
        .check()
        .await
        .map_err(ApiError::service_unavailable)?;
    Ok(axum::Json(json!({"status": "ready"})).into_response())
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut r = s.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(contract::METRICS_CONTENT_TYPE),
    );
    r
}
