//! hello: the pym example service.
//!
//! Its API is generated from `openapi.yaml` by `pym_runtime::api!`: the
//! models (`SignupRequest`, `Signup`, `Me`), one `Response` enum per
//! operation and the trait `HelloApi`, which `Hello` implements.
//!
//! - `POST /signup` gets a `SignupRequest` validated against the spec,
//!   returns the new `Signup` and spawns `send_welcome_email_async`.
//! - `GET /me` (bearer token) returns the caller's verified claims.
//! - `POST /me/refresh` (bearer token) spawns `refresh_profile_async`:
//!   unique per user (a request while one is pending gets its task id),
//!   rate-limited to 5 per second across every worker, `trace_link`
//!   (one rebuild may answer many requests: its runs start traces of their
//!   own, linked to the request's), and tracked (its id shows its state in
//!   the admin API and the dashboard).
//!
//! The task runs in the worker with the caller's context: it asks the
//! greeter service for a greeting (when `PYM_API_GREETER_URL` is set)
//! through the client generated from greeter's spec, which forwards that
//! context; then it logs (and, if `HELLO_TASK_REPORT` names a file,
//! appends as a JSON line) the user id, claims, request id and
//! traceparent it sees, and the greeting.

use pym_runtime::client::ClientConfig;
use pym_runtime::http::{ApiError, Claims};
use pym_runtime::{Queue, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use std::sync::OnceLock;

pym_runtime::api!("../openapi.yaml");

/// The client of the greeter service, from its spec (no service trait).
mod greeter {
    pym_runtime::api!("../../greeter/openapi.yaml", client);
}

/// Env var naming a file where the welcome task appends what it saw.
pub const ENV_TASK_REPORT: &str = "HELLO_TASK_REPORT";
/// Env var: how long (ms) the welcome task takes to "send" (default 0).
pub const ENV_TASK_DELAY_MS: &str = "HELLO_TASK_DELAY_MS";
/// Env var naming a file where every error report is appended.
pub const ENV_ERROR_REPORT: &str = "HELLO_ERROR_REPORT";

/// The welcome task's argument. Not an API model: its JSON is the task's
/// message format, which tasks already queued (by an older build) must
/// still decode, so it changes only with the task, not with the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    /// The signup's id.
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    /// The caller's user id, when the signup was made with a token.
    pub referred_by: Option<String>,
}

/// The service: what its handlers share.
struct Hello {
    queue: Queue,
}

impl HelloApi for Hello {
    /// `security: [{}, {bearer: []}]`: the caller's claims when a token was sent.
    async fn signup(
        &self,
        caller: Option<Claims>,
        body: SignupRequest,
    ) -> Result<signup::Response, ApiError> {
        let referred_by = caller.as_ref().map(|c| c.user_id().to_string());
        let id = uuid::Uuid::now_v7();
        let email = body.email; // an `Email`: `format: email` in the spec
        let name = body.name.map(String::from);
        let welcome = Welcome {
            id: id.to_string(),
            email: email.to_string(),
            name: name.clone(),
            referred_by: referred_by.clone(),
        };
        let task = send_welcome_email_async::spawn(&self.queue, welcome)
            .await
            .map_err(|e| spawn_failed("the welcome email", &e))?;
        let task_id = task.id();
        tracing::info!(signup_id = %id, %task_id, "signed up");
        Ok(signup::Response::Created(Signup {
            id,
            email,
            name,
            referred_by,
            welcome_task_id: task_id,
        }))
    }

    /// `security: [{bearer: []}]`: the token was verified before this runs.
    async fn me(&self, claims: Claims) -> Result<me::Response, ApiError> {
        let user_id = claims.user_id().to_string();
        let serde_json::Value::Object(claims) = claims.0 else {
            return Err(ApiError::server_error("verified claims are not an object"));
        };
        Ok(me::Response::Ok(Me { user_id, claims }))
    }

    /// `security: [{bearer: []}]`: one pending rebuild per user.
    async fn refresh_me(&self, claims: Claims) -> Result<refresh_me::Response, ApiError> {
        let user_id = claims.user_id().to_string();
        let task_id = refresh_profile_async::spawn(&self.queue, user_id)
            .await
            .map_err(|e| spawn_failed("the profile rebuild", &e))?;
        Ok(refresh_me::Response::Accepted(Refresh {
            task_id: task_id.id(),
        }))
    }
}

/// A spawn of `what` that failed: Redis down or its master switching is a
/// 503 (the client may retry); anything else (arguments that do not
/// serialise) is a bug, 500.
fn spawn_failed(what: &str, e: &pym_runtime::SpawnError) -> ApiError {
    let msg = format!("cannot queue {what}: {e}");
    if e.is_unavailable() {
        ApiError::service_unavailable(msg)
    } else {
        ApiError::server_error(msg)
    }
}

/// The greeter client, when `PYM_API_GREETER_URL` is set; a wrong URL
/// fails every welcome task with the reason (they are dead-lettered).
fn greeter() -> Result<Option<&'static greeter::GreeterClient>, TaskError> {
    static CLIENT: OnceLock<Result<Option<greeter::GreeterClient>, String>> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        let env = pym_runtime::contract::env_api_url(greeter::GreeterClient::SERVICE);
        if std::env::var_os(&env).is_none_or(|v| v.is_empty()) {
            return Ok(None);
        }
        greeter::GreeterClient::from_env(ClientConfig::default())
            .map(Some)
            .map_err(|e| e.to_string())
    });
    client
        .as_ref()
        .map(Option::as_ref)
        .map_err(TaskError::fatal)
}

