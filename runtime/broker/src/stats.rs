//! Queue statistics, read in one atomic script: what the operator's
//! autoscaler, the CLI and dashboards see.
//!
//! Entries are deleted as soon as they are acked, so for each ready stream
//! `ready = XLEN − pending` is exact (no reliance on the group `lag`, which
//! Redis 7.0 sometimes reports as NULL).

use crate::Result;
use pym_core::keys::{self, QueueKeys};
use redis::Script;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Depth of one queue at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue: String,
    /// Waiting to be fetched.
    pub ready: u64,
    /// Fetched by a worker and not settled yet (running, or held by a dead
    /// worker until reclaimed).
    pub in_flight: u64,
    /// Delayed or retrying, already due (about to be promoted).
    pub delayed_due: u64,
    /// Delayed or retrying, due later.
    pub delayed_later: u64,
    /// Dead letters.
    pub dead: u64,
    /// Age of the oldest ready task (ms), if any is ready.
    pub oldest_ready_age_ms: Option<u64>,
    /// Time until the next delayed task falls due (ms), if any is delayed.
    pub next_due_in_ms: Option<u64>,
    /// Server time of the snapshot (ms since the epoch).
    pub at_ms: u64,
    /// Tasks ever fetched from the ready streams (the consumer group's
    /// `entries-read`, summed): the difference between two snapshots is the
    /// number fetched in between, which gives the measured service rate.
    /// `None` when Redis does not know it (e.g. after a stream was trimmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_total: Option<u64>,
}

impl QueueStats {
    /// Work for workers now: ready + in flight + due.
    pub fn work(&self) -> u64 {
        self.ready + self.in_flight + self.delayed_due
    }
}

/// KEYS: ready high/normal/low, delayed, dead index. ARGV: group.
/// Returns {ready, in_flight, due, later, dead, oldest ready ms or -1,
/// next due ms or -1, now, fetched total or -1}.
static STATS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ready, inflight, oldest, fetched = 0, 0, -1, 0
for i = 1, 3 do
  local key = KEYS[i]
  local len = redis.call('XLEN', key)
  local pending, last = 0, nil
  if redis.call('EXISTS', key) == 1 then
    local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', key)
    if ok then
      for _, g in ipairs(groups) do
        local name, p, l, r
        for j = 1, #g, 2 do
          if g[j] == 'name' then name = g[j + 1]
          elseif g[j] == 'pending' then p = g[j + 1]
          elseif g[j] == 'last-delivered-id' then l = g[j + 1]
          elseif g[j] == 'entries-read' then r = g[j + 1] end
        end
        if name == ARGV[1] then
          pending, last = p, l
          if fetched >= 0 and type(r) == 'number' then fetched = fetched + r else fetched = -1 end
        end
      end
    end
  end
  if len > 0 then
    ready = ready + (len - pending)
    inflight = inflight + pending
    local first
    if last then
      first = redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', 1)
    else
      first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
    end
    if first[1] then
      local ms = tonumber(string.match(first[1][1], '^(%d+)'))
      if oldest < 0 or ms < oldest then oldest = ms end
    end
  end
end
local due = redis.call('ZCOUNT', KEYS[4], '-inf', now)
local later = redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf')
local nxt = -1
local head = redis.call('ZRANGE', KEYS[4], '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
if head[2] then nxt = tonumber(head[2]) end
local dead = redis.call('ZCARD', KEYS[5])
return {ready, inflight, due, later, dead, oldest, nxt, now, fetched}
"#,
    )
});

/// Statistics of one queue.
pub async fn queue_stats<C: ConnectionLike + Send>(
    conn: &mut C,
    queue: &str,
) -> Result<QueueStats> {
    let qk = QueueKeys::new(queue);
    let v: Vec<i64> = STATS
        .key(&qk.ready[0])
        .key(&qk.ready[1])
        .key(&qk.ready[2])
        .key(&qk.delayed)
        .key(&qk.dead_index)
        .arg(keys::GROUP)
        .invoke_async(conn)
        .await?;
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let now = get(7).max(0) as u64;
    let oldest = get(5);
    let next = get(6);
    Ok(QueueStats {
        queue: queue.to_owned(),
        ready: get(0).max(0) as u64,
        in_flight: get(1).max(0) as u64,
        delayed_due: get(2).max(0) as u64,
        delayed_later: get(3).max(0) as u64,
        dead: get(4).max(0) as u64,
        oldest_ready_age_ms: (oldest >= 0).then(|| now.saturating_sub(oldest as u64)),
        next_due_in_ms: (next >= 0).then(|| (next as u64).saturating_sub(now)),
        at_ms: now,
        fetched_total: u64::try_from(v.get(8).copied().unwrap_or(-1)).ok(),
    })
}

/// Statistics of every known queue (the `pym:queues` registry).
pub async fn all_stats<C: ConnectionLike + Send>(conn: &mut C) -> Result<Vec<QueueStats>> {
    let mut queues: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::QUEUES)
        .query_async(conn)
        .await?;
    queues.sort();
    let mut out = Vec::with_capacity(queues.len());
    for q in queues {
        out.push(queue_stats(conn, &q).await?);
    }
    Ok(out)
}
