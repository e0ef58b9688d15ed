//! Cancellation across processes: `cancel` adds the task id to its
//! queue's `pym:{q}:cancelled` (score: Redis's clock, kept
//! [`keys::CANCEL_KEEP_MS`]) and, for a tracked task, marks its record in
//! the same script. Workers read the ids added since their last read once a
//! second ([`since`]): a task picked after that is acked and not run, a
//! running one is told through its context. A tracked task is also checked
//! by the script that starts it ([`crate::task_record::start`]), so once
//! `cancel` returned it never starts.
//!
//! Polling rather than pub/sub: a poll survives reconnects and Sentinel
//! failovers with nothing missed (a message published while a subscriber
//! reconnects is lost), works the same on Redis Cluster, and costs one
//! pipelined read per worker per second.

use crate::task_record::TaskState;
use crate::{Broker, Result};
use pym_core::keys;
use redis::Script;
use redis::aio::ConnectionLike;
use std::sync::LazyLock;
use uuid::Uuid;

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// A tracked task that had not started (queued, delayed, retrying): it
    /// never runs.
    BeforeStart,
    /// A tracked task running now: it is told within about a second, and
    /// stops if it checks (`context().cancelled()`).
    Told,
    /// A tracked task that had already finished: nothing changed.
    AlreadyFinished(TaskState),
    /// An untracked task (or one whose record is gone): the id is marked;
    /// a worker that picks it more than a second later acks it unrun, a
    /// worker running it tells it.
    Marked,
}

/// KEYS: cancelled ids, record; ARGV: id, keep (ms). Returns the state the
/// record had, `''` without a record.
static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local s = redis.call('HGET', KEYS[2], 's')
if s and s ~= 'queued' and s ~= 'delayed' and s ~= 'retrying' and s ~= 'running' then
  return s
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[1])
if not s then
  return ''
end
if s == 'running' then
  redis.call('HSET', KEYS[2], 'x', now)
else
  redis.call('HSET', KEYS[2], 's', 'cancelled', 'f', now)
end
return s
"#,
    )
});

/// Cancel task `id` of `queue` (a queue or a shard).
pub async fn cancel(broker: &Broker, queue: &str, id: Uuid) -> Result<Cancelled> {
    let was: String = CANCEL
        .key(keys::cancelled(queue))
        .key(keys::task_record(queue, &id.to_string()))
        .arg(id.to_string())
        .arg(keys::CANCEL_KEEP_MS)
        .invoke_async(&mut broker.conn())
        .await?;
    Ok(outcome(&was))
}

/// What the state a cancel found means.
pub fn outcome(was: &str) -> Cancelled {
    match TaskState::parse(was) {
        None => Cancelled::Marked,
        Some(TaskState::Running) => Cancelled::Told,
        Some(s) if s.is_final() => Cancelled::AlreadyFinished(s),
        Some(_) => Cancelled::BeforeStart,
    }
}

/// The ids cancelled on each of `queues` at or after `since[i]` (ms,
/// Redis's clock), with that time (a score), in one pipeline.
pub async fn since<C: ConnectionLike + Send>(
    conn: &mut C,
    queues: &[String],
    since: &[u64],
) -> Result<Vec<Vec<(String, f64)>>> {
    let mut pipe = redis::pipe();
    for (q, from) in queues.iter().zip(since) {
        pipe.cmd("ZRANGEBYSCORE")
            .arg(keys::cancelled(q))
            .arg(*from)
            .arg("+inf")
            .arg("WITHSCORES");
    }
    Ok(pipe.query_async(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_cancel_found() {
        let table = [
            ("", Cancelled::Marked),
            ("queued", Cancelled::BeforeStart),
            ("delayed", Cancelled::BeforeStart),
            ("retrying", Cancelled::BeforeStart),
            ("running", Cancelled::Told),
            (
                "succeeded",
                Cancelled::AlreadyFinished(TaskState::Succeeded),
            ),
            (
                "cancelled",
                Cancelled::AlreadyFinished(TaskState::Cancelled),
            ),
        ];
        for (was, want) in table {
            assert_eq!(outcome(was), want, "{was}");
        }
    }
}