/// Asks greeter for the greeting (the caller's token, request id and trace
/// go along). Failures greeter or the network may recover from are
/// retried; a refusal (4xx) is final.
async fn greeting(signup: &Welcome) -> Result<Option<greeter::Greeting>, TaskError> {
    let Some(client) = greeter()? else {
        return Ok(None);
    };
    let email = signup
        .email
        .parse()
        .map_err(|e| TaskError::fatal(format!("email: {e}")))?;
    let name = match &signup.name {
        Some(n) => Some(
            n.parse()
                .map_err(|e| TaskError::fatal(format!("name: {e}")))?,
        ),
        None => None,
    };
    let request = greeter::GreetingRequest { email, name };
    match client.greet(&request).await {
        Ok(g) => Ok(Some(g)),
        Err(e) if e.status.is_client_error() && e.status != 429 => Err(TaskError::fatal(e)),
        Err(e) => Err(TaskError::retry(e)),
    }
}

/// Nightly housekeeping, a periodic task: every day at 03:00 (Paris time),
/// once across all worker replicas. Its tick is its idempotency key. A
/// deployment changes or disables it with `spec.workers.schedules`
/// (`PYM_SCHEDULES`); a night the workers were all down runs once when
/// they are back (`missed = "once"`).
#[pym_runtime::asynctask(
    queue = "default",
    cron = "0 0 3 * * *",
    tz = "Europe/Paris",
    missed = "once"
)]
async fn nightly_cleanup(tick: pym_runtime::Tick) -> Result<(), TaskError> {
    tracing::info!(tick = tick.as_millis(), "nightly cleanup");
    append_report(&json!({
        "task": "nightly_cleanup",
        "tick": tick.as_millis(),
        "pid": std::process::id(),
    }))
}

/// Sends the welcome email (here: logs it), in the caller's context.
#[pym_runtime::asynctask(queue = "default", max_retries = 5, timeout_secs = 30)]
async fn send_welcome_email_async(signup: Welcome) -> Result<(), TaskError> {
    let greeting = greeting(&signup).await?;
    let ctx = pym_runtime::context();
    tracing::info!(
        email = %signup.email,
        user_id = ?ctx.user_id,
        request_id = ?ctx.request_id,
        "sending welcome email"
    );
    // The time "sending" takes: none unless HELLO_TASK_DELAY_MS says (the
    // e2e makes tasks last, to kill a worker while it holds some).
    if let Some(ms) = std::env::var(ENV_TASK_DELAY_MS)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        tracing::info!(email = %signup.email, "welcome email sent");
    }
    append_report(&json!({
        "task": "send_welcome_email_async",
        "signup": signup,
        "user_id": ctx.user_id,
        "claims": ctx.claims,
        "request_id": ctx.request_id,
        "traceparent": ctx.traceparent,
        "method": ctx.method,
        "path": ctx.path,
        "has_token": ctx.token.is_some(),
        "greeting": greeting,
        "pid": std::process::id(),
    }))?;
    Ok(())
}

/// Append `line` to the task report (`HELLO_TASK_REPORT`), if one is named.
fn append_report(line: &serde_json::Value) -> Result<(), TaskError> {
    if let Ok(path) = std::env::var(ENV_TASK_REPORT)
        && !path.is_empty()
    {
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

/// Rebuilds a user's profile (here: logs it, and appends a line to the
/// task report). Unique per user until it finishes, so rebuilds asked for
/// meanwhile are one; at most 5 start per second across every worker. One
/// rebuild may answer many requests, so it is `trace_link`: each run starts
/// a trace of its own, linked to the request's. Tracked: the task id the
/// request answers shows its state (`GET /_pym/admin/tasks/{id}`, the
/// dashboard's task view) for an hour.
#[pym_runtime::asynctask(
    queue = "default",
    unique(key = "user:{user_id}", until = "finished", ttl_secs = 300),
    rate = "5/s",
    timeout_secs = 30,
    trace_link,
    track(ttl_secs = 3600)
)]
async fn refresh_profile_async(user_id: String) -> Result<(), TaskError> {
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let ctx = pym_runtime::context();
    tracing::info!(%user_id, request_id = ?ctx.request_id, "profile rebuilt");
    append_report(&json!({
        "task": "refresh_profile_async",
        "user_id": user_id,
        "at_ms": at_ms,
        "request_id": ctx.request_id,
        "traceparent": ctx.traceparent,
        "pid": std::process::id(),
    }))
}

/// The error reporter (pymacaron's `error_reporter`): every 5xx, handler
/// panic and dead-lettered task. A real service would send it to its
/// crash tracker (spawning the I/O); hello logs it, and appends it to
/// `$HELLO_ERROR_REPORT` when set.
fn report_error(report: &pym_runtime::ErrorReport) {
    tracing::warn!(
        error_id = %report.error_id,
        code = %report.code,
        user_id = ?report.user_id,
        "error reported: {:?}: {}",
        report.source,
        report.message
    );
    if let Ok(path) = std::env::var(ENV_ERROR_REPORT)
        && !path.is_empty()
    {
        let line = json!({
            "source": format!("{:?}", report.source),
            "error_id": report.error_id,
            "code": report.code,
            "message": report.message,
            "user_id": report.user_id,
            "request_id": report.request_id,
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!("cannot append the error report to {path}: {e}");
        }
    }
}

fn main() -> ExitCode {
    pym_runtime::App::new("hello")
        .about("hello: the pym example service (signup + welcome email task, /me)")
        .version(env!("CARGO_PKG_VERSION"))
        .default_config(include_str!("../pym-config.yaml"))
        .error_reporter(report_error)
        .service(|svc| {
            let queue = svc
                .get_extension::<Queue>()
                .expect("App::service's builder holds the task queue");
            bind(svc, Hello { queue })
        })
        .run()
}
