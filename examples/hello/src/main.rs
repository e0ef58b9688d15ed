//! hello: the pym example service.
//!
//! - `POST /signup` validates `{"email", "name"?}` against `openapi.yaml`,
//!   returns the new signup and spawns `send_welcome_email_async`.
//! - `GET /me` (bearer token) returns the caller's verified claims.
//!
//! The task runs in the worker with the caller's context: it logs (and, if
//! `HELLO_TASK_REPORT` names a file, appends as a JSON line) the user id,
//! claims, request id and traceparent it sees.

use axum::http::StatusCode;
use axum::{Extension, Json};
use pym_runtime::http::{ApiError, Claims};
use pym_runtime::{Queue, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;

/// Env var naming a file where the welcome task appends what it saw.
pub const ENV_TASK_REPORT: &str = "HELLO_TASK_REPORT";

#[derive(Debug, Deserialize)]
struct SignupRequest {
    email: String,
    name: Option<String>,
}

/// A signup: the model returned by `POST /signup` and the task's argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signup {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    /// The caller's user id, when the signup was made with a token.
    pub referred_by: Option<String>,
}

async fn signup(
    Extension(queue): Extension<Queue>,
    Json(req): Json<SignupRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let ctx = pym_runtime::context();
    let signup = Signup {
        id: uuid::Uuid::now_v7().to_string(),
        email: req.email,
        name: req.name,
        referred_by: ctx.user_id.clone(),
    };
    let task_id = send_welcome_email_async::spawn(&queue, signup.clone())
        .await
        .map_err(|e| {
            ApiError::service_unavailable(format!("cannot queue the welcome email: {e}"))
        })?;
    tracing::info!(signup_id = %signup.id, %task_id, "signed up");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": signup.id,
            "email": signup.email,
            "name": signup.name,
            "referred_by": signup.referred_by,
            "welcome_task_id": task_id.to_string(),
        })),
    ))
}

async fn me(claims: Claims) -> Json<serde_json::Value> {
    Json(json!({"user_id": claims.user_id(), "claims": claims.0}))
}

/// Sends the welcome email (here: logs it), in the caller's context.
#[pym_runtime::asynctask(queue = "default", max_retries = 5, timeout_secs = 30)]
async fn send_welcome_email_async(signup: Signup) -> Result<(), TaskError> {
    let ctx = pym_runtime::context();
    tracing::info!(
        email = %signup.email,
        user_id = ?ctx.user_id,
        request_id = ?ctx.request_id,
        "sending welcome email"
    );
    if let Ok(path) = std::env::var(ENV_TASK_REPORT)
        && !path.is_empty()
    {
        let line = json!({
            "task": "send_welcome_email_async",
            "signup": signup,
            "user_id": ctx.user_id,
            "claims": ctx.claims,
            "request_id": ctx.request_id,
            "traceparent": ctx.traceparent,
            "method": ctx.method,
            "path": ctx.path,
            "has_token": ctx.token.is_some(),
            "pid": std::process::id(),
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TaskError::retry(format!("cannot open {path}: {e}")))?;
        // One write of the whole line, so readers never see half of it.
        f.write_all(format!("{line}\n").as_bytes())
            .map_err(TaskError::retry)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    pym_runtime::App::new("hello")
        .about("hello: the pym example service (signup + welcome email task, /me)")
        .version(env!("CARGO_PKG_VERSION"))
        .default_config(include_str!("../pym-config.yaml"))
        .service(|svc| {
            svc.spec_str("openapi.yaml", include_str!("../openapi.yaml"))
                .handler("signup", signup)
                .handler("me", me)
        })
        .run()
}
