//! Sharded queues: a queue declared with `shards: N` is spread over N
//! queues of its own (shard 0 is the queue itself, shard i is `q#i`, see
//! [`pym_core::keys::shard`]), each with its own hash tag, so one hot queue
//! spreads over the masters of a Redis Cluster.
//!
//! - Producers pick a shard per task: round-robin per queue, or by a key
//!   ([`shard_of_key`]: the same key, the same shard).
//! - Every producer and worker records the count it declares in
//!   `pym:shards`, keeping the largest ([`record`]); a worker reads every
//!   shard up to the largest of its declared and the recorded count
//!   ([`layout`]), and statistics sum the recorded shards. Lowering N thus
//!   strands no task; to shrink a queue, drain it, then `HDEL pym:shards q`.
//! - Ordering: none across shards (tasks of one shard start in order of
//!   priority, then of arrival, as in an unsharded queue).

use crate::Result;
use pym_core::keys::{self, MAX_SHARDS};
use pym_core::queue_name::validate_queue_name;
use redis::Script;
use redis::aio::ConnectionLike;
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

/// Declared shard counts: queue → N (N ≥ 2; a queue not listed has one).
pub type Declared = BTreeMap<String, u16>;

/// Parses `queue=N[,queue=N...]` (the `PYM_QUEUE_SHARDS` form); an empty
/// string declares nothing. The error names the item and what is expected.
pub fn parse(spec: &str) -> Result<Declared, String> {
    let mut out = Declared::new();
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (queue, n) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}`: expected queue=N, e.g. images=3"))?;
        let n = n.trim().parse::<u16>().map_err(|_| {
            format!("`{item}`: the shard count must be a number from 1 to {MAX_SHARDS}")
        })?;
        declare(&mut out, queue.trim(), n)?;
    }
    Ok(out)
}

/// Adds `queue` with `n` shards to `declared`, checking both (a count of 1
/// is accepted and declares nothing).
pub fn declare(declared: &mut Declared, queue: &str, n: u16) -> Result<(), String> {
    validate_queue_name(queue).map_err(|e| format!("queue `{queue}`: {e}"))?;
    if !(1..=MAX_SHARDS).contains(&n) {
        return Err(format!(
            "queue `{queue}`: {n} shards; expected a number from 1 to {MAX_SHARDS}"
        ));
    }
    if declared.get(queue).is_some_and(|m| *m != n) {
        return Err(format!("queue `{queue}` is declared twice"));
    }
    if n > 1 {
        declared.insert(queue.to_owned(), n);
    }
    Ok(())
}

/// The shard of a task spawned with `key`: a stable hash of the key (CRC16,
/// as Redis Cluster's slots), so the tasks of one key keep their order.
pub fn shard_of_key(key: &[u8], n: u16) -> u16 {
    match n {
        0 | 1 => 0,
        n => crc16::State::<crc16::XMODEM>::calculate(key) % n,
    }
}

/// The shards a worker reads: those of each of `queues`, up to the larger
/// of the declared and the recorded count, shard 0 first, queue by queue.
pub fn layout(
    queues: &[String],
    declared: &Declared,
    recorded: &HashMap<String, u16>,
) -> Vec<String> {
    queues
        .iter()
        .flat_map(|q| {
            let n = count(declared.get(q), recorded.get(q));
            keys::shards(q, n)
        })
        .collect()
}

fn count(declared: Option<&u16>, recorded: Option<&u16>) -> u16 {
    (*declared.unwrap_or(&1))
        .max(*recorded.unwrap_or(&1))
        .clamp(1, MAX_SHARDS)
}

/// `HSET pym:shards queue n` unless a larger count is recorded.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
if cur < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"#,
    )
});

/// Records that `queue` has `n` shards (kept if a larger count is there).
pub async fn record<C: ConnectionLike + Send>(conn: &mut C, queue: &str, n: u16) -> Result<()> {
    let _: i64 = RECORD
        .key(keys::SHARDS)
        .arg(queue)
        .arg(n)
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// Every recorded shard count (values that are not counts are skipped).
pub async fn recorded<C: ConnectionLike + Send>(conn: &mut C) -> Result<HashMap<String, u16>> {
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::SHARDS)
        .query_async(conn)
        .await?;
    Ok(all
        .into_iter()
        .filter_map(|(q, n)| Some((q, n.parse::<u16>().ok()?.clamp(1, MAX_SHARDS))))
        .collect())
}

/// The recorded shard count of `queue` (1 when none is).
pub async fn recorded_of<C: ConnectionLike + Send>(conn: &mut C, queue: &str) -> Result<u16> {
    let n: Option<String> = redis::cmd("HGET")
        .arg(keys::SHARDS)
        .arg(queue)
        .query_async(conn)
        .await?;
    Ok(count(None, n.and_then(|n| n.parse().ok()).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_declarations_parse() {
        let d = |pairs: &[(&str, u16)]| -> Declared {
            pairs.iter().map(|(q, n)| (q.to_string(), *n)).collect()
        };
        let table = [
            ("", d(&[])),
            ("images=3", d(&[("images", 3)])),
            (" images = 3 , mail=2,", d(&[("images", 3), ("mail", 2)])),
            ("one=1", d(&[])),
            ("a=256", d(&[("a", 256)])),
        ];
        for (spec, want) in table {
            assert_eq!(parse(spec), Ok(want), "{spec:?}");
        }
    }

    #[test]
    fn bad_shard_declarations_say_what_is_expected() {
        let table = [
            ("images", "`images`: expected queue=N"),
            ("images=x", "a number from 1 to 256"),
            ("images=0", "0 shards; expected a number from 1 to 256"),
            ("images=257", "257 shards"),
            ("images=-1", "a number from 1 to 256"),
            ("q#1=2", "queue `q#1`"),
            ("=2", "queue ``"),
            ("a=2,a=3", "queue `a` is declared twice"),
        ];
        for (spec, want) in table {
            let err = parse(spec).expect_err(spec);
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn a_key_always_picks_the_same_shard_and_keys_spread() {
        assert_eq!(shard_of_key(b"user-1", 1), 0);
        assert_eq!(shard_of_key(b"user-1", 0), 0);
        assert_eq!(shard_of_key(b"user-1", 4), shard_of_key(b"user-1", 4));
        let mut seen = [0u32; 4];
        for i in 0..400 {
            seen[usize::from(shard_of_key(format!("user-{i}").as_bytes(), 4))] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
    }

    #[test]
    fn workers_read_up_to_the_largest_count_declared_or_recorded() {
        let queues = ["images".to_string(), "mail".to_string(), "sms".to_string()];
        let declared: Declared = [("images".to_string(), 3)].into();
        let recorded: HashMap<String, u16> =
            [("mail".to_string(), 2), ("images".to_string(), 2)].into();
        assert_eq!(
            layout(&queues, &declared, &recorded),
            ["images", "images#1", "images#2", "mail", "mail#1", "sms"]
        );
        assert_eq!(
            layout(&queues[2..], &Declared::new(), &HashMap::new()),
            ["sms"]
        );
    }
}
