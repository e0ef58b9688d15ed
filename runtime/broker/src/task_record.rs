//! Task records: a small hash per task of a task declared `track`
//! (`pym:{q}:task:<id>`, on the queue's shard, so every write shares a slot
//! with the queue's streams), written in the same transaction as the
//! enqueue, by one script at the start (which also refuses a cancelled
//! task) and in the settle transaction of its outcome. Every write sets the
//! record's TTL: Redis memory stays bounded. Untracked tasks write nothing.
//!
//! The record holds the state, the attempt, times, progress, the result
//! (JSON) or the last error; never the caller's token or the arguments.

use crate::envelope::{Envelope, now_ms};
use crate::{Broker, Result, ShardChoice};
use pym_core::keys;
use redis::Script;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

/// The record TTL of `#[asynctask(track)]` (one day).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where a tracked task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// In a ready stream.
    Queued,
    /// In the delayed set, due later.
    Delayed,
    /// Started by a worker (progress is reported here).
    Running,
    /// An attempt failed; the next one is in the delayed set.
    Retrying,
    /// Returned `Ok`: the result is kept.
    Succeeded,
    /// Ran and failed for good (a fatal error, or its retries exhausted):
    /// it is in the dead letters.
    Failed,
    /// Dead-lettered without running to the end (bad input, too many
    /// deliveries, an expired token).
    Dead,
    /// Cancelled before it started, or stopped after it was told.
    Cancelled,
    /// Not started before its expiry.
    Expired,
}

impl TaskState {
    pub const ALL: [TaskState; 9] = [
        TaskState::Queued,
        TaskState::Delayed,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Dead,
        TaskState::Cancelled,
        TaskState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Delayed => "delayed",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
            TaskState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// No later state follows.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            TaskState::Queued | TaskState::Delayed | TaskState::Running | TaskState::Retrying
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress a running task reported (`ctx.progress(0.4, "step 2")`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub fraction: f64,
    pub message: String,
}

/// What a record says of one task (serialisable, for the admin API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: Uuid,
    /// The queue (or shard) that holds it.
    pub queue: String,
    pub task: String,
    pub state: TaskState,
    /// 0 on the first run, n on the n-th retry.
    pub attempt: u32,
    /// Times in ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// When a cancel reached it while it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_requested_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The task's return value (succeeded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error of the last attempt, or why it was dead-lettered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The hash's fields (short: one record per task).
pub(crate) mod field {
    pub const STATE: &str = "s";
    pub const TASK: &str = "t";
    pub const ATTEMPT: &str = "a";
    pub const CREATED: &str = "c";
    pub const DUE: &str = "d";
    pub const STARTED: &str = "st";
    pub const FINISHED: &str = "f";
    pub const CANCEL: &str = "x";
    pub const FRACTION: &str = "p";
    pub const MESSAGE: &str = "m";
    pub const RESULT: &str = "r";
    pub const ERROR: &str = "e";
}

/// The record in `fields` (a `HGETALL`), `None` without a known state.
pub fn from_fields(id: Uuid, queue: &str, fields: &HashMap<String, String>) -> Option<TaskRecord> {
    let get = |f: &str| fields.get(f);
    let num = |f: &str| get(f).and_then(|v| v.parse::<u64>().ok());
    let progress = get(field::FRACTION)
        .and_then(|p| p.parse::<f64>().ok())
        .map(|fraction| Progress {
            fraction,
            message: get(field::MESSAGE).cloned().unwrap_or_default(),
        });
    Some(TaskRecord {
        id,
        queue: queue.to_owned(),
        task: get(field::TASK).cloned().unwrap_or_default(),
        state: TaskState::parse(get(field::STATE)?)?,
        attempt: num(field::ATTEMPT).unwrap_or(0) as u32,
        created_ms: num(field::CREATED),
        due_ms: num(field::DUE),
        started_ms: num(field::STARTED),
        finished_ms: num(field::FINISHED),
        cancel_requested_ms: num(field::CANCEL),
        progress,
        result: get(field::RESULT).and_then(|r| serde_json::from_str(r).ok()),
        error: get(field::ERROR).cloned(),
    })
}

/// The record of task `id` on `queue` (a queue or one of its shards), if
/// there is one (none: untracked, never spawned, or its TTL passed).
pub async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    queue: &str,
    id: Uuid,
) -> Result<Option<TaskRecord>> {
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::task_record(queue, &id.to_string()))
        .query_async(conn)
        .await?;
    Ok(from_fields(id, queue, &fields))
}

