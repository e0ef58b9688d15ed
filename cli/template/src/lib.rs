//! {{name}}: a pym service.
//!
//! `pym_runtime::api!` reads `openapi.yaml` at build time and generates its
//! models (`MessageRequest`, `Accepted`), one `Response` enum per operation,
//! the trait `{{Camel}}Api` (one method per operationId, implemented below;
//! a missing or mistyped method is a compile error) and `{{Camel}}Client`,
//! the typed client other services (and the tests) call it with.
//!
//! `POST /messages` queues `deliver_message_async`; the worker runs it later
//! with the caller's context restored (user, claims, request id, trace).

use pym_runtime::http::{ApiError, Claims};
use pym_runtime::{Queue, TaskError};
use serde::{Deserialize, Serialize};

pym_runtime::api!("../openapi.yaml");

/// The delivery task's argument. Its JSON is the task's message format:
/// tasks queued by an older build must still decode, so it changes with
/// the task, not with the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub to: String,
    pub text: String,
}

/// What the handlers share.
struct {{Camel}}Service {
    queue: Queue,
}

impl {{Camel}}Api for {{Camel}}Service {
    /// `security: [{}, {bearer: []}]`: `caller` holds the verified claims
    /// when a token was sent.
    async fn send_message(
        &self,
        caller: Option<Claims>,
        body: MessageRequest,
    ) -> Result<send_message::Response, ApiError> {
        let delivery = Delivery {
            to: body.to.to_string(),
            text: String::from(body.text),
        };
        let task = deliver_message_async::spawn(&self.queue, delivery)
            .await
            .map_err(|e| {
                // Redis down or its master switching: 503, the client may
                // retry; anything else (arguments that do not serialise) is
                // a bug, 500.
                let msg = format!("cannot queue the delivery: {e}");
                if e.is_unavailable() {
                    ApiError::service_unavailable(msg)
                } else {
                    ApiError::server_error(msg)
                }
            })?;
        let task_id = task.id();
        Ok(send_message::Response::Accepted(Accepted {
            task_id,
            sent_by: caller.map(|c| c.user_id().to_string()),
        }))
    }
}

/// Delivers a message (here: logs it), in the caller's context. An `Err`
/// made with `TaskError::retry` is retried with backoff, up to
/// `max_retries`; then, or at once with `TaskError::fatal`, the task is
/// dead-lettered (`{{name}} dead list`).
#[pym_runtime::asynctask(queue = "default", max_retries = 5, timeout_secs = 30)]
pub async fn deliver_message_async(delivery: Delivery) -> Result<(), TaskError> {
    let signature: Option<String> =
        pym_runtime::config::custom("signature").map_err(|e| TaskError::fatal(e.to_string()))?;
    let ctx = pym_runtime::context();
    tracing::info!(
        to = %delivery.to,
        user_id = ?ctx.user_id,
        request_id = ?ctx.request_id,
        "delivering: {} {}",
        delivery.text,
        signature.unwrap_or_default()
    );
    Ok(())
}

/// The whole binary (`{{name}} serve`, `worker`, `up`, `check`, `token`,
/// `dead`, `stats`; `{{name}} --help`); a library so tests can reach it.
pub fn app() -> pym_runtime::App {
    pym_runtime::App::new("{{name}}")
        .about("{{name}}: a pym service")
        .version(env!("CARGO_PKG_VERSION"))
        .default_config(include_str!("../pym-config.yaml"))
        .service(|svc| {
            let queue = svc
                .get_extension::<Queue>()
                .expect("App::service's builder holds the task queue");
            bind(svc, {{Camel}}Service { queue })
        })
}
