//! The Redis key layout: the one definition shared by producers, workers,
//! the CLI and the operator's autoscaler.
//!
//! Every key of a queue carries the hash tag `{<queue>}`, so the scripts that
//! touch several of them stay valid on Redis Cluster.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `pym:queues` | set | names of every queue ever used |
//! | `pym:workers` | sorted set, score = last beat (ms, Redis's clock) | every worker that beat, by consumer name (`pym_broker::workers`) |
//! | `pym:worker:<name>` | string (JSON), with a TTL of a few beats | what that worker is: pod, queues, concurrency, tasks in flight, start, version |
//! | `pym:{q}:ready:high` / `:normal` / `:low` | stream, group `pym` | tasks ready to run; a delivered entry stays in the group's pending list (PEL) until acked, then it is deleted |
//! | `pym:{q}:delayed` | sorted set, score = due time (ms) | delayed tasks and retries; member = priority digit + message |
//! | `pym:{q}:signal` | list (≤ 1 element) | wakes a promoter when a new earliest delayed task arrives |
//! | `pym:{q}:dead` | hash, id → dead-letter JSON | dead letters |
//! | `pym:{q}:dead:index` | sorted set, score = time of death (ms) | dead-letter ids in order |
//! | `pym:{q}:processed:<id>` | string, with a TTL | a task of `replay_guard_secs` that succeeded; a delivery of that id is skipped |
//! | `pym:{q}:schedules` | hash, task name → schedule JSON | the periodic tasks of the queue as the workers declared them (upserted by name at worker start) |
//! | `pym:{q}:schedules:last` | hash, task name → tick (ms) | the last tick decided (fired or dropped by the missed policy): the compare-and-set of `pym_broker::schedule` |
//! | `pym:{q}:schedules:fired` | hash, task name → tick (ms) | the last tick enqueued (the last run, for `stats`) |
//! | `pym:{q}:schedules:next` | sorted set, score = next tick (ms) | enabled schedules by their next fire time (the operator's autoscaler wakes a worker for a due one) |
//! | `pym:{q}:task:<id>` | hash, with a TTL | the record of a task declared `track`: state, progress, result, error (`pym_broker::task_record`) |
//! | `pym:{q}:cancelled` | sorted set, score = time of the cancel (ms, Redis's clock) | ids of cancelled tasks, kept [`CANCEL_KEEP_MS`] (`pym_broker::cancel`) |
//! | `pym:shards` | hash, queue → shard count | queues declared with `shards: N` (N ≥ 2), the largest N declared |
//! | `pym:{q}:unique:<task>:<key>` | string = the holder's task id, with a TTL | the lock of a `unique` task's key ([`unique`]) |
//! | `pym:{q}:rate:<task>[:<key>]` | string = theoretical arrival time (ms), with a TTL | the GCRA state of a `rate` limit ([`rate`]) |
//! | `pym:{q}:cap:<task>[:<key>]:leases` | sorted set, score = lease end (ms) | the places of a `max_concurrency` cap held by running tasks ([`CapKeys`]) |
//! | `pym:{q}:cap:<task>[:<key>]:parked` | sorted set, score = time parked (ms) | delayed members of the tasks parked while the cap was full |
//! | `pym:caps` | hash, `<queue>` → the sum of its tasks' `max_concurrency`, present only when every task of the queue has one without a limit key | written by workers at start; the autoscaler reads it so it adds no worker a cap would leave idle |
//!
//! A sharded queue `q` of N shards is N queues of the layout above: shard 0
//! is `q` itself, shard i > 0 is `q#i` (keys `pym:{q#i}:...`), so each shard
//! has a hash tag of its own and lands on its own slot of a Redis Cluster.
//! Shard 0 being the queue itself means an unsharded queue is a queue of
//! one shard: declaring shards later moves no task. `#` is outside the
//! queue-name rule, so no queue is ever named like a shard.
//!
//! Stream entries have one field, [`FIELD_MESSAGE`], holding the signed
//! message (`<hmac>.<envelope json>`, see `pym_broker::envelope`).

