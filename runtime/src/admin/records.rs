//! `GET /_pym/admin/tasks/{id}`: what a tracked task's record says (state,
//! attempt, times, progress, result, error), found from the id alone; and
//! `POST /_pym/admin/tasks/{id}/cancel` (role operate): the cancel a
//! handle makes ([`pym_broker::cancel`]), on the queue its record names or,
//! for an untracked task, on the queue given.

use super::access::{Action, Role, caller};
use super::{Admin, broker_error};
use axum::Json;
use axum::extract::{Extension, Path};
use pym_broker::cancel::{self, Cancelled};
use pym_broker::task_record::{self, TaskRecord};
use pym_http::{ApiError, ServiceBuilder, axum};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) fn bind(b: ServiceBuilder) -> ServiceBuilder {
    b.handler("pym_admin_task_show", show)
        .handler("pym_admin_task_cancel", cancel_one)
}

/// The task id of the path: a UUID, or a 400 naming the parameter.
fn task_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse()
        .map_err(|_| ApiError::invalid_parameter("id", format!("{id:?} is not a task id (a UUID)")))
}

/// The record of task `id`, if one is kept.
async fn record(admin: &Admin, id: Uuid) -> Result<Option<TaskRecord>, ApiError> {
    task_record::find(&mut admin.broker.conn(), id)
        .await
        .map_err(broker_error)
}

fn no_record(id: Uuid) -> ApiError {
    ApiError::not_found(format!(
        "no record of task {id}: it is not tracked (#[asynctask(track)]), was never spawned, or its record's time to live passed"
    ))
}

async fn show(
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<TaskRecord>, ApiError> {
    caller(Role::Read)?;
    let id = task_id(&id)?;
    record(&admin, id)
        .await?
        .map(Json)
        .ok_or_else(|| no_record(id))
}

/// The cancel's body: the queue of an untracked task (a tracked task's
/// record names its queue).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    queue: Option<String>,
}

/// The cancel's body, which may be empty.
fn parse_body(body: &[u8]) -> Result<CancelBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CancelBody::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_parameter(
            "body",
            format!("expected {{\"queue\": \"...\"}} or nothing: {e}"),
        )
    })
}

/// What a cancel found, as the API says it.
fn outcome(c: Cancelled) -> Value {
    match c {
        Cancelled::BeforeStart => json!({"outcome": "before_start"}),
        Cancelled::Told => json!({"outcome": "told"}),
        Cancelled::AlreadyFinished(s) => json!({"outcome": "already_finished", "state": s}),
        Cancelled::Marked => json!({"outcome": "marked"}),
    }
}

async fn cancel_one(
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller(Role::Operate)?;
    let id = task_id(&id)?;
    let given = parse_body(&body)?.queue;
    let queue = match (record(&admin, id).await?, given) {
        (Some(r), _) => r.queue,
        (None, Some(q)) => admin.shards(&q).await?.into_iter().next().unwrap_or(q),
        (None, None) => {
            return Err(ApiError::invalid_parameter(
                "queue",
                format!(
                    "task {id} keeps no record: give its queue ({{\"queue\": \"...\"}}) to mark it cancelled"
                ),
            ));
        }
    };
    let action = Action::begin("task.cancel", &queue, &id.to_string())?;
    let found = cancel::cancel(&admin.broker, &queue, id)
        .await
        .map_err(broker_error)?;
    tracing::info!(action_id = %action.id, outcome = ?found, "admin action done");
    let mut v = outcome(found);
    v["action_id"] = json!(action.id);
    v["queue"] = json!(queue);
    Ok(Json(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pym_broker::task_record::TaskState;

    #[test]
    fn ids_and_outcomes_as_the_api_says_them() {
        assert!(task_id("0192f0e6-8a4e-7c4b-9b1e-3f1c2a9d8e7f").is_ok());
        for bad in ["", "42", "not-a-uuid"] {
            let e = task_id(bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad:?}");
        }
        let table = [
            (Cancelled::BeforeStart, json!({"outcome": "before_start"})),
            (Cancelled::Told, json!({"outcome": "told"})),
            (Cancelled::Marked, json!({"outcome": "marked"})),
            (
                Cancelled::AlreadyFinished(TaskState::Succeeded),
                json!({"outcome": "already_finished", "state": "succeeded"}),
            ),
        ];
        for (c, want) in table {
            assert_eq!(outcome(c), want);
        }
        assert_eq!(parse_body(b"").unwrap().queue, None);
        assert_eq!(parse_body(b" {} ").unwrap().queue, None);
        assert_eq!(
            parse_body(br#"{"queue":"q"}"#).unwrap().queue.as_deref(),
            Some("q")
        );
        assert_eq!(parse_body(b"[1]").unwrap_err().status.as_u16(), 400);
    }
}
