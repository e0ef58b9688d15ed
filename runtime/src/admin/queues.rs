//! `GET /_pym/admin/queues` and `/queues/{queue}`: counts (from
//! [`pym_broker::stats`]), rates, and for one queue its counts by priority.

use super::access::{Role, caller};
use super::{Admin, broker_error};
use axum::Json;
use axum::extract::{Extension, Path};
use pym_broker::stats::{self, QueueStats};
use pym_core::keys::{self, QueueKeys};
use pym_http::{ApiError, ServiceBuilder, axum};
use redis::Script;
use serde_json::{Value, json};
use std::sync::LazyLock;

pub(super) fn bind(b: ServiceBuilder) -> ServiceBuilder {
    b.handler("pym_admin_queues", list)
        .handler("pym_admin_queue", one)
}

/// The priorities, in the order of `QueueKeys::ready`.
const PRIORITIES: [&str; 3] = ["high", "normal", "low"];

/// `queue` as JSON with its rates.
fn with_rates(s: &QueueStats, rates: super::rates::Rates) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["rates"] = serde_json::to_value(rates).unwrap_or_default();
    v
}

async fn list(Extension(admin): Extension<Admin>) -> Result<Json<Value>, ApiError> {
    caller(Role::Read)?;
    let all = stats::all_stats(&mut admin.broker.conn())
        .await
        .map_err(broker_error)?;
    let rates = admin.rates.record(&all);
    let at_ms = all.iter().map(|s| s.at_ms).max().unwrap_or(0);
    let queues: Vec<Value> = all
        .iter()
        .zip(rates)
        .map(|(s, r)| with_rates(s, r))
        .collect();
    Ok(Json(json!({"queues": queues, "at_ms": at_ms})))
}

/// KEYS: the ready streams (high, normal, low). ARGV: group.
/// Returns {ready, in flight} of each.
static BY_PRIORITY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for i = 1, #KEYS do
  local len = redis.call('XLEN', KEYS[i])
  local pending = 0
  if len > 0 then
    local ok, p = pcall(redis.call, 'XPENDING', KEYS[i], ARGV[1])
    if ok then pending = p[1] end
  end
  out[#out + 1] = len - pending
  out[#out + 1] = pending
end
return out
"#,
    )
});

async fn one(
    Extension(admin): Extension<Admin>,
    Path(queue): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller(Role::Read)?;
    let mut conn = admin.broker.conn();
    let s = stats::queue_stats(&mut conn, &queue)
        .await
        .map_err(broker_error)?;
    let rates = admin.rates.record(std::slice::from_ref(&s));
    let mut counts = [(0i64, 0i64); 3];
    for shard in admin.shards(&queue).await? {
        let qk = QueueKeys::new(&shard);
        let v: Vec<i64> = BY_PRIORITY
            .key(&qk.ready[0])
            .key(&qk.ready[1])
            .key(&qk.ready[2])
            .arg(keys::GROUP)
            .invoke_async(&mut conn)
            .await
            .map_err(broker_error)?;
        for (i, c) in counts.iter_mut().enumerate() {
            c.0 += v.get(2 * i).copied().unwrap_or(0).max(0);
            c.1 += v.get(2 * i + 1).copied().unwrap_or(0).max(0);
        }
    }
    let mut v = with_rates(&s, rates[0]);
    v["priorities"] = PRIORITIES
        .iter()
        .zip(counts)
        .map(|(p, (ready, in_flight))| {
            (
                (*p).to_string(),
                json!({"ready": ready, "in_flight": in_flight}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    Ok(Json(v))
}
