//! Periodic tasks in Redis: each tick fires exactly once however many
//! workers run, with Redis as the only coordinator.
//!
//! - [`upsert`]: at worker start, each schedule is written by task name
//!   (`pym:{q}:schedules`), so a deploy replaces it and never duplicates
//!   it; a new or changed schedule starts from now (no back-fill).
//! - [`fire`]: one compare-and-set script per queue. It fires a tick only
//!   if it is later than the last tick recorded for the schedule, records
//!   it and enqueues the tick's task in the same script: two workers (or
//!   twenty) asking for the same tick enqueue it once. The task id is
//!   derived from (schedule, tick) ([`tick_id`]).
//! - `pym:{q}:schedules:next` holds each enabled schedule's next fire time,
//!   which the operator's autoscaler reads ([`next_tick`]) to wake a worker
//!   when none runs; [`list`] is what `stats` shows.
//!
//! Which pending ticks fire is decided by [`pym_schedule::plan`] (the
//! missed-tick policy); the worker's loop is `worker/schedule_loop.rs`.

use crate::envelope::Envelope;
use crate::{Broker, Result};
use pym_core::keys::{self, QueueKeys, ScheduleKeys};
use pym_core::{Context, Priority};
use pym_schedule::Resolved;
use redis::Script;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use uuid::Uuid;

pub use pym_schedule::{
    Missed, Override, Overrides, Periodic, Resolved as ResolvedSchedule, Schedule, ScheduleError,
    Tick, parse_cron, parse_overrides, parse_tz, resolve,
};

/// A schedule as recorded in `pym:{q}:schedules`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleDef {
    pub cron: String,
    pub tz: String,
    pub missed: String,
    pub enabled: bool,
}

impl ScheduleDef {
    pub fn of(r: &Resolved) -> Self {
        ScheduleDef {
            cron: r.schedule.expr().to_owned(),
            tz: r.schedule.tz().to_owned(),
            missed: r.missed.to_string(),
            enabled: r.enabled,
        }
    }
}

/// KEYS: defs, last, next. ARGV: name, definition JSON, now ms, next ms
/// (-1: disabled). A new or changed definition starts from now.
static UPSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old ~= ARGV[2] or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
if tonumber(ARGV[4]) >= 0 then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if old == ARGV[2] then return 0 end
return 1
"#,
    )
});

/// KEYS: last, fired, next, ready stream. ARGV: name, tick, message (""
/// drops the tick), next tick (-1: none), message field. Fires only a tick
/// later than the last one recorded; returns 1 if it did.
static FIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if last >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[4], '*', ARGV[5], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
if tonumber(ARGV[4]) >= 0 then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
return 1
"#,
    )
});

/// The id of the task of `name`'s tick `tick`: a UUIDv7 whose time is the
/// tick and whose random bits come from the name, so a tick has one id.
pub fn tick_id(name: &str, tick: u64) -> Uuid {
    let digest = Sha256::digest(name.as_bytes());
    let mut rand = [0u8; 10];
    rand.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(tick, &rand).into_uuid()
}

/// The envelope of one tick of a periodic task: no caller, the tick as the
/// argument if the task takes it (else `null`).
pub fn tick_envelope(r: &Resolved, queue: &str, priority: Priority, tick: u64) -> Envelope {
    let args = if r.takes_tick {
        serde_json::to_string(&Tick(tick)).expect("a number serialises")
    } else {
        "null".to_owned()
    };
    let raw = RawValue::from_string(args).expect("valid JSON");
    let mut env = Envelope::new(&r.name, queue, priority, raw, Context::default());
    env.id = tick_id(&r.name, tick);
    env
}

/// Writes the schedule `r` of `queue` by name; its next tick after `now`
/// goes to the next-fire set (removed if disabled). `true` if it was new
/// or changed (then it starts from `now`).
pub async fn upsert(broker: &Broker, queue: &str, r: &Resolved, now: u64) -> Result<bool> {
    broker.register_queue(queue).await?;
    let sk = ScheduleKeys::new(queue);
    let def = serde_json::to_string(&ScheduleDef::of(r)).expect("a definition serialises");
    let next = match r.enabled {
        true => r.schedule.next_after(now).map_or(-1, |n| n as i64),
        false => -1,
    };
    let changed: i64 = UPSERT
        .key(&sk.defs)
        .key(&sk.last)
        .key(&sk.next)
        .arg(&r.name)
        .arg(def)
        .arg(now)
        .arg(next)
        .invoke_async(&mut broker.conn())
        .await?;
    Ok(changed == 1)
}

