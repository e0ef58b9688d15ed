//! Dead letters: list with filters (task, reason, time), show one with its
//! message decoded, and replay or purge one, a filtered set, or all. A
//! sharded queue's dead letters are looked for in every shard.

use super::access::{Action, Role, caller};
use super::tasks::DEFAULT_LIMIT;
use super::{Admin, broker_error};
use axum::Json;
use axum::extract::{Extension, Path, Query};
use pym_broker::dead::{self, DeadLetter};
use pym_broker::{BrokerError, envelope};
use pym_http::{ApiError, ServiceBuilder, axum};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn bind(b: ServiceBuilder) -> ServiceBuilder {
    b.handler("pym_admin_dead_list", list)
        .handler("pym_admin_dead_show", show)
        .handler("pym_admin_dead_purge_one", purge_one)
        .handler("pym_admin_dead_replay_one", replay_one)
        .handler("pym_admin_dead_replay", replay_set)
        .handler("pym_admin_dead_purge", purge_set)
}

/// Which dead letters: those matching every filter given.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Filter {
    task: Option<String>,
    reason: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
}

impl Filter {
    pub(crate) fn matches(&self, d: &DeadLetter) -> bool {
        self.task
            .as_ref()
            .is_none_or(|t| d.task.as_ref() == Some(t))
            && self.reason.as_ref().is_none_or(|r| d.reason.label() == r)
            && self.since_ms.is_none_or(|s| d.failed_at >= s)
            && self.until_ms.is_none_or(|u| d.failed_at < u)
    }

    fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether no older letter can match (the list is newest first).
    fn past(&self, d: &DeadLetter) -> bool {
        self.since_ms.is_some_and(|s| d.failed_at < s)
    }
}

/// The body of a replay or purge of a set (unknown fields are refused by
/// the document's schema).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Selection {
    #[serde(default)]
    all: bool,
    #[serde(flatten)]
    filter: Filter,
}

/// What a set action acts on: every letter (`None`) or those matching.
/// No filter without `all`, or both, is refused: a slip never acts on all.
pub(crate) fn selected(s: Selection) -> Result<Option<Filter>, ApiError> {
    match (s.all, s.filter.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(s.filter)),
        (true, false) => Err(ApiError::invalid_parameter(
            "all",
            "all: true acts on every dead letter; give it without task, reason, since_ms, until_ms",
        )),
        (false, true) => Err(ApiError::invalid_parameter(
            "all",
            "give a filter (task, reason, since_ms, until_ms) or all: true",
        )),
    }
}

/// The list's query (not a flattened [`Filter`]: serde's `flatten`
/// would not parse numbers out of a query string).
#[derive(Deserialize)]
struct ListQuery {
    task: Option<String>,
    reason: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// Dead letters of `queue` matching `filter`, newest first per shard,
/// each with its shard: `offset` matches skipped, at most `limit` returned.
async fn matching(
    admin: &Admin,
    queue: &str,
    filter: &Filter,
    (offset, limit): (usize, usize),
) -> Result<Vec<(String, DeadLetter)>, ApiError> {
    const PAGE: usize = 500;
    let mut conn = admin.broker.conn();
    let (mut skip, mut out) = (offset, Vec::new());
    for shard in admin.shards(queue).await? {
        let mut at = 0;
        'shard: loop {
            let page = dead::list(&mut conn, &shard, at, PAGE)
                .await
                .map_err(broker_error)?;
            for d in &page {
                if filter.past(d) {
                    break 'shard;
                }
                if !filter.matches(d) {
                    continue;
                }
                if skip > 0 {
                    skip -= 1;
                } else if out.len() < limit {
                    out.push((shard.clone(), d.clone()));
                } else {
                    break 'shard;
                }
            }
            if page.len() < PAGE {
                break;
            }
            at += PAGE;
        }
    }
    Ok(out)
}

/// A dead letter as listed: without the message (it carries the sealed token).
fn summary(d: &DeadLetter) -> Value {
    json!({
        "id": d.id, "queue": d.queue, "task": d.task, "reason": d.reason.label(),
        "error": d.error, "attempts": d.attempts, "created_at": d.created_at,
        "failed_at": d.failed_at, "user_id": d.user_id, "request_id": d.request_id,
    })
}

async fn list(
    Extension(admin): Extension<Admin>,
    Path(queue): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller(Role::Read)?;
    let window = (q.offset.unwrap_or(0), q.limit.unwrap_or(DEFAULT_LIMIT));
    let filter = Filter {
        task: q.task,
        reason: q.reason,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
    };
    let found = matching(&admin, &queue, &filter, window).await?;
    let mut total = 0;
    for shard in admin.shards(&queue).await? {
        total += dead::count(&mut admin.broker.conn(), &shard)
            .await
            .map_err(broker_error)?;
    }
    let dead: Vec<Value> = found.iter().map(|(_, d)| summary(d)).collect();
    Ok(Json(json!({"dead": dead, "total": total})))
}

/// The dead letter `id` of `queue`, and the shard holding it.
async fn find(admin: &Admin, queue: &str, id: &str) -> Result<(String, DeadLetter), ApiError> {
    for shard in admin.shards(queue).await? {
        if let Some(d) = dead::get(&mut admin.broker.conn(), &shard, id)
            .await
            .map_err(broker_error)?
        {
            return Ok((shard, d));
        }
    }
    Err(ApiError::not_found(format!(
        "no dead letter {id} in queue {queue}"
    )))
}

