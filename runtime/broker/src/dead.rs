//! Dead letters: tasks that will not run again by themselves, kept with the
//! reason, the last error, attempts and timestamps, until listed, replayed or
//! purged (through this API or `<service> dead ...`).

use crate::envelope::{self, now_ms};
use crate::{Broker, BrokerError, Result};
use pym_core::Priority;
use pym_core::keys::{self, QueueKeys};
use redis::Script;
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Why a task was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The message is not `<signature>.<json>`, or has no message field.
    Malformed,
    /// The signature does not match: forged or tampered with.
    BadSignature,
    /// The envelope JSON does not decode.
    Undecodable,
    /// Envelope written by an incompatible version of pym.
    UnsupportedVersion,
    /// No task of that name is registered in this worker.
    UnknownTask,
    /// The arguments do not have the shape of the task's parameters.
    BadArgs,
    /// The task failed on every attempt.
    RetriesExhausted,
    /// The task returned a fatal (non-retryable) error.
    Fatal,
    /// Delivered too many times without finishing (its workers crashed).
    TooManyDeliveries,
    /// The task requires a fresh token and the caller's token expired.
    TokenExpired,
    /// The message was signed for another queue than the one it was read
    /// from: copied (replayed) across queues.
    WrongQueue,
    /// Not started before its expiry (`expires_in_secs`, or the spawn's
    /// [`crate::Expiry`]).
    Expired,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::Undecodable => "undecodable",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::UnknownTask => "unknown_task",
            Reason::BadArgs => "bad_args",
            Reason::RetriesExhausted => "retries_exhausted",
            Reason::Fatal => "fatal",
            Reason::TooManyDeliveries => "too_many_deliveries",
            Reason::TokenExpired => "token_expired",
            Reason::WrongQueue => "wrong_queue",
            Reason::Expired => "expired",
        }
    }

    /// Whether the message of a dead letter of this reason speaks for the
    /// task it names: its signature was verified, and it was read from its
    /// own queue. Only then is the dead letter keyed by its task id; else
    /// by its stream entry id, so that a forged or copied message can never
    /// replace the dead letter of a real task.
    pub fn keyed_by_task(self) -> bool {
        !matches!(
            self,
            Reason::Malformed | Reason::BadSignature | Reason::WrongQueue
        )
    }
}

impl From<&envelope::OpenError> for Reason {
    fn from(e: &envelope::OpenError) -> Self {
        match e {
            envelope::OpenError::Malformed => Reason::Malformed,
            envelope::OpenError::BadSignature => Reason::BadSignature,
            envelope::OpenError::Undecodable(_) => Reason::Undecodable,
            envelope::OpenError::UnsupportedVersion(_) => Reason::UnsupportedVersion,
        }
    }
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The task id; `entry-<stream id>` for a message without one, or one
    /// that cannot speak for its task (unverified signature, wrong queue:
    /// see [`Reason::keyed_by_task`]).
    pub id: String,
    pub queue: String,
    /// Task name, if the message could be read and its signature verified.
    pub task: Option<String>,
    pub reason: Reason,
    /// Human-readable error.
    pub error: String,
    /// Attempts made (runs that started).
    pub attempts: u32,
    /// When first enqueued (ms since the epoch), if known.
    pub created_at: Option<u64>,
    /// When dead-lettered (ms since the epoch).
    pub failed_at: u64,
    /// The original message, exactly as received.
    pub message: String,
    /// The caller's user id, from a verified message (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The request id of the request that spawned the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl DeadLetter {
    /// A dead letter for `message` (stream entry `entry_id`): the task
    /// name, id and creation time are read from it only when its signature
    /// was verified (`reason` says so); the id only when it was also read
    /// from its own queue.
    pub fn new(
        queue: &str,
        entry_id: &str,
        message: &str,
        reason: Reason,
        error: String,
        attempts: u32,
    ) -> Self {
        let verified = !matches!(reason, Reason::Malformed | Reason::BadSignature);
        let env = if verified {
            envelope::peek(message)
        } else {
            None
        };
        DeadLetter {
            id: env
                .as_ref()
                .filter(|_| reason.keyed_by_task())
                .map(|e| e.id.to_string())
                .unwrap_or_else(|| format!("entry-{entry_id}")),
            queue: queue.to_owned(),
            task: env.as_ref().map(|e| e.task.clone()),
            reason,
            error,
            attempts,
            created_at: env.as_ref().map(|e| e.created_at),
            failed_at: now_ms(),
            message: message.to_owned(),
            user_id: env.as_ref().and_then(|e| e.ctx.user_id.clone()),
            request_id: env.as_ref().and_then(|e| e.ctx.request_id.clone()),
        }
    }

    /// What the service's error reporter is told of this dead letter.
    pub fn report(&self) -> pym_core::ErrorReport {
        pym_core::ErrorReport {
            source: pym_core::ErrorSource::DeadLetter {
                task: self.task.clone(),
                queue: self.queue.clone(),
                reason: self.reason.label().to_string(),
                attempts: self.attempts,
            },
            error_id: self.id.clone(),
            code: self.reason.label().to_string(),
            message: self.error.clone(),
            user_id: self.user_id.clone(),
            request_id: self.request_id.clone(),
        }
    }

