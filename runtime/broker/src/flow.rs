//! Flow control across replicas, as a worker sees it: the options of a
//! unique, rate-limited or capped task, the part of the envelope that
//! carries its keys, and the gate a worker passes before it starts such a
//! task. The gate is one script: it checks the concurrency cap, reserves a
//! rate-limit slot (GCRA), takes a place of the cap, and releases the lock
//! of a task unique `until = "started"`, all at once, so the decision holds
//! however many workers ask. A task with none of these options never calls
//! it: no round trip is added to the plain path.
//!
//! What a closed gate does: a later rate slot defers the task to the
//! delayed set at the slot's time (the slot stays reserved: it then runs
//! without asking again); a full cap parks it ([`crate::concurrency`]).
//! Neither is a failed attempt.

use crate::Broker;
use crate::envelope::Envelope;
use crate::task::{Registration, TaskOptions};
use pym_core::keys::{self, CapKeys};
use redis::Script;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use std::time::Duration;

/// `unique(key = "..", until = "started" | "finished", ttl_secs = N)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unique {
    /// The lock is released when the task starts (else when it finishes:
    /// succeeded or dead-lettered; a retry keeps it).
    pub until_started: bool,
    /// The lock expires after this however the task fares.
    pub ttl: Duration,
}

impl Unique {
    /// Lock TTL when `ttl_secs` is not given.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
}

/// `rate = "N/s" | "N/m" | "N/h"`: at most `count` starts per `period`,
/// evenly spaced (GCRA, no burst): one start every `period / count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    /// Time between two starts, in ms (at least 1).
    pub fn interval_ms(&self) -> u64 {
        (self.period.as_millis() as u64 / u64::from(self.count.max(1))).max(1)
    }
}

/// What the envelope carries for flow control (empty for other tasks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// The rendered key of a unique task (its lock is
    /// [`keys::unique`]`(queue, task, key)`, holding the task id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<String>,
    /// The rendered `limit_key`: the rate limit and the cap count per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The rate-limit slot (ms) reserved for this task when it was deferred:
    /// it runs then without asking again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_slot: Option<u64>,
}

impl Flow {
    pub fn is_empty(&self) -> bool {
        *self == Flow::default()
    }
}

/// Claim `name` of the current context's token, for a key template
/// (`{claim.NAME}`): a string as it is, another value as JSON, `""` when
/// absent.
pub fn claim(name: &str) -> String {
    pym_core::context::with_current(|c| {
        match c.and_then(|c| c.claims.as_ref()).and_then(|v| v.get(name)) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    })
}

/// The current context's user id, for a key template (`{user_id}`); `""`
/// without one.
pub fn user_id() -> String {
    pym_core::context::with_current(|c| c.and_then(|c| c.user_id.clone()).unwrap_or_default())
}

/// How long a place of a cap is leased beyond the task's timeout: a worker
/// that dies frees its places after this.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Check the cap (KEYS[2], ARGV[3] places), reserve a rate slot (KEYS[1],
/// ARGV[1] ms apart, unless ARGV[2] says one is reserved), take a place
/// until ARGV[4] ms from now for id ARGV[5], and release the unique lock
/// KEYS[3] if ARGV[6] = 1 and the lock is this task's.
/// Returns {0, 0}: run; {1, slot ms}: defer; {2, first lease end ms}: park.
static GATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[3])
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if not redis.call('ZSCORE', KEYS[2], ARGV[5]) and redis.call('ZCARD', KEYS[2]) >= max then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {2, tonumber(first[2])}
  end
end
local interval = tonumber(ARGV[1])
if interval > 0 and ARGV[2] == '0' then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now + 1000)
  if tat > now then return {1, tat} end
end
if max > 0 then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[5])
end
if ARGV[6] == '1' and redis.call('GET', KEYS[3]) == ARGV[5] then
  redis.call('DEL', KEYS[3])
end
return {0, 0}
"#,
    )
});

/// The gate's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Start it (a place of its cap is now held, if it has one).
    Run,
    /// Its rate slot is at this time (ms): defer it until then.
    Defer { slot_ms: u64 },
    /// Its cap is full; the first place is leased until this time (ms).
    Park { first_lease_end_ms: u64 },
}

impl Admit {
    /// The gate script's reply, read.
    pub fn from_reply(code: i64, at: u64) -> Option<Admit> {
        match code {
            0 => Some(Admit::Run),
            1 => Some(Admit::Defer { slot_ms: at }),
            2 => Some(Admit::Park {
                first_lease_end_ms: at,
            }),
            _ => None,
        }
    }
}

