//! `GET /_pym/admin/workers`: the live registry ([`pym_broker::workers`]).

use super::access::{Role, caller};
use super::{Admin, broker_error};
use axum::Json;
use axum::extract::Extension;
use pym_broker::workers::{self, WorkerLiveness};
use pym_http::{ApiError, ServiceBuilder, axum};
use serde_json::{Value, json};

pub(super) fn bind(b: ServiceBuilder) -> ServiceBuilder {
    b.handler("pym_admin_workers", list)
}

async fn list(Extension(admin): Extension<Admin>) -> Result<Json<Value>, ApiError> {
    caller(Role::Read)?;
    let live = workers::live(&admin.broker, WorkerLiveness::default())
        .await
        .map_err(broker_error)?;
    Ok(Json(json!({"workers": live})))
}
