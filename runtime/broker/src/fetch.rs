//! Fetch: read batches of ready tasks through the queue's consumer group.
//! Each delivered entry stays in the group's pending list, owned by this
//! consumer, until it is acked — a worker that dies loses nothing.

use crate::Result;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use pym_core::keys::{self, QueueKeys};
use redis::Value;
use redis::aio::ConnectionLike;
use std::time::Duration;

/// One delivered entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Ready stream the entry came from.
    pub stream: String,
    /// Stream entry id.
    pub id: String,
    /// The signed message, `None` if the entry has no message field.
    pub message: Option<String>,
    /// Times delivered (1 on the first delivery).
    pub deliveries: u64,
}

/// Create the consumer group of every ready stream of `queue` (idempotent).
/// Groups start at the beginning, so tasks enqueued before any worker ran are
/// delivered too.
pub async fn ensure_groups<C: ConnectionLike + Send>(conn: &mut C, queue: &str) -> Result<()> {
    let qk = QueueKeys::new(queue);
    for stream in &qk.ready {
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(keys::GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match r {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// True if the error says a stream or group is missing (e.g. Redis restarted
/// without persistence): the caller should run [`ensure_groups`] again.
pub fn is_nogroup(e: &crate::BrokerError) -> bool {
    matches!(e, crate::BrokerError::Redis(r) if r.code() == Some("NOGROUP"))
}

/// Read up to `count` new entries from `streams`, strictly in their order
/// (highest priority first), without blocking: one plain XREADGROUP per
/// stream, each asking only for what the streams before it left, stopping
/// once `count` is reached. Plain commands, not a script: a Lua script would
/// copy every entry into Lua tables and back, which costs Redis about three
/// times the read itself.
pub async fn read_now<C: ConnectionLike + Send>(
    conn: &mut C,
    consumer: &str,
    streams: &[String],
    count: usize,
) -> Result<Vec<Delivery>> {
    let mut out = Vec::new();
    for s in streams {
        let left = count.saturating_sub(out.len());
        if left == 0 {
            break;
        }
        let v: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(keys::GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(left)
            .arg("STREAMS")
            .arg(s)
            .arg(">")
            .query_async(conn)
            .await?;
        parse_read_reply(v, &mut out);
    }
    Ok(out)
}

/// XREADGROUP new entries from `streams`, waiting up to `block` when
/// nothing is ready (use a dedicated connection: it stalls its socket).
pub async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    consumer: &str,
    streams: &[String],
    count: usize,
    block: Option<Duration>,
) -> Result<Vec<Delivery>> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(keys::GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if let Some(b) = block {
        cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
    }
    cmd.arg("STREAMS").arg(streams);
    for _ in streams {
        cmd.arg(">");
    }
    let v: Value = cmd.query_async(conn).await?;
    let mut out = Vec::new();
    parse_read_reply(v, &mut out);
    // Keep priority order: the reply's stream order is not guaranteed.
    out.sort_by_key(|d| streams.iter().position(|s| *s == d.stream));
    Ok(out)
}

/// Parse an XREADGROUP reply (RESP2 array or RESP3 map) into deliveries.
pub(crate) fn parse_read_reply(v: Value, out: &mut Vec<Delivery>) {
    let pairs: Vec<(Value, Value)> = match v {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let entries = kv.pop()?;
                    let key = kv.pop()?;
                    Some((key, entries))
                }
                _ => None,
            })
            .collect(),
        Value::Map(m) => m,
        _ => return,
    };
    for (key, entries) in pairs {
        let Some(stream) = as_string(key) else {
            continue;
        };
        if let Value::Array(entries) = entries {
            for e in entries {
                if let Some((id, message)) = parse_entry(e) {
                    out.push(Delivery {
                        stream: stream.clone(),
                        id,
                        message,
                        deliveries: 1,
                    });
                }
            }
        }
    }
}

/// `[id, [field, value, ...]]` → (id, value of the message field).
pub(crate) fn parse_entry(e: Value) -> Option<(String, Option<String>)> {
    let Value::Array(mut parts) = e else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    let id = as_string(parts.pop()?)?;
    let mut message = None;
    if let Value::Array(fv) = fields {
        let mut it = fv.into_iter();
        while let (Some(f), Some(v)) = (it.next(), it.next()) {
            if as_string(f).as_deref() == Some(keys::FIELD_MESSAGE) {
                message = as_string(v);
            }
        }
    }
    Some((id, message))
}

pub(crate) fn as_string(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Exponential reconnect delay with jitter: 50 ms doubling to 5 s (plus up
/// to as much again of jitter), forever; [`Reconnect::reset`] after a success.
#[derive(Debug)]
pub struct Reconnect {
    delays: ExponentialBackoff,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            delays: Self::policy().build(),
        }
    }
}

impl Reconnect {
    /// The schedule, for `backon`'s `Retryable::retry` too.
    pub fn policy() -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(5))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
    }

    pub fn next_delay(&mut self) -> Duration {
        self.delays
            .next()
            .expect("a schedule without max times never ends")
    }

    pub fn reset(&mut self) {
        self.delays = Self::policy().build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_resp2_reply_and_skips_junk() {
        let v = Value::Array(vec![Value::Array(vec![
            bulk("s1"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("m"), bulk("msg")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Array(vec![bulk("x"), bulk("y")])]),
                Value::Array(vec![bulk("3-0"), Value::Nil]),
                Value::Int(7),
            ]),
        ])]);
        let mut out = vec![];
        parse_read_reply(v, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].message.as_deref(), Some("msg"));
        assert_eq!(out[1].message, None);
        assert_eq!(out[2].id, "3-0");
        let mut none = vec![];
        parse_read_reply(Value::Nil, &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn reconnect_backs_off_to_a_cap() {
        let mut r = Reconnect::default();
        let first = r.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(r.next_delay() <= Duration::from_secs(10));
        }
        r.reset();
        assert!(r.next_delay() < Duration::from_millis(100));
    }
}