/// The record of task `id` on whichever queue (or shard) holds it, from
/// the id alone (for the admin API's `GET /_pym/admin/tasks/{id}`): one
/// `HGETALL` per queue and shard ever used, in one pipeline.
pub async fn find<C: ConnectionLike + Send>(conn: &mut C, id: Uuid) -> Result<Option<TaskRecord>> {
    let queues: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::QUEUES)
        .query_async(conn)
        .await?;
    let counts = crate::shards::recorded(conn).await?;
    let shards: Vec<String> = queues
        .iter()
        .flat_map(|q| keys::shards(q, counts.get(q).copied().unwrap_or(1)))
        .collect();
    if shards.is_empty() {
        return Ok(None);
    }
    let mut pipe = redis::pipe();
    for q in &shards {
        pipe.cmd("HGETALL")
            .arg(keys::task_record(q, &id.to_string()));
    }
    let all: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
    Ok(shards
        .iter()
        .zip(&all)
        .find_map(|(q, fields)| from_fields(id, q, fields)))
}

/// One write of a record: fields, then the TTL.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    pub key: String,
    pub ttl_secs: u64,
    pub fields: Vec<(&'static str, String)>,
}

impl RecordWrite {
    /// A write of task `id` on `queue`, kept `ttl` after it.
    pub fn new(queue: &str, id: &Uuid, ttl: Duration) -> Self {
        RecordWrite {
            key: keys::task_record(queue, &id.to_string()),
            ttl_secs: ttl.as_secs().max(1),
            fields: Vec::new(),
        }
    }

    pub fn set(mut self, field: &'static str, value: impl ToString) -> Self {
        self.fields.push((field, value.to_string()));
        self
    }

    /// Keep the record `extra` longer (a delay, a run-time limit).
    pub fn longer(mut self, extra: Duration) -> Self {
        self.ttl_secs += extra.as_secs() + 1;
        self
    }

    /// `HSET key f v …` and `EXPIRE key ttl`.
    pub fn add_to_pipe(&self, pipe: &mut redis::Pipeline) {
        let hset = pipe.cmd("HSET").arg(&self.key);
        for (f, v) in &self.fields {
            hset.arg(*f).arg(v);
        }
        hset.ignore();
        pipe.cmd("EXPIRE")
            .arg(&self.key)
            .arg(self.ttl_secs)
            .ignore();
    }
}

/// The first write of task `env` spawned on `queue`: queued, or delayed
/// until its `eta` (kept that much longer), at `now`.
pub fn spawned(queue: &str, env: &Envelope, ttl: Duration, now: u64) -> RecordWrite {
    let w = RecordWrite::new(queue, &env.id, ttl)
        .set(field::TASK, &env.task)
        .set(field::CREATED, env.created_at);
    match env.eta {
        Some(eta) if eta > now => w
            .set(field::STATE, TaskState::Delayed.as_str())
            .set(field::DUE, eta)
            .longer(Duration::from_millis(eta - now)),
        _ => w.set(field::STATE, TaskState::Queued.as_str()),
    }
}

/// The write of an attempt's outcome: `state`, with the result or the
/// error, and when the next attempt is due (retrying).
pub fn settled(
    queue: &str,
    id: &Uuid,
    ttl: Duration,
    state: TaskState,
    outcome: Outcome,
) -> RecordWrite {
    let now = now_ms();
    let w = RecordWrite::new(queue, id, ttl).set(field::STATE, state.as_str());
    match outcome {
        Outcome::Result(Some(r)) => w.set(field::RESULT, r).set(field::FINISHED, now),
        Outcome::Result(None) => w.set(field::FINISHED, now),
        Outcome::Error(e) if state == TaskState::Retrying => w.set(field::ERROR, e),
        Outcome::Error(e) => w.set(field::ERROR, e).set(field::FINISHED, now),
        Outcome::RetryAt(due, e) => w
            .set(field::ERROR, e)
            .set(field::DUE, due)
            .longer(Duration::from_millis(due.saturating_sub(now))),
    }
}

/// What an outcome leaves in the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done: the result's JSON, if the task kept one.
    Result(Option<String>),
    /// The error (or why it was dead-lettered, expired, cancelled).
    Error(String),
    /// Failed; the next attempt is due at this time (ms).
    RetryAt(u64, String),
}

/// Mark a tracked task running, unless it was cancelled: then mark it
/// cancelled and return 0. KEYS: record, cancelled ids; ARGV: id, now (ms),
/// attempt, TTL (s), task.
static START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('ZSCORE', KEYS[2], ARGV[1]) or redis.call('HGET', KEYS[1], 's') == 'cancelled' then
  redis.call('HSET', KEYS[1], 's', 'cancelled', 'f', ARGV[2], 't', ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return 0
end
redis.call('HSET', KEYS[1], 's', 'running', 'st', ARGV[2], 'a', ARGV[3], 't', ARGV[5])
redis.call('HDEL', KEYS[1], 'd')
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"#,
    )
});

