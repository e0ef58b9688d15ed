//! Delayed tasks: kept broker-side in a sorted set scored by due time and
//! promoted into the ready streams atomically by a script, by a promoter
//! that sleeps exactly until the next due time (woken early through the
//! signal list when an earlier task is scheduled). Nothing is held in worker
//! memory: a promoter that dies loses nothing.

use crate::{Broker, Result};
use pym_core::keys::{self, QueueKeys};
use redis::Script;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Move up to ARGV[1] due members into their ready streams.
/// Returns {promoted, next due ms or -1, server now ms}.
static PROMOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local key = KEYS[2 + (tonumber(string.sub(m, 1, 1)) or 1)] or KEYS[3]
  redis.call('XADD', key, '*', ARGV[2], string.sub(m, 2))
  redis.call('ZREM', KEYS[1], m)
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if head[2] then next_due = tonumber(head[2]) end
return {#due, next_due, now}
"#,
    )
});

/// Most members moved by one script call (keeps each call short).
pub const PROMOTE_BATCH: usize = 500;
/// Longest sleep between promotions when nothing is due sooner.
pub const MAX_IDLE: Duration = Duration::from_secs(5);

/// Result of one promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promoted {
    pub count: usize,
    /// Due time of the earliest remaining member (server ms).
    pub next_due_ms: Option<u64>,
    /// Server time of the promotion (ms).
    pub now_ms: u64,
}

impl Promoted {
    /// How long to sleep before the next promotion.
    pub fn wait(&self) -> Duration {
        if self.count >= PROMOTE_BATCH {
            return Duration::ZERO;
        }
        match self.next_due_ms {
            Some(due) => Duration::from_millis(due.saturating_sub(self.now_ms)).min(MAX_IDLE),
            None => MAX_IDLE,
        }
    }
}

/// Promote due members of one queue now.
pub async fn promote(broker: &Broker, qk: &QueueKeys) -> Result<Promoted> {
    let (count, next_due, now): (usize, i64, u64) = PROMOTE
        .key(&qk.delayed)
        .key(&qk.ready[0])
        .key(&qk.ready[1])
        .key(&qk.ready[2])
        .arg(PROMOTE_BATCH)
        .arg(keys::FIELD_MESSAGE)
        .invoke_async(&mut broker.conn())
        .await?;
    Ok(Promoted {
        count,
        next_due_ms: u64::try_from(next_due).ok(),
        now_ms: now,
    })
}

/// Run the promoter of one queue until `shutdown`.
pub async fn run_promoter(broker: Broker, queue: String, shutdown: CancellationToken) {
    let qk = QueueKeys::new(&queue);
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen_signal(
        broker.clone(),
        qk.signal.clone(),
        wake.clone(),
        shutdown.clone(),
    ));
    let mut backoff = crate::fetch::Reconnect::default();
    while !shutdown.is_cancelled() {
        let wait = match promote(&broker, &qk).await {
            Ok(p) => {
                backoff.reset();
                if p.count > 0 {
                    tracing::debug!(queue, promoted = p.count, "promoted delayed tasks");
                }
                p.wait()
            }
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(queue, error = %e, retry_in = ?d, "promoting delayed tasks failed");
                d
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = shutdown.cancelled() => {}
        }
    }
    listener.abort();
}

/// Block on the signal list and wake the promoter when a token arrives.
async fn listen_signal(
    broker: Broker,
    key: String,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = crate::fetch::Reconnect::default();
    while !shutdown.is_cancelled() {
        let generation = broker.master_generation();
        let mut conn = match broker.blocking_conn(&key).await {
            Ok(c) => c,
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "signal connection failed");
                tokio::time::sleep(d).await;
                continue;
            }
        };
        backoff.reset();
        loop {
            let r: redis::RedisResult<Option<(String, String)>> = redis::cmd("BLPOP")
                .arg(&key)
                .arg(MAX_IDLE.as_secs_f64())
                .query_async(&mut conn)
                .await;
            match r {
                Ok(Some(_)) => wake.notify_one(),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "signal wait failed; reconnecting");
                    break;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            if broker.master_generation() != generation {
                // The master moved (Sentinel): wait on the new one.
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_next_due_capped() {
        let p = |count, next, now| Promoted {
            count,
            next_due_ms: next,
            now_ms: now,
        };
        assert_eq!(p(0, Some(1_250), 1_000).wait(), Duration::from_millis(250));
        assert_eq!(p(0, None, 1_000).wait(), MAX_IDLE);
        assert_eq!(p(0, Some(100_000), 1_000).wait(), MAX_IDLE);
        assert_eq!(p(PROMOTE_BATCH, Some(5_000), 1_000).wait(), Duration::ZERO);
        assert_eq!(p(1, Some(900), 1_000).wait(), Duration::ZERO);
    }
}