use crate::Priority;

/// Consumer group of every ready stream.
pub const GROUP: &str = "pym";
/// The one field of a stream entry.
pub const FIELD_MESSAGE: &str = "m";
/// Set of known queue names.
pub const QUEUES: &str = "pym:queues";
/// Sorted set of workers by last beat.
pub const WORKERS: &str = "pym:workers";

/// Hash of the shard count of every sharded queue (see [`shard`]).
pub const SHARDS: &str = "pym:shards";
/// Most shards of one queue.
pub const MAX_SHARDS: u16 = 256;
/// What separates a queue's name from its shard number (`q#1`).
pub const SHARD_SEPARATOR: char = '#';

/// The queue that holds shard `i` of `queue`: `queue` itself for shard 0,
/// `queue#i` after it.
pub fn shard(queue: &str, i: u16) -> String {
    match i {
        0 => queue.to_owned(),
        i => format!("{queue}{SHARD_SEPARATOR}{i}"),
    }
}

/// The queues of the `n` shards of `queue`, shard 0 first (`queue` alone
/// for `n` ≤ 1).
pub fn shards(queue: &str, n: u16) -> Vec<String> {
    (0..n.max(1)).map(|i| shard(queue, i)).collect()
}

/// The queue a shard belongs to: `q#2` → `q`, `q` → `q`.
pub fn logical(shard: &str) -> &str {
    shard.split_once(SHARD_SEPARATOR).map_or(shard, |(q, _)| q)
}

/// Key of what worker `name` said of itself at its last beat.
pub fn worker(name: &str) -> String {
    format!("pym:worker:{name}")
}

/// All keys of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    pub queue: String,
    /// Ready streams, indexed by [`Priority::index`].
    pub ready: [String; 3],
    pub delayed: String,
    pub signal: String,
    pub dead: String,
    pub dead_index: String,
}

impl QueueKeys {
    pub fn new(queue: &str) -> Self {
        let base = format!("pym:{{{queue}}}");
        QueueKeys {
            queue: queue.to_owned(),
            ready: Priority::ALL.map(|p| format!("{base}:ready:{}", p.as_str())),
            delayed: format!("{base}:delayed"),
            signal: format!("{base}:signal"),
            dead: format!("{base}:dead"),
            dead_index: format!("{base}:dead:index"),
        }
    }

    pub fn ready(&self, p: Priority) -> &str {
        &self.ready[p.index()]
    }
}

/// The keys of a queue's periodic tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleKeys {
    pub defs: String,
    pub last: String,
    pub fired: String,
    pub next: String,
}

impl ScheduleKeys {
    pub fn new(queue: &str) -> Self {
        let base = format!("pym:{{{queue}}}:schedules");
        ScheduleKeys {
            last: format!("{base}:last"),
            fired: format!("{base}:fired"),
            next: format!("{base}:next"),
            defs: base,
        }
    }
}

/// Key of the replay guard of task `id` of `queue`: set (with a TTL) once
/// the task succeeded.
pub fn processed(queue: &str, id: &str) -> String {
    format!("pym:{{{queue}}}:processed:{id}")
}

/// Hash of the concurrency caps per queue (see the table above).
pub const CAPS: &str = "pym:caps";

/// `<task>` or `<task>:<key>`: what one limit of a task is counted under.
fn limited(task: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("{task}:{k}"),
        None => task.to_owned(),
    }
}

/// Lock of key `key` of unique task `task` of `queue` (its logical queue:
/// one lock for every shard).
pub fn unique(queue: &str, task: &str, key: &str) -> String {
    format!("pym:{{{}}}:unique:{task}:{key}", logical(queue))
}

/// GCRA state of the rate limit of `task` (per limit key, if it has one).
pub fn rate(queue: &str, task: &str, key: Option<&str>) -> String {
    format!("pym:{{{}}}:rate:{}", logical(queue), limited(task, key))
}

