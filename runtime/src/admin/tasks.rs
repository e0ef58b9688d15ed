//! `GET /_pym/admin/queues/{queue}/delayed` and `/in-flight`: tasks waiting
//! for their time and tasks a worker holds, read from the delayed set and
//! the streams' pending lists. Each shows who spawned it (user id, request
//! id), never the token.

use super::access::{Role, caller};
use super::{Admin, broker_error};
use axum::Json;
use axum::extract::{Extension, Path, Query};
use pym_broker::envelope::{Envelope, now_ms, peek};
use pym_core::keys::{self, QueueKeys};
use pym_http::{ApiError, ServiceBuilder, axum};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn bind(b: ServiceBuilder) -> ServiceBuilder {
    b.handler("pym_admin_delayed", delayed)
        .handler("pym_admin_in_flight", in_flight)
}

/// Rows returned when no `limit` is given.
pub(super) const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize)]
pub(super) struct Limit {
    limit: Option<usize>,
}

/// A task as listed: what its envelope says, without the token.
fn row(env: &Envelope, now: u64) -> Value {
    json!({
        "id": env.id.to_string(),
        "task": env.task,
        "priority": format!("{:?}", env.priority).to_lowercase(),
        "attempts": env.attempt,
        "age_ms": now.saturating_sub(env.created_at),
        "user_id": env.ctx.user_id,
        "request_id": env.ctx.request_id,
    })
}

async fn delayed(
    Extension(admin): Extension<Admin>,
    Path(queue): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Value>, ApiError> {
    caller(Role::Read)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let mut conn = admin.broker.conn();
    let now = now_ms();
    let mut out = Vec::new();
    for shard in admin.shards(&queue).await? {
        let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(QueueKeys::new(&shard).delayed)
            .arg(0)
            .arg(limit.saturating_sub(out.len()).max(1) as i64 - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(broker_error)?;
        for (member, due) in members {
            // A member is its priority digit, then the message.
            let Some(env) = member.get(1..).and_then(peek) else {
                continue;
            };
            let mut r = row(&env, now);
            r["due_in_ms"] = json!((due as u64).saturating_sub(now));
            out.push(r);
        }
    }
    out.truncate(limit);
    Ok(Json(json!({"tasks": out})))
}

/// One pending entry: (id, consumer, idle ms, deliveries).
type Pending = (String, String, u64, u64);
/// The entries of one `XRANGE`: (id, [(field, value)]).
type Entries = Vec<(String, Vec<(String, String)>)>;

async fn in_flight(
    Extension(admin): Extension<Admin>,
    Path(queue): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Value>, ApiError> {
    caller(Role::Read)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let mut conn = admin.broker.conn();
    let now = now_ms();
    let mut out = Vec::new();
    for shard in admin.shards(&queue).await? {
        for stream in QueueKeys::new(&shard).ready {
            if out.len() >= limit {
                break;
            }
            let pending: Vec<Pending> = redis::cmd("XPENDING")
                .arg(&stream)
                .arg(keys::GROUP)
                .arg("-")
                .arg("+")
                .arg(limit - out.len())
                .query_async(&mut conn)
                .await
                .or_else(no_group)
                .map_err(broker_error)?;
            if pending.is_empty() {
                continue;
            }
            let mut get = redis::pipe();
            for (id, ..) in &pending {
                get.cmd("XRANGE").arg(&stream).arg(id).arg(id);
            }
            let entries: Vec<Entries> = get.query_async(&mut conn).await.map_err(broker_error)?;
            for ((_, consumer, idle, _), entry) in pending.iter().zip(entries) {
                let message = entry.into_iter().next().and_then(|(_, fields)| {
                    fields
                        .into_iter()
                        .find(|(f, _)| f == keys::FIELD_MESSAGE)
                        .map(|(_, m)| m)
                });
                let Some(env) = message.as_deref().and_then(peek) else {
                    continue;
                };
                let mut r = row(&env, now);
                r["worker"] = json!(consumer);
                r["idle_ms"] = json!(idle);
                out.push(r);
            }
        }
    }
    Ok(Json(json!({"tasks": out})))
}

/// A stream or group not made yet holds nothing in flight.
fn no_group(e: redis::RedisError) -> redis::RedisResult<Vec<Pending>> {
    if e.code() == Some("NOGROUP") {
        Ok(Vec::new())
    } else {
        Err(e)
    }
}
