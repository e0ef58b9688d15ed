//! greeter: the second pym example service, called by hello's welcome
//! task through the client generated from this service's `openapi.yaml`.
//!
//! `POST /greetings` answers a greeting that says who called: the user id
//! of the forwarded token, the request id and the trace id that came
//! along. When `GREETER_REPORT` names a file, each call is also appended
//! to it as a JSON line (the cross-service test reads it).
//!
//! [`app`] is the whole binary; `main.rs` runs it.

use pym_runtime::http::{ApiError, Claims};
use std::io::Write;

pym_runtime::api!("../openapi.yaml");

/// Env var naming a file where each greeting is appended as a JSON line.
pub const ENV_REPORT: &str = "GREETER_REPORT";

struct Greeter;

impl GreeterApi for Greeter {
    async fn greet(
        &self,
        caller: Option<Claims>,
        body: GreetingRequest,
    ) -> Result<greet::Response, ApiError> {
        let ctx = pym_runtime::context();
        let who = match &body.name {
            Some(name) => name.to_string(),
            None => body.email.to_string(),
        };
        // `x-greeting` of pym-config.yaml, typed.
        let format: Option<String> = pym_runtime::config::custom("greeting")
            .map_err(|e| ApiError::server_error(e.to_string()))?;
        let text = format
            .as_deref()
            .unwrap_or("Hello, {who}!")
            .replace("{who}", &who);
        let greeting = Greeting {
            text,
            user_id: caller.map(|c| c.user_id().to_string()),
            request_id: ctx.request_id.clone(),
            trace_id: ctx.trace_id().map(String::from),
        };
        tracing::info!(user_id = ?greeting.user_id, "greeted");
        report(&greeting).map_err(|e| ApiError::server_error(format!("report: {e}")))?;
        Ok(greet::Response::Created(greeting))
    }
}

/// Append `greeting` to `$GREETER_REPORT`, if set, in one write.
fn report(greeting: &Greeting) -> std::io::Result<()> {
    let Ok(path) = std::env::var(ENV_REPORT) else {
        return Ok(());
    };
    if path.is_empty() {
        return Ok(());
    }
    let line = serde_json::to_string(greeting)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(format!("{line}\n").as_bytes())
}

/// The greeter binary (`greeter serve`, `greeter token`, ...); a library
/// so that tests can run it as a child process of their own.
pub fn app() -> pym_runtime::App {
    pym_runtime::App::new("greeter")
        .about("greeter: the pym example service hello's welcome task calls")
        .version(env!("CARGO_PKG_VERSION"))
        .default_config(include_str!("../pym-config.yaml"))
        .service(|svc| bind(svc, Greeter))
}
