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

use pym_core::keys::{self, CapKeys, QueueKeys};

/// KEYS: leases, parked, delayed, the delivery's ready stream, signal.
/// ARGV: max, delayed member, stream field.
const PARK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('XADD', KEYS[4], '*', ARGV[3], string.sub(ARGV[2], 2))
  return 1
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local due = tonumber(first[2]) or now
redis.call('ZADD', KEYS[3], due, ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[2])
local head = redis.call('ZRANGE', KEYS[3], 0, 0)
if head[1] == ARGV[2] then
  redis.call('LPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, 0)
end
return 0
"#;

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