/// The two keys of one concurrency cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapKeys {
    pub leases: String,
    pub parked: String,
}

impl CapKeys {
    /// The cap of `task` of `queue` (per limit key, if it has one).
    pub fn new(queue: &str, task: &str, key: Option<&str>) -> Self {
        let base = format!("pym:{{{}}}:cap:{}", logical(queue), limited(task, key));
        CapKeys {
            leases: format!("{base}:leases"),
            parked: format!("{base}:parked"),
        }
    }
}
/// Key of the record of task `id` of `queue` (a queue or a shard).
pub fn task_record(queue: &str, id: &str) -> String {
    format!("pym:{{{queue}}}:task:{id}")
}

/// Key of the cancelled ids of `queue` (a queue or a shard).
pub fn cancelled(queue: &str) -> String {
    format!("pym:{{{queue}}}:cancelled")
}

/// How long a cancel is remembered (7 days): an untracked task picked
/// later than this after its cancel runs.
pub const CANCEL_KEEP_MS: u64 = 7 * 24 * 3600 * 1000;

/// Member of the delayed set: the priority digit, then the signed message.
pub fn delayed_member(priority: Priority, message: &str) -> String {
    let mut m = String::with_capacity(message.len() + 1);
    m.push(char::from(b'0' + priority.index() as u8));
    m.push_str(message);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_hash_tagged_per_queue() {
        let k = QueueKeys::new("emails");
        assert_eq!(k.ready(Priority::High), "pym:{emails}:ready:high");
        assert_eq!(k.ready(Priority::Low), "pym:{emails}:ready:low");
        assert_eq!(k.delayed, "pym:{emails}:delayed");
        assert_eq!(k.signal, "pym:{emails}:signal");
        assert_eq!(k.dead, "pym:{emails}:dead");
        assert_eq!(k.dead_index, "pym:{emails}:dead:index");
        assert_eq!(delayed_member(Priority::Normal, "ab.{}"), "1ab.{}");
        let s = ScheduleKeys::new("emails");
        assert_eq!(
            [s.defs, s.last, s.fired, s.next],
            [
                "pym:{emails}:schedules",
                "pym:{emails}:schedules:last",
                "pym:{emails}:schedules:fired",
                "pym:{emails}:schedules:next"
            ]
        );
        assert_eq!(
            unique("emails#2", "send", "u:1"),
            "pym:{emails}:unique:send:u:1"
        );
        assert_eq!(rate("emails", "send", None), "pym:{emails}:rate:send");
        assert_eq!(
            rate("emails", "send", Some("t1")),
            "pym:{emails}:rate:send:t1"
        );
        let cap = CapKeys::new("emails", "send", Some("t1"));
        assert_eq!(cap.leases, "pym:{emails}:cap:send:t1:leases");
        assert_eq!(cap.parked, "pym:{emails}:cap:send:t1:parked");
        assert_eq!(task_record("q#1", "i"), "pym:{q#1}:task:i");
        assert_eq!(cancelled("emails"), "pym:{emails}:cancelled");
    }

    #[test]
    fn shards_are_queues_of_their_own_with_shard_0_the_queue_itself() {
        let table: [(&str, u16, &[&str]); 4] = [
            ("images", 3, &["images", "images#1", "images#2"]),
            ("images", 1, &["images"]),
            ("images", 0, &["images"]),
            ("a.b", 2, &["a.b", "a.b#1"]),
        ];
        for (q, n, want) in table {
            let got = shards(q, n);
            assert_eq!(got, want, "{q} × {n}");
            for s in &got {
                assert_eq!(logical(s), q, "{s}");
            }
        }
        assert_eq!(QueueKeys::new(&shard("q", 2)).delayed, "pym:{q#2}:delayed");
        assert!(
            !crate::queue_name::is_valid_queue_name("q#2"),
            "a shard is no queue name"
        );
    }
}