/// Record that a tracked task of `queue` starts (its TTL covering `ttl`
/// plus its run-time limit); `false` when it was cancelled and must not run.
pub async fn start(broker: &Broker, queue: &str, env: &Envelope, ttl_secs: u64) -> Result<bool> {
    let id = env.id.to_string();
    let started: i64 = START
        .key(keys::task_record(queue, &id))
        .key(keys::cancelled(queue))
        .arg(&id)
        .arg(now_ms())
        .arg(env.attempt)
        .arg(ttl_secs.max(1))
        .arg(&env.task)
        .invoke_async(&mut broker.conn())
        .await?;
    Ok(started == 1)
}

impl Broker {
    /// [`Broker::enqueue_keyed`] of a tracked task: the record (queued or
    /// delayed) is written in the same transaction as the enqueue; returns
    /// the queue (shard) it went to.
    pub async fn enqueue_tracked(
        &self,
        env: Envelope,
        shard: ShardChoice<'_>,
        ttl: Duration,
    ) -> Result<String> {
        let shards = self.register_queue(&env.queue).await?;
        let qk = shards.pick(shard);
        let now = now_ms();
        let mut pipe = redis::pipe();
        pipe.atomic();
        spawned(&qk.queue, &env, ttl, now).add_to_pipe(&mut pipe);
        let (eta, priority) = (env.eta, env.priority);
        let message = self.signer().seal_owned(env);
        match eta {
            Some(eta) if eta > now => {
                pipe.cmd("EVAL")
                    .arg(crate::enqueue::SCHEDULE_LUA)
                    .arg(2)
                    .arg(&qk.delayed)
                    .arg(&qk.signal)
                    .arg(eta)
                    .arg(keys::delayed_member(priority, &message))
                    .ignore();
            }
            _ => {
                pipe.cmd("XADD")
                    .arg(qk.ready(priority))
                    .arg("*")
                    .arg(keys::FIELD_MESSAGE)
                    .arg(message)
                    .ignore();
            }
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(qk.queue.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pym_core::{Context, Priority};
    use serde_json::value::RawValue;

    #[test]
    fn states_round_trip_and_only_four_are_not_final() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
        }
        let open: Vec<_> = TaskState::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .collect();
        assert_eq!(
            open,
            [
                TaskState::Queued,
                TaskState::Delayed,
                TaskState::Running,
                TaskState::Retrying
            ]
        );
        assert_eq!(TaskState::parse("done"), None);
    }

    #[test]
    fn a_record_reads_back_from_its_fields() {
        let id = Uuid::now_v7();
        let f = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let r = from_fields(
            id,
            "q",
            &f(&[
                ("s", "running"),
                ("t", "resize"),
                ("a", "2"),
                ("c", "10"),
                ("st", "20"),
                ("p", "0.4"),
                ("m", "step 2"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                r.state,
                r.task.as_str(),
                r.attempt,
                r.created_ms,
                r.started_ms
            ),
            (TaskState::Running, "resize", 2, Some(10), Some(20))
        );
        assert_eq!(
            r.progress,
            Some(Progress {
                fraction: 0.4,
                message: "step 2".into()
            })
        );
        let done = from_fields(id, "q", &f(&[("s", "succeeded"), ("r", "{\"n\":3}")])).unwrap();
        assert_eq!(done.result, Some(serde_json::json!({"n": 3})));
        assert_eq!(done.progress, None);
        assert!(from_fields(id, "q", &f(&[])).is_none(), "no record");
        assert!(from_fields(id, "q", &f(&[("s", "odd")])).is_none());
    }

    #[test]
    fn every_write_sets_the_ttl_and_a_delay_or_retry_lengthens_it() {
        let ttl = Duration::from_secs(60);
        let raw = RawValue::from_string("[]".into()).unwrap();
        let mut env = Envelope::new("t", "q", Priority::Normal, raw, Context::system());
        let now = env.created_at;
        let w = spawned("q", &env, ttl, now);
        assert_eq!(w.ttl_secs, 60);
        assert!(w.fields.contains(&("s", "queued".into())));
        env.eta = Some(now + 30_000);
        let w = spawned("q", &env, ttl, now);
        assert_eq!(w.ttl_secs, 91);
        assert!(w.fields.contains(&("s", "delayed".into())));
        let retry = settled(
            "q",
            &env.id,
            ttl,
            TaskState::Retrying,
            Outcome::RetryAt(now_ms() + 10_000, "boom".into()),
        );
        assert!((70..=71).contains(&retry.ttl_secs), "{}", retry.ttl_secs);
        assert!(retry.fields.contains(&("e", "boom".into())));
        let mut pipe = redis::pipe();
        w.add_to_pipe(&mut pipe);
        let cmds: Vec<String> = pipe
            .cmd_iter()
            .map(|c| {
                c.args_iter()
                    .map(|a| match a {
                        redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                        _ => String::new(),
                    })
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(cmds, ["HSET", "EXPIRE"]);
    }
}
