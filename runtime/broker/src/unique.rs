//! Unique tasks (`#[asynctask(unique(key = "..", until = .., ttl_secs = N))]`):
//! a spawn takes the lock of its key and enqueues in one script, so there is
//! no window between the two; a spawn while the key is held enqueues nothing
//! and answers the holder's task id.
//!
//! The lock ([`keys::unique`], holding the task id, with the TTL) is
//! released when the task starts (`until = "started"`, by the worker's gate,
//! [`crate::flow`]) or when it finishes (`until = "finished"`: succeeded or
//! dead-lettered, in the same transaction as the ack, [`add_release`]). A
//! retry keeps it; a worker that crashes before the ack keeps it until the
//! task, taken over by another worker, finishes, or until the TTL ends. A
//! task that never starts (dead-lettered before it ran, cancelled before it
//! started) gives it back with its dead letter or ack.
//! Only the holder releases: a lock that expired and was taken by a newer
//! task stays that task's.

use crate::envelope::{Envelope, now_ms};
use crate::{Broker, Result, ShardChoice, TaskId};
use pym_core::keys;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS: lock, ready stream, delayed set, signal, and the record of a
/// tracked task. ARGV: id, TTL ms, message, due ms (0: now), priority
/// digit, stream field, and for a record its TTL (s) then its fields and
/// values. Returns the holder's id.
static LOCK_AND_ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        crate::enqueue::lua_schedule_fn!(),
        r#"
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local due = tonumber(ARGV[4])
if due > 0 then
  schedule(KEYS[3], KEYS[4], due, ARGV[5] .. ARGV[3])
else
  redis.call('XADD', KEYS[2], '*', ARGV[6], ARGV[3])
end
if KEYS[5] then
  redis.call('HSET', KEYS[5], unpack(ARGV, 8))
  redis.call('EXPIRE', KEYS[5], ARGV[7])
end
return ARGV[1]
"#
    ))
});

/// Delete lock KEYS[1] if it holds ARGV[1].
pub const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"#;

impl Broker {
    /// Enqueue `env` (which carries its rendered unique key) unless the key
    /// is held: the id of the task that holds it, `env`'s own if enqueued.
    /// A tracked task (`track`: its record's TTL) gets its record in the
    /// same script, as [`Broker::enqueue_tracked`] does.
    /// On a sharded queue, on the shard `shard` names (shard 0 for a
    /// unique task, [`crate::flow::on_first_shard`]).
    pub async fn enqueue_unique(
        &self,
        env: Envelope,
        ttl: Duration,
        shard: ShardChoice<'_>,
        track: Option<Duration>,
    ) -> Result<TaskId> {
        let key = env.flow.unique.clone().unwrap_or_default();
        let lock = keys::unique(&env.queue, &env.task, &key);
        let shards = self.register_queue(&env.queue).await?;
        let qk = shards.pick(shard);
        let (id, priority) = (env.id, env.priority);
        let now = now_ms();
        let due = env.eta.filter(|&eta| eta > now).unwrap_or(0);
        let record = track.map(|t| crate::task_record::spawned(&qk.queue, &env, t, now));
        let message = self.signer().seal_owned(env);
        let member = keys::delayed_member(priority, "");
        let mut script = LOCK_AND_ENQUEUE.key(lock);
        script
            .key(qk.ready(priority))
            .key(&qk.delayed)
            .key(&qk.signal)
            .arg(id.to_string())
            .arg(ttl.as_millis().max(1) as u64)
            .arg(message)
            .arg(due)
            .arg(member)
            .arg(keys::FIELD_MESSAGE);
        if let Some(r) = &record {
            script.key(&r.key).arg(r.ttl_secs);
            for (f, v) in &r.fields {
                script.arg(*f).arg(v);
            }
        }
        let holder: String = script.invoke_async(&mut self.conn()).await?;
        TaskId::parse_str(&holder).map_err(|e| {
            crate::BrokerError::Invalid(format!("unique lock holds {holder:?}, not a task id: {e}"))
        })
    }
}

/// Append the release of lock `lock` held by task `id` to an atomic
/// pipeline (the ack's).
pub fn add_release(pipe: &mut redis::Pipeline, lock: &str, id: &str) {
    pipe.cmd("EVAL")
        .arg(RELEASE)
        .arg(1)
        .arg(lock)
        .arg(id)
        .ignore();
}
