//! Concurrency caps (`#[asynctask(max_concurrency = N)]`, per `limit_key`
//! if given): at most N tasks of the cap run at once across every worker.
//!
//! A running task holds a place: a member (its id) of the cap's `leases`
//! set, scored by when the lease ends (the task's timeout and
//! [`crate::flow::LEASE_MARGIN`] after it started), taken by the worker's
//! gate ([`crate::flow`]). The place is given back in the transaction that
//! settles the run (whatever the outcome, [`add_release`]); a worker that
//! dies holds its places until their leases end.
//!
//! A task that finds the cap full is parked ([`add_park`], in the
//! transaction that acks its delivery): it goes to the delayed set, due
//! when the first lease ends (the fallback should nobody give a place
//! back), and to the cap's `parked` set. Each place given back moves the
//! oldest parked task to its ready stream at once. The park re-checks the
//! cap, so a place freed between the gate and the park is not missed.
//! Nothing is spun on.

use crate::task::Registry;
use crate::{Broker, Result};
use pym_core::keys::{self, CapKeys, QueueKeys};
use redis::aio::ConnectionLike;

/// KEYS: leases, parked, delayed, the delivery's ready stream, signal.
/// ARGV: max, delayed member, stream field.
const PARK: &str = concat!(
    crate::enqueue::lua_schedule_fn!(),
    r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('XADD', KEYS[4], '*', ARGV[3], string.sub(ARGV[2], 2))
  return 1
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local due = tonumber(first[2]) or now
redis.call('ZADD', KEYS[2], now, ARGV[2])
schedule(KEYS[3], KEYS[5], due, ARGV[2])
return 0
"#
);

/// KEYS: leases, parked, delayed, ready high / normal / low.
/// ARGV: id, max, stream field.
const RELEASE: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
while true do
  local m = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not m then return 0 end
  redis.call('ZREM', KEYS[2], m)
  if redis.call('ZREM', KEYS[3], m) == 1 then
    local key = KEYS[4 + (tonumber(string.sub(m, 1, 1)) or 1)] or KEYS[5]
    redis.call('XADD', key, '*', ARGV[3], string.sub(m, 2))
    return 1
  end
end
"#;

/// Append the park of `member` (a delayed-set member) read from `stream`
/// of `qk` to an atomic pipeline.
pub fn add_park(
    pipe: &mut redis::Pipeline,
    cap: &CapKeys,
    max: u32,
    qk: &QueueKeys,
    stream: &str,
    member: &str,
) {
    pipe.cmd("EVAL")
        .arg(PARK)
        .arg(5)
        .arg(&cap.leases)
        .arg(&cap.parked)
        .arg(&qk.delayed)
        .arg(stream)
        .arg(&qk.signal)
        .arg(max)
        .arg(member)
        .arg(keys::FIELD_MESSAGE)
        .ignore();
}

/// Append the release of task `id`'s place (and the move of the oldest
/// parked task back to its ready stream) to an atomic pipeline.
pub fn add_release(pipe: &mut redis::Pipeline, cap: &CapKeys, max: u32, qk: &QueueKeys, id: &str) {
    pipe.cmd("EVAL")
        .arg(RELEASE)
        .arg(6)
        .arg(&cap.leases)
        .arg(&cap.parked)
        .arg(&qk.delayed)
        .arg(&qk.ready[0])
        .arg(&qk.ready[1])
        .arg(&qk.ready[2])
        .arg(id)
        .arg(max)
        .arg(keys::FIELD_MESSAGE)
        .ignore();
}

/// Most tasks of `queue` the caps of `registry` let run at once: the sum of
/// their caps when every task of the queue has one that is not per key
/// (`None` otherwise, and for a queue without tasks).
pub fn queue_cap(registry: &Registry, queue: &str) -> Option<u64> {
    let mut any = false;
    let mut sum = 0u64;
    for name in registry.names() {
        let o = &registry.get(name)?.options;
        if o.queue != queue {
            continue;
        }
        match o.max_concurrency {
            Some(n) if !o.limit_per_key => sum += u64::from(n),
            _ => return None,
        }
        any = true;
    }
    any.then_some(sum)
}

/// Record the cap of each of `queues` in [`keys::CAPS`] (or remove it when
/// not every task is capped), for the operator's autoscaler. Every worker
/// of a deployment runs the same tasks, so each writes the same values.
pub async fn register_caps(broker: &Broker, registry: &Registry, queues: &[String]) -> Result<()> {
    let mut pipe = redis::pipe();
    for q in queues {
        match queue_cap(registry, q) {
            Some(cap) => pipe.hset(keys::CAPS, q, cap).ignore(),
            None => pipe.hdel(keys::CAPS, q).ignore(),
        };
    }
    let () = pipe.query_async(&mut broker.conn()).await?;
    Ok(())
}

/// The summed caps of `queues` as the workers recorded them: `None` unless
/// every queue has one.
pub async fn queue_caps<C: ConnectionLike + Send>(
    conn: &mut C,
    queues: &[String],
) -> Result<Option<u64>> {
    if queues.is_empty() {
        return Ok(None);
    }
    let caps: Vec<Option<u64>> = redis::cmd("HMGET")
        .arg(keys::CAPS)
        .arg(queues)
        .query_async(conn)
        .await?;
    Ok(caps.into_iter().sum())
}

#[cfg(all(test, feature = "worker"))]
mod tests {
    use super::*;
    use crate::task::{Registration, Task, TaskFuture, TaskOptions};

    macro_rules! task {
        ($ty:ident, $reg:ident, $queue:expr, $max:expr, $per_key:expr) => {
            struct $ty;
            impl Task for $ty {
                type Args = ();
                const NAME: &'static str = stringify!($ty);
                const OPTIONS: TaskOptions = TaskOptions {
                    queue: $queue,
                    max_concurrency: $max,
                    limit_per_key: $per_key,
                    ..TaskOptions::DEFAULT
                };
                fn call(_: ()) -> TaskFuture {
                    Box::pin(async { Ok(()) })
                }
            }
            static $reg: Registration = Registration::of::<$ty>();
        };
    }
    task!(A, REG_A, "capped", Some(2), false);
    task!(B, REG_B, "capped", Some(3), false);
    task!(C, REG_C, "mixed", Some(2), false);
    task!(D, REG_D, "mixed", None, false);
    task!(E, REG_E, "keyed", Some(2), true);

    #[test]
    fn a_queue_is_capped_when_every_task_of_it_is() {
        let r = Registry::of(&[&REG_A, &REG_B, &REG_C, &REG_D, &REG_E]);
        let table = [
            ("capped", Some(5)),
            ("mixed", None),
            ("keyed", None),
            ("none", None),
        ];
        for (q, want) in table {
            assert_eq!(queue_cap(&r, q), want, "{q}");
        }
    }
}