/// Removes the schedules of `queue` other than `keep` (periodic tasks
/// removed from the code), so no worker is woken for them.
pub async fn prune(broker: &Broker, queue: &str, keep: &[&str]) -> Result<Vec<String>> {
    let sk = ScheduleKeys::new(queue);
    let mut conn = broker.conn();
    let names: Vec<String> = redis::cmd("HKEYS")
        .arg(&sk.defs)
        .query_async(&mut conn)
        .await?;
    let gone: Vec<String> = names
        .into_iter()
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    if !gone.is_empty() {
        let mut pipe = redis::pipe();
        for k in [&sk.defs, &sk.last, &sk.fired] {
            pipe.cmd("HDEL").arg(k).arg(&gone).ignore();
        }
        pipe.cmd("ZREM").arg(&sk.next).arg(&gone).ignore();
        let _: () = pipe.query_async(&mut conn).await?;
    }
    Ok(gone)
}

/// The last tick decided of each of `names` (`None`: not recorded).
pub async fn last_ticks(broker: &Broker, queue: &str, names: &[&str]) -> Result<Vec<Option<u64>>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    Ok(redis::cmd("HMGET")
        .arg(ScheduleKeys::new(queue).last)
        .arg(names)
        .query_async(&mut broker.conn())
        .await?)
}

/// Decides tick `tick` of `r` (on `queue`, at `priority`): enqueue it
/// (`run`) or drop it, unless a tick as late was decided already. `next`:
/// the schedule's following tick. `true` if this call decided it.
pub async fn fire(
    broker: &Broker,
    queue: &str,
    (r, priority): (&Resolved, Priority),
    tick: u64,
    run: bool,
    next: Option<u64>,
) -> Result<bool> {
    let sk = ScheduleKeys::new(queue);
    let message = match run {
        true => broker
            .signer()
            .seal_owned(tick_envelope(r, queue, priority, tick)),
        false => String::new(),
    };
    let fired: i64 = FIRE
        .key(&sk.last)
        .key(&sk.fired)
        .key(&sk.next)
        .key(QueueKeys::new(queue).ready(priority))
        .arg(&r.name)
        .arg(tick)
        .arg(message)
        .arg(next.map_or(-1, |n| n as i64))
        .arg(keys::FIELD_MESSAGE)
        .invoke_async(&mut broker.conn())
        .await?;
    Ok(fired == 1)
}

/// The soonest next tick of `queue`'s enabled schedules (ms since the
/// epoch), for the autoscaler.
pub async fn next_tick<C: ConnectionLike + Send>(conn: &mut C, queue: &str) -> Result<Option<u64>> {
    let head: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(ScheduleKeys::new(queue).next)
        .arg(0)
        .arg(0)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    Ok(head.first().map(|(_, s)| *s as u64))
}

/// One schedule as `stats` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    pub queue: String,
    pub task: String,
    #[serde(flatten)]
    pub def: ScheduleDef,
    /// Next fire time (ms since the epoch); `None` when disabled.
    pub next_ms: Option<u64>,
    /// The tick last enqueued (ms since the epoch).
    pub last_run_ms: Option<u64>,
}

/// Definitions, last runs and next ticks, each by task name.
type Pairs = (
    Vec<(String, String)>,
    Vec<(String, u64)>,
    Vec<(String, f64)>,
);

/// The schedules of `queue`, by task name.
pub async fn list<C: ConnectionLike + Send>(
    conn: &mut C,
    queue: &str,
) -> Result<Vec<ScheduleInfo>> {
    let sk = ScheduleKeys::new(queue);
    let (defs, fired, next): Pairs = redis::pipe()
        .cmd("HGETALL")
        .arg(&sk.defs)
        .cmd("HGETALL")
        .arg(&sk.fired)
        .cmd("ZRANGE")
        .arg(&sk.next)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    let mut out: Vec<ScheduleInfo> = defs
        .into_iter()
        .filter_map(|(task, json)| {
            let def = serde_json::from_str(&json).ok()?;
            Some(ScheduleInfo {
                queue: queue.to_owned(),
                next_ms: next
                    .iter()
                    .find(|(n, _)| *n == task)
                    .map(|(_, s)| *s as u64),
                last_run_ms: fired.iter().find(|(n, _)| *n == task).map(|(_, t)| *t),
                task,
                def,
            })
        })
        .collect();
    out.sort_by(|a, b| a.task.cmp(&b.task));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_has_one_id_made_of_its_time_and_schedule() {
        let a = tick_id("nightly", 1_772_330_400_000);
        assert_eq!(a, tick_id("nightly", 1_772_330_400_000));
        assert_ne!(a, tick_id("nightly", 1_772_330_401_000));
        assert_ne!(a, tick_id("hourly", 1_772_330_400_000));
        assert_eq!(a.get_version_num(), 7);
        let (secs, nanos) = a.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            1_772_330_400_000
        );
    }
}
