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

    /// Adds the statistics of another shard of the same queue: counts
    /// add up, the oldest ready task and the next due one are the oldest
    /// and the soonest of either, the snapshot time is the later one.
    pub fn merge(&mut self, other: &QueueStats) {
        self.ready += other.ready;
        self.in_flight += other.in_flight;
        self.delayed_due += other.delayed_due;
        self.delayed_later += other.delayed_later;
        self.dead += other.dead;
        self.oldest_ready_age_ms = self.oldest_ready_age_ms.max(other.oldest_ready_age_ms);
        self.next_due_in_ms = match (self.next_due_in_ms, other.next_due_in_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.at_ms = self.at_ms.max(other.at_ms);
        self.fetched_total = self
            .fetched_total
            .zip(other.fetched_total)
            .map(|(a, b)| a + b);
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
          -- Redis 7.0 reports nil for a group that never read: none fetched.
          if type(r) ~= 'number' and l == '0-0' then r = 0 end
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

/// Statistics of one queue: of all its shards, summed, for a sharded one
/// (one atomic snapshot per shard).
pub async fn queue_stats<C: ConnectionLike + Send>(
    conn: &mut C,
    queue: &str,
) -> Result<QueueStats> {
    let n = crate::shards::recorded_of(conn, queue).await?;
    let mut total = shard_stats(conn, queue, queue).await?;
    for i in 1..n {
        let shard = shard_stats(conn, queue, &keys::shard(queue, i)).await?;
        total.merge(&shard);
    }
    Ok(total)
}

/// Statistics of one shard (`shard` is `queue` itself for shard 0).
async fn shard_stats<C: ConnectionLike + Send>(
    conn: &mut C,
    queue: &str,
    shard: &str,
) -> Result<QueueStats> {
    let qk = QueueKeys::new(shard);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_the_statistics_of_their_queue() {
        let shard = |ready, oldest, next, at, fetched| QueueStats {
            queue: "q".into(),
            ready,
            in_flight: 1,
            delayed_due: 2,
            delayed_later: 3,
            dead: 4,
            oldest_ready_age_ms: oldest,
            next_due_in_ms: next,
            at_ms: at,
            fetched_total: fetched,
        };
        let mut total = shard(5, Some(10), None, 100, Some(7));
        total.merge(&shard(6, Some(30), Some(50), 101, Some(8)));
        total.merge(&shard(0, None, Some(20), 99, Some(1)));
        assert_eq!(
            total,
            QueueStats {
                queue: "q".into(),
                ready: 11,
                in_flight: 3,
                delayed_due: 6,
                delayed_later: 9,
                dead: 12,
                oldest_ready_age_ms: Some(30),
                next_due_in_ms: Some(20),
                at_ms: 101,
                fetched_total: Some(16),
            }
        );
        // A shard whose fetched total is unknown makes the sum unknown.
        total.merge(&shard(0, None, None, 0, None));
        assert_eq!(total.fetched_total, None);
    }
}