async fn show(
    Extension(admin): Extension<Admin>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller(Role::Read)?;
    let (_, d) = find(&admin, &queue, &id).await?;
    let mut v = summary(&d);
    v["envelope"] = envelope::peek(&d.message).map_or(Value::Null, |env| {
        let mut e = serde_json::to_value(env).unwrap_or_default();
        if let Some(ctx) = e.get_mut("ctx").and_then(Value::as_object_mut) {
            ctx.remove("token");
        }
        e
    });
    Ok(Json(v))
}

/// Replay one letter of `shard`: `Ok(false)` when it was gone; one that
/// cannot be replayed (unverifiable, signed for another queue) is a 400.
async fn replay(admin: &Admin, shard: &str, id: &str) -> Result<bool, ApiError> {
    match dead::replay(&admin.broker, shard, id).await {
        Ok(moved) => Ok(moved),
        Err(BrokerError::Invalid(why)) => Err(ApiError::bad_request(why)),
        Err(e) => Err(broker_error(e)),
    }
}

async fn replay_one(
    Extension(admin): Extension<Admin>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let action = Action::begin("dead.replay", &queue, &format!("id={id}"))?;
    let (shard, _) = find(&admin, &queue, &id).await?;
    let moved = replay(&admin, &shard, &id).await?;
    Ok(action.done(u64::from(moved), 0))
}

async fn purge_one(
    Extension(admin): Extension<Admin>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let action = Action::begin("dead.purge", &queue, &format!("id={id}"))?;
    let (shard, _) = find(&admin, &queue, &id).await?;
    let gone = dead::purge(&mut admin.broker.conn(), &shard, &id)
        .await
        .map_err(broker_error)?;
    Ok(action.done(u64::from(gone), 0))
}

/// The letters a set action takes (shard, id).
async fn ids(
    admin: &Admin,
    queue: &str,
    filter: &Filter,
) -> Result<Vec<(String, String)>, ApiError> {
    let found = matching(admin, queue, filter, (0, usize::MAX)).await?;
    Ok(found.into_iter().map(|(shard, d)| (shard, d.id)).collect())
}

async fn replay_set(
    Extension(admin): Extension<Admin>,
    Path(queue): Path<String>,
    Json(body): Json<Selection>,
) -> Result<Json<Value>, ApiError> {
    let selection = selected(body)?;
    let action = Action::begin("dead.replay", &queue, &describe(selection.as_ref()))?;
    let (mut done, mut refused) = (0, 0);
    let Some(filter) = selection else {
        for shard in admin.shards(&queue).await? {
            let (o, r) = dead::replay_all(&admin.broker, &shard)
                .await
                .map_err(broker_error)?;
            (done, refused) = (done + o, refused + r);
        }
        return Ok(action.done(done, refused));
    };
    for (shard, id) in ids(&admin, &queue, &filter).await? {
        match replay(&admin, &shard, &id).await {
            Ok(moved) => done += u64::from(moved),
            Err(e) if e.status.as_u16() == 400 => refused += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(action.done(done, refused))
}

async fn purge_set(
    Extension(admin): Extension<Admin>,
    Path(queue): Path<String>,
    Json(body): Json<Selection>,
) -> Result<Json<Value>, ApiError> {
    let selection = selected(body)?;
    let action = Action::begin("dead.purge", &queue, &describe(selection.as_ref()))?;
    let mut conn = admin.broker.conn();
    let mut done = 0;
    let Some(filter) = selection else {
        for shard in admin.shards(&queue).await? {
            done += dead::purge_before(&mut conn, &shard, u64::MAX)
                .await
                .map_err(broker_error)?;
        }
        return Ok(action.done(done, 0));
    };
    for (shard, id) in ids(&admin, &queue, &filter).await? {
        let gone = dead::purge(&mut conn, &shard, &id)
            .await
            .map_err(broker_error)?;
        done += u64::from(gone);
    }
    Ok(action.done(done, 0))
}

/// The selection, for the action's log line.
fn describe(selection: Option<&Filter>) -> String {
    selection.map_or_else(|| "all".to_string(), |f| format!("{f:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pym_broker::dead::Reason;

    fn letter(task: &str, reason: Reason, failed_at: u64) -> DeadLetter {
        let mut d = DeadLetter::new("q", "1-0", "x", reason, "boom".into(), 3);
        d.task = Some(task.into());
        d.failed_at = failed_at;
        d
    }

    fn filter(v: Value) -> Filter {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn filters_match_every_field_given() {
        let d = letter("send", Reason::RetriesExhausted, 1_000);
        let cases = [
            (json!({}), true),
            (json!({"task": "send"}), true),
            (json!({"task": "other"}), false),
            (json!({"reason": "retries_exhausted"}), true),
            (json!({"reason": "fatal"}), false),
            (json!({"since_ms": 1_000}), true),
            (json!({"since_ms": 1_001}), false),
            (json!({"until_ms": 1_000}), false),
            (json!({"until_ms": 1_001}), true),
            (json!({"task": "send", "reason": "fatal"}), false),
        ];
        for (f, want) in cases {
            assert_eq!(filter(f.clone()).matches(&d), want, "{f}");
        }
    }

    #[test]
    fn a_set_action_needs_a_filter_or_all_not_both() {
        let sel = |v: Value| selected(serde_json::from_value(v).unwrap());
        assert_eq!(sel(json!({"all": true})).unwrap(), None);
        assert_eq!(
            sel(json!({"task": "send"})).unwrap(),
            Some(filter(json!({"task": "send"})))
        );
        for bad in [
            json!({}),
            json!({"all": false}),
            json!({"all": true, "task": "send"}),
        ] {
            let e = sel(bad.clone()).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
            assert!(
                e.description.starts_with("all: "),
                "{bad}: {}",
                e.description
            );
        }
    }
}
