//! `GET /_pym/admin/schedules`: every periodic task of every queue, with
//! its cron, zone, missed-tick policy, next fire time and last run
//! ([`pym_broker::schedule::list`], as `stats --schedules` shows them).

use super::access::{Role, caller};
use super::{Admin, broker_error};
use axum::Json;
use axum::extract::Extension;
use pym_broker::{schedule, stats};
use pym_http::{ApiError, ServiceBuilder, axum};
use serde_json::{Value, json};

pub(super) fn bind(b: ServiceBuilder) -> ServiceBuilder {
    b.handler("pym_admin_schedules", list)
}

async fn list(Extension(admin): Extension<Admin>) -> Result<Json<Value>, ApiError> {
    caller(Role::Read)?;
    let mut conn = admin.broker.conn();
    let queues = stats::all_stats(&mut conn).await.map_err(broker_error)?;
    let mut all = Vec::new();
    for q in &queues {
        all.extend(
            schedule::list(&mut conn, &q.queue)
                .await
                .map_err(broker_error)?,
        );
    }
    Ok(Json(json!({"schedules": all})))
}