    pub(crate) fn add_to_pipe(&self, pipe: &mut redis::Pipeline, qk: &QueueKeys) {
        let json = serde_json::to_string(self).expect("dead letter serialises");
        pipe.cmd("HSET")
            .arg(&qk.dead)
            .arg(&self.id)
            .arg(json)
            .ignore();
        pipe.cmd("ZADD")
            .arg(&qk.dead_index)
            .arg(self.failed_at)
            .arg(&self.id)
            .ignore();
    }
}

/// Number of dead letters of `queue`.
pub async fn count<C: ConnectionLike + Send>(conn: &mut C, queue: &str) -> Result<u64> {
    Ok(redis::cmd("ZCARD")
        .arg(QueueKeys::new(queue).dead_index)
        .query_async(conn)
        .await?)
}

/// Dead letters of `queue`, newest first, `offset`..`offset+limit`.
pub async fn list<C: ConnectionLike + Send>(
    conn: &mut C,
    queue: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<DeadLetter>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let qk = QueueKeys::new(queue);
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(&qk.dead_index)
        .arg(offset)
        .arg(offset + limit - 1)
        .arg("REV")
        .query_async(conn)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(&qk.dead)
        .arg(&ids)
        .query_async(conn)
        .await?;
    rows.into_iter()
        .flatten()
        .map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| BrokerError::Invalid(format!("corrupt dead letter record: {e}")))
        })
        .collect()
}

/// Fetch one dead letter.
pub async fn get<C: ConnectionLike + Send>(
    conn: &mut C,
    queue: &str,
    id: &str,
) -> Result<Option<DeadLetter>> {
    let j: Option<String> = redis::cmd("HGET")
        .arg(QueueKeys::new(queue).dead)
        .arg(id)
        .query_async(conn)
        .await?;
    j.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| BrokerError::Invalid(format!("corrupt dead letter record: {e}")))
    })
    .transpose()
}

/// Remove a dead letter and enqueue its message, if nobody else did first.
static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('XADD', KEYS[3], '*', ARGV[2], ARGV[3])
  return 1
end
return 0
"#,
    )
});

/// Put dead letter `id` of `queue` back as a ready task, with its attempt
/// count reset. Messages that do not verify (forged, undecodable) cannot be
/// replayed: purge them instead.
pub async fn replay(broker: &Broker, queue: &str, id: &str) -> Result<bool> {
    let mut conn = broker.conn();
    let Some(d) = get(&mut conn, queue, id).await? else {
        return Ok(false);
    };
    let mut env = broker.signer().open(&d.message).map_err(|e| {
        BrokerError::Invalid(format!(
            "dead letter {id} cannot be replayed: {e}; remove it with `dead purge --id {id}`"
        ))
    })?;
    // A shard's letters were signed for the logical queue.
    if env.queue != keys::logical(queue) {
        return Err(BrokerError::Invalid(format!(
            "dead letter {id} was signed for queue {:?}, not {queue:?}: it cannot be replayed here; \
             remove it with `dead purge --id {id}`",
            env.queue
        )));
    }
    env.attempt = 0;
    env.eta = None;
    let priority: Priority = env.priority;
    let message = broker.signer().seal(&env);
    let qk = QueueKeys::new(queue);
    crate::fetch::ensure_groups(&mut conn, queue).await?;
    let moved: i64 = REPLAY
        .key(&qk.dead)
        .key(&qk.dead_index)
        .key(qk.ready(priority))
        .arg(id)
        .arg(keys::FIELD_MESSAGE)
        .arg(message)
        .invoke_async(&mut conn)
        .await?;
    Ok(moved == 1)
}

/// Replay every replayable dead letter of `queue`; returns (replayed, refused).
pub async fn replay_all(broker: &Broker, queue: &str) -> Result<(u64, u64)> {
    let (mut ok, mut refused) = (0, 0);
    let mut offset = 0;
    loop {
        let page = list(&mut broker.conn(), queue, offset, 500).await?;
        if page.is_empty() {
            break;
        }
        for d in &page {
            match replay(broker, queue, &d.id).await {
                Ok(true) => ok += 1,
                Ok(false) => {}
                Err(BrokerError::Invalid(_)) => {
                    refused += 1;
                    offset += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok((ok, refused))
}

/// Delete one dead letter. Returns whether it existed.
pub async fn purge<C: ConnectionLike + Send>(conn: &mut C, queue: &str, id: &str) -> Result<bool> {
    let qk = QueueKeys::new(queue);
    let (n, _): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("HDEL")
        .arg(&qk.dead)
        .arg(id)
        .cmd("ZREM")
        .arg(&qk.dead_index)
        .arg(id)
        .query_async(conn)
        .await?;
    Ok(n == 1)
}

/// Delete the dead letters of `queue` older than `before_ms` (all with
/// `u64::MAX`). Returns how many were deleted.
pub async fn purge_before<C: ConnectionLike + Send>(
    conn: &mut C,
    queue: &str,
    before_ms: u64,
) -> Result<u64> {
    let qk = QueueKeys::new(queue);
    let mut removed = 0;
    loop {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&qk.dead_index)
            .arg("-inf")
            .arg(format!("({before_ms}"))
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(1000)
            .query_async(conn)
            .await?;
        if ids.is_empty() {
            return Ok(removed);
        }
        let _: () = redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(&qk.dead)
            .arg(&ids)
            .ignore()
            .cmd("ZREM")
            .arg(&qk.dead_index)
            .arg(&ids)
            .ignore()
            .query_async(conn)
            .await?;
        removed += ids.len() as u64;
    }
}