/// Whether task `reg` asks the gate anything for `env`: it has a rate
/// limit, a cap, or a lock to release at start.
pub fn gated(reg: &Registration) -> bool {
    let o = &reg.options;
    o.rate.is_some() || o.max_concurrency.is_some() || o.unique.is_some_and(|u| u.until_started)
}

/// Whether a task declared with `options` is sent to shard 0 of a
/// sharded queue, whatever its shard key: its lock, rate and cap keys are
/// its queue's (`pym:{q}:…`), and a script or a transaction that touches
/// them and a shard's stream must find both in one Redis Cluster slot.
/// Such tasks are limited by their shared keys anyway, so they lose
/// nothing that sharding would give them.
pub fn on_first_shard(options: &TaskOptions) -> bool {
    options.unique.is_some() || options.rate.is_some() || options.max_concurrency.is_some()
}

/// The cap keys of `env` (its task's, per its limit key).
pub fn cap_keys(queue: &str, env: &Envelope) -> CapKeys {
    CapKeys::new(queue, &env.task, env.flow.limit.as_deref())
}

/// How long a place is leased: the task's timeout and [`LEASE_MARGIN`].
pub fn lease_ms(reg: &Registration) -> u64 {
    (reg.options.timeout + LEASE_MARGIN).as_millis() as u64
}

/// Ask the gate for `env` of task `reg`, read from `queue`.
pub async fn admit(
    broker: &Broker,
    queue: &str,
    env: &Envelope,
    reg: &Registration,
) -> crate::Result<Admit> {
    let o = &reg.options;
    let limit = env.flow.limit.as_deref();
    let id = env.id.to_string();
    // A task without a lock to release names a key of the same slot.
    let release = o.unique.is_some_and(|u| u.until_started) && env.flow.unique.is_some();
    let lock = keys::unique(queue, &env.task, env.flow.unique.as_deref().unwrap_or(""));
    let (code, at): (i64, u64) = GATE
        .key(keys::rate(queue, &env.task, limit))
        .key(cap_keys(queue, env).leases)
        .key(lock)
        .arg(o.rate.map_or(0, |r| r.interval_ms()))
        .arg(env.flow.rate_slot.unwrap_or(0))
        .arg(o.max_concurrency.unwrap_or(0))
        .arg(lease_ms(reg))
        .arg(&id)
        .arg(u8::from(release))
        .invoke_async(&mut broker.conn())
        .await?;
    Admit::from_reply(code, at)
        .ok_or_else(|| crate::BrokerError::Invalid(format!("flow gate answered {code}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_controlled_tasks_go_to_the_first_shard() {
        let d = TaskOptions::DEFAULT;
        let unique = Unique {
            until_started: false,
            ttl: Duration::from_secs(1),
        };
        let rate = Rate {
            count: 1,
            period: Duration::from_secs(1),
        };
        let table = [
            (d, false),
            (
                TaskOptions {
                    track: Some(Duration::from_secs(1)),
                    ..d
                },
                false,
            ),
            (
                TaskOptions {
                    unique: Some(unique),
                    ..d
                },
                true,
            ),
            (
                TaskOptions {
                    rate: Some(rate),
                    ..d
                },
                true,
            ),
            (
                TaskOptions {
                    max_concurrency: Some(2),
                    ..d
                },
                true,
            ),
        ];
        for (options, want) in table {
            assert_eq!(on_first_shard(&options), want, "{options:?}");
        }
    }

    #[test]
    fn a_rate_spaces_starts_evenly() {
        let r = |count, secs| Rate {
            count,
            period: Duration::from_secs(secs),
        };
        let table = [
            (r(10, 1), 100),
            (r(5, 1), 200),
            (r(1, 60), 60_000),
            (r(3, 1), 333),
            (r(7200, 3600), 500),
            (r(5000, 1), 1),
        ];
        for (rate, want) in table {
            assert_eq!(rate.interval_ms(), want, "{rate:?}");
        }
    }

    #[test]
    fn the_gate_s_reply_is_read() {
        let table = [
            ((0, 0), Some(Admit::Run)),
            ((1, 7), Some(Admit::Defer { slot_ms: 7 })),
            (
                (2, 9),
                Some(Admit::Park {
                    first_lease_end_ms: 9,
                }),
            ),
            ((3, 0), None),
        ];
        for ((code, at), want) in table {
            assert_eq!(Admit::from_reply(code, at), want, "{code}");
        }
    }

    #[test]
    fn an_empty_flow_is_left_out_of_the_envelope() {
        assert!(Flow::default().is_empty());
        let f = Flow {
            rate_slot: Some(1),
            ..Flow::default()
        };
        assert!(!f.is_empty());
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"rate_slot":1}"#);
    }
}
