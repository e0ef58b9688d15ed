//! The registry of live workers: every worker beats once a second, writing
//! its last beat (Redis's own clock, so pods' clocks do not matter) in the
//! sorted set [`keys::WORKERS`] and what it is in [`keys::worker`] (with a
//! TTL of a few beats). A worker whose last beat is older than
//! [`WorkerLiveness::dead_after`] is dead: live workers take its tasks over
//! at once (see `worker::takeover_loop`) instead of waiting for their
//! visibility timeout. `stats` and the dashboard read the same registry.

use crate::{Broker, Result};
use pym_core::keys;
use redis::Script;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use std::time::Duration;

/// What a worker says of itself at each beat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Consumer name in the queues' groups.
    pub name: String,
    /// Kubernetes pod (`$HOSTNAME`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub queues: Vec<String>,
    pub concurrency: usize,
    /// Tasks held at the last beat (fetched, not yet settled).
    pub in_flight: usize,
    /// Start time, ms since the epoch.
    pub started_at: u64,
    /// pym version of the worker.
    pub version: String,
    /// Last beat, ms since the epoch (Redis's clock); set on read.
    #[serde(default)]
    pub last_beat: u64,
}

/// When a worker counts as dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLiveness {
    /// How often a worker beats.
    pub beat_every: Duration,
    /// A worker whose last beat is older than this is dead.
    pub dead_after: Duration,
}

impl Default for WorkerLiveness {
    fn default() -> Self {
        WorkerLiveness {
            beat_every: Duration::from_secs(1),
            dead_after: Duration::from_secs(3),
        }
    }
}

/// Registry entries this old are removed by any worker (a dead worker's
/// tasks have long been taken over by then).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Record a beat of ARGV[1] at Redis's time; return that time (ms).
static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
return now
"#,
    )
});

/// Every worker with its last beat, and Redis's time (ms).
static ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {now, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
"#,
    )
});

/// Beat for `info` (its `last_beat` is ignored); the info key lives for
/// `ttl`. Returns Redis's time of the beat (ms).
pub async fn beat(broker: &Broker, info: &WorkerInfo, ttl: Duration) -> Result<u64> {
    let now: u64 = BEAT
        .key(keys::WORKERS)
        .arg(&info.name)
        .invoke_async(&mut broker.conn())
        .await?;
    let json = serde_json::to_string(info).expect("worker info serialises");
    let _: () = redis::cmd("SET")
        .arg(keys::worker(&info.name))
        .arg(json)
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .query_async(&mut broker.conn())
        .await?;
    Ok(now)
}

/// Every registered worker's last beat, and Redis's time (ms).
pub async fn last_beats(broker: &Broker) -> Result<(u64, Vec<(String, u64)>)> {
    last_beats_on(&mut broker.conn()).await
}

/// [`last_beats`] on a connection of one's own (the operator's).
pub async fn last_beats_on(conn: &mut impl ConnectionLike) -> Result<(u64, Vec<(String, u64)>)> {
    let (now, flat): (u64, Vec<(String, f64)>) = ALL.key(keys::WORKERS).invoke_async(conn).await?;
    Ok((now, flat.into_iter().map(|(n, s)| (n, s as u64)).collect()))
}

/// The live workers, as they last described themselves, by name.
pub async fn live(broker: &Broker, liveness: WorkerLiveness) -> Result<Vec<WorkerInfo>> {
    live_on(&mut broker.conn(), liveness).await
}

/// [`live`] on a connection of one's own (the operator's).
pub async fn live_on(
    conn: &mut impl ConnectionLike,
    liveness: WorkerLiveness,
) -> Result<Vec<WorkerInfo>> {
    let (now, mut beats) = last_beats_on(conn).await?;
    beats.retain(|(_, last)| !is_dead(now, *last, liveness.dead_after));
    if beats.is_empty() {
        return Ok(Vec::new());
    }
    // One round trip for every live worker's description: a pipeline of
    // GETs, not an MGET, as the keys hash to different Cluster slots.
    let mut get = redis::pipe();
    for (name, _) in &beats {
        get.cmd("GET").arg(keys::worker(name));
    }
    let infos: Vec<Option<String>> = get.query_async(conn).await?;
    let mut out: Vec<WorkerInfo> = beats
        .iter()
        .zip(infos)
        .filter_map(|((_, last), json)| {
            let mut info = serde_json::from_str::<WorkerInfo>(&json?).ok()?;
            info.last_beat = *last;
            Some(info)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Remove `name` from the registry (a worker that stopped cleanly, or one
/// dead for [`FORGET_AFTER`]).
pub async fn forget(broker: &Broker, name: &str) -> Result<()> {
    let _: () = redis::pipe()
        .cmd("ZREM")
        .arg(keys::WORKERS)
        .arg(name)
        .ignore()
        .cmd("DEL")
        .arg(keys::worker(name))
        .ignore()
        .query_async(&mut broker.conn())
        .await?;
    Ok(())
}

/// Whether a worker last seen at `last` (ms) is dead at `now` (ms).
pub fn is_dead(now: u64, last: u64, dead_after: Duration) -> bool {
    now.saturating_sub(last) > dead_after.as_millis() as u64
}

/// What to do about the other workers, from their last beats: whose tasks
/// to take over (dead ones) and which entries to forget (dead for
/// [`FORGET_AFTER`]). `me` is never in either.
pub fn verdicts(
    me: &str,
    now: u64,
    beats: &[(String, u64)],
    dead_after: Duration,
) -> (Vec<String>, Vec<String>) {
    let mut dead = Vec::new();
    let mut forget = Vec::new();
    for (name, last) in beats {
        if name == me || !is_dead(now, *last, dead_after) {
            continue;
        }
        dead.push(name.clone());
        if is_dead(now, *last, FORGET_AFTER) {
            forget.push(name.clone());
        }
    }
    (dead, forget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_after_a_silence_longer_than_the_limit() {
        let limit = Duration::from_secs(3);
        // (now, last beat, dead)
        let table = [
            (10_000, 10_000, false),
            (10_000, 7_000, false),
            (10_000, 6_999, true),
            (10_000, 0, true),
            // a beat stamped after `now` (read racing a beat): alive
            (10_000, 10_500, false),
        ];
        for (now, last, want) in table {
            assert_eq!(is_dead(now, last, limit), want, "{now} {last}");
        }
    }

    #[test]
    fn verdicts_skip_me_and_the_living() {
        let beats = vec![
            ("me".to_string(), 0),
            ("alive".to_string(), 999_000),
            ("dead".to_string(), 990_000),
            ("long-dead".to_string(), 1_000),
        ];
        let (dead, forget) = verdicts("me", 1_000_000, &beats, Duration::from_secs(3));
        assert_eq!(dead, ["dead", "long-dead"]);
        assert_eq!(forget, ["long-dead"]);
    }
}
