//! Redis Cluster on real processes: three `redis-server --cluster-enabled
//! yes` masters joined by `redis-cli --cluster create` (no replicas), and
//! the whole task path through a `redis-cluster://` URL: spawn, one worker
//! consuming three queues whose `{queue}` hash tags land on three different
//! masters (checked with `CLUSTER KEYSLOT`/`CLUSTER SLOTS`), a retry, a
//! delayed task, a dead letter, settling outcomes of several queues in one
//! batch, pipelines spanning slots, and what the operator's autoscaler
//! reads (`queue_stats`, `workers::live_on`) through `connect_reader`;
//! flow-controlled tasks (unique, rate, cap) of a sharded queue.

use pym_broker::ack::{self, Settle, Settlement};
use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{Broker, BrokerConfig, dead, keys, stats, workers};
use pym_core::keys::QueueKeys;
use pym_runtime::testing::RedisCluster;
use pym_runtime::{Queue, TaskError, asynctask};
use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "cluster-test-secret";
/// Three queues whose hash tags fall in the slot ranges of three different
/// masters (`--cluster create` splits 16384 slots in three: mail 4247,
/// images 9450, sms 13018; asserted by [`master_of_queue`]).
const QUEUES: [&str; 3] = ["mail", "images", "sms"];
const LIMIT: Duration = Duration::from_secs(20);

static DONE: LazyLock<Mutex<HashMap<String, Instant>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static CALLS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn done(tag: &str) -> bool {
    DONE.lock().unwrap().contains_key(tag)
}

fn mark(tag: String) -> Result<(), TaskError> {
    DONE.lock().unwrap().insert(tag, Instant::now());
    Ok(())
}

fn count_call(tag: &str) -> u32 {
    let mut c = CALLS.lock().unwrap();
    let n = c.entry(tag.to_owned()).or_default();
    *n += 1;
    *n
}

#[asynctask(queue = "mail")]
async fn send_mail(tag: String) -> Result<(), TaskError> {
    mark(tag)
}

#[asynctask(queue = "images")]
async fn resize(tag: String) -> Result<(), TaskError> {
    mark(tag)
}

#[asynctask(queue = "sms")]
async fn send_sms(tag: String) -> Result<(), TaskError> {
    mark(tag)
}

/// Fails its first run (a retry), then succeeds.
#[asynctask(queue = "sms", max_retries = 3)]
async fn flaky_sms(tag: String) -> Result<(), TaskError> {
    if count_call(&tag) == 1 {
        return Err(TaskError::retry("gateway busy"));
    }
    mark(tag)
}

/// Always fails for good: a dead letter.
#[asynctask(queue = "mail")]
async fn bounce(tag: String) -> Result<(), TaskError> {
    count_call(&tag);
    Err(TaskError::fatal("no such mailbox"))
}

async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The port of the master of `queue`'s keys.
fn master_of_queue(cluster: &RedisCluster, queue: &str) -> u16 {
    cluster.master_of(&QueueKeys::new(queue).delayed)
}

fn config(url: &str) -> BrokerConfig {
    let mut c = BrokerConfig::new(url, SECRET);
    c.response_timeout = Duration::from_secs(2);
    c
}

fn worker_config(name: &str) -> WorkerConfig {
    WorkerConfig {
        queues: QUEUES.map(String::from).to_vec(),
        concurrency: 4,
        name: name.into(),
        listen: None,
        block: Duration::from_millis(200),
        backoff: pym_broker::retry::Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        ..WorkerConfig::default()
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A started worker and the way to stop it.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), pym_broker::worker::WorkerError>>,
}

async fn start_worker(url: &str, name: &str) -> Running {
    run_worker(&config(url), worker_config(name)).await
}

/// A worker of `config` on the broker of `bc`, started.
async fn run_worker(bc: &BrokerConfig, config: WorkerConfig) -> Running {
    let worker = Worker::connect(bc, config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    Running { stop, handle }
}

/// A worker of the sharded queue `feed` (shards `declared`), started.
async fn start_feed_worker(
    url: &str,
    declared: pym_broker::shards::Declared,
    name: &str,
) -> Running {
    let config = WorkerConfig {
        queues: vec!["feed".into()],
        ..worker_config(name)
    };
    run_worker(&self::config(url).with_shards(declared), config).await
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_runs_three_queues_on_three_masters() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    let mut masters = HashSet::new();
    for q in QUEUES {
        masters.insert(master_of_queue(&cluster, q));
    }
    assert_eq!(masters.len(), 3, "the queues share a master: {masters:?}");

    let queue = Queue::connect(&config(&url)).await.unwrap();
    // Enqueued before any worker, read by its first (non-blocking) reads.
    for i in 0..5 {
        send_mail::spawn(&queue, format!("mail-{i}")).await.unwrap();
        resize::spawn(&queue, format!("image-{i}")).await.unwrap();
        send_sms::spawn(&queue, format!("sms-{i}")).await.unwrap();
    }
    let w = start_worker(&url, "w-one").await;
    eventually("15 tasks of three queues ran", || {
        (0..5).all(|i| {
            done(&format!("mail-{i}")) && done(&format!("image-{i}")) && done(&format!("sms-{i}"))
        })
    })
    .await;
    // Enqueued while the worker blocks on each queue's master: each wakes
    // its blocking read well before the read's timeout ends.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    send_sms::spawn(&queue, "sms-late".into()).await.unwrap();
    resize::spawn(&queue, "image-late".into()).await.unwrap();
    eventually("tasks enqueued while idle ran", || {
        done("sms-late") && done("image-late")
    })
    .await;
    let woke = t0.elapsed();
    println!("cluster: tasks spawned while the worker blocked ran after {woke:?}");

    let mut reader = pym_broker::connect_reader(&url, Duration::from_secs(2))
        .await
        .unwrap();
    for q in QUEUES {
        let deadline = Instant::now() + LIMIT;
        loop {
            let s = stats::queue_stats(&mut reader, q).await.unwrap();
            if s.work() == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{q} not drained: {s:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let all = stats::all_stats(&mut reader).await.unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.queue.as_str()).collect();
    assert_eq!(names, ["images", "mail", "sms"]);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_delays_and_dead_letters_work_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    let queue = Queue::connect(&config(&url)).await.unwrap();
    let w = start_worker(&url, "w-retry").await;

    flaky_sms::spawn(&queue, "retried".into()).await.unwrap();
    let t0 = Instant::now();
    resize::spawn_in(&queue, Duration::from_millis(700), "delayed".into())
        .await
        .unwrap();
    bounce::spawn(&queue, "bounced".into()).await.unwrap();

    eventually("the retried task succeeded", || done("retried")).await;
    assert_eq!(CALLS.lock().unwrap()["retried"], 2);

    eventually("the delayed task ran", || done("delayed")).await;
    let ran_at = DONE.lock().unwrap()["delayed"];
    assert!(ran_at - t0 >= Duration::from_millis(700), "ran too early");

    let broker = Broker::connect(&config(&url)).await.unwrap();
    let deadline = Instant::now() + LIMIT;
    let letters = loop {
        let l = dead::list(&mut broker.conn(), "mail", 0, 10).await.unwrap();
        if !l.is_empty() {
            break l;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, dead::Reason::Fatal);
    assert_eq!(CALLS.lock().unwrap()["bounced"], 1);
    let mut reader = pym_broker::connect_reader(&url, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        stats::queue_stats(&mut reader, "mail").await.unwrap().dead,
        1
    );
    // Replayed onto the ready stream of its queue (one script, one slot):
    // it fails again and is dead again.
    assert!(dead::replay(&broker, "mail", &letters[0].id).await.unwrap());
    eventually("the replayed task ran", || {
        CALLS.lock().unwrap()["bounced"] == 2
    })
    .await;
    w.stop().await;
}

/// What the autoscaler reads, through `connect_reader` with no task
/// secret: two workers whose registry keys are on different slots, so
/// `live_on`'s pipeline of GETs is split by slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_reads_stats_and_live_workers_through_a_cluster() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    let (a, b) = ("w-a", "w-c");
    assert_ne!(
        cluster.master_of(&keys::worker(a)),
        cluster.master_of(&keys::worker(b)),
        "pick worker names on different masters"
    );
    let queue = Queue::connect(&config(&url)).await.unwrap();
    for i in 0..3 {
        resize::spawn_in(&queue, Duration::from_secs(3600), format!("later-{i}"))
            .await
            .unwrap();
    }
    let wa = start_worker(&url, a).await;
    let wb = start_worker(&url, b).await;
    let mut reader = pym_broker::connect_reader(&url, Duration::from_secs(2))
        .await
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    let live = loop {
        let live = workers::live_on(&mut reader, Default::default())
            .await
            .unwrap();
        if live.len() == 2 {
            break live;
        }
        assert!(Instant::now() < deadline, "workers not seen: {live:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let names: Vec<&str> = live.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, [a, b]);
    assert_eq!(live[0].queues, ["images", "mail", "sms"]);
    let s = stats::queue_stats(&mut reader, "images").await.unwrap();
    assert_eq!((s.ready, s.delayed_later), (0, 3), "{s:?}");
    wa.stop().await;
    wb.stop().await;
    // A clean stop forgets the worker (ZREM of the registry and DEL of its
    // key: two slots in one pipeline).
    let live = workers::live_on(&mut reader, Default::default())
        .await
        .unwrap();
    assert!(live.is_empty(), "{live:?}");
}

/// Outcomes of three queues settled in one batch: one transaction per
/// queue (a single MULTI/EXEC across their slots is refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_outcomes_of_three_queues_settles() {
    let cluster = RedisCluster::start(3);
    let broker = Broker::connect(&config(&cluster.url())).await.unwrap();
    let mut conn = broker.conn();
    let mut ids = Vec::new();
    for q in QUEUES {
        pym_broker::fetch::ensure_groups(&mut conn, q)
            .await
            .unwrap();
        let stream = QueueKeys::new(q).ready[1].clone();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(keys::FIELD_MESSAGE)
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
        let got = pym_broker::fetch::read_now(&mut conn, "c", std::slice::from_ref(&stream), 1)
            .await
            .unwrap();
        ids.push((q, stream, got[0].id.clone()));
    }
    let batch: Vec<Settlement<'_>> = ids
        .iter()
        // As the worker sends them: a plain ack carries no queue name.
        .map(|(_, stream, id)| Settlement {
            queue: "",
            stream,
            id,
            settle: &Settle::Ack,
        })
        .collect();
    ack::settle(&broker, &batch).await.unwrap();
    for (_, stream, _) in &ids {
        let len: u64 = redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(len, 0, "{stream} still holds the acked entry");
    }
    // The same batch as one transaction is what the cluster refuses.
    let err = ack::pipeline(&batch)
        .query_async::<()>(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err:?}");
}

/// A plain pipeline spanning slots: split by slot, replies in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_across_slots_answers_in_order() {
    let cluster = RedisCluster::start(3);
    let broker = Broker::connect(&config(&cluster.url())).await.unwrap();
    let keys = ["k-a", "k-b", "k-c", "k-d", "k-e", "k-f"];
    let mut masters = HashSet::new();
    for k in keys {
        masters.insert(cluster.master_of(k));
    }
    assert!(masters.len() > 1, "all keys on one master");
    let mut set = redis::pipe();
    for (i, k) in keys.iter().enumerate() {
        set.cmd("SET").arg(k).arg(i).ignore();
    }
    let () = set.query_async(&mut broker.conn()).await.unwrap();
    let mut get = redis::pipe();
    for k in keys.iter().rev() {
        get.cmd("GET").arg(k);
    }
    let got: Vec<u32> = get.query_async(&mut broker.conn()).await.unwrap();
    assert_eq!(got, [5, 4, 3, 2, 1, 0]);
}

#[tokio::test]
async fn cluster_urls_are_checked_before_connecting() {
    let err = Broker::connect(&config("rediss-cluster://:hunter2@h:1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not supported"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let err = Broker::connect(&config("redis-cluster://h:1/3"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("only database 0"), "{err}");
}

/// A hot queue of three shards whose hash tags (`{feed}`, `{feed#1}`,
/// `{feed#2}`) fall on three different masters.
#[asynctask(queue = "feed")]
async fn post(tag: String) -> Result<(), TaskError> {
    mark(tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_queue_spreads_over_the_three_masters() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    let shards = keys::shards("feed", 3);
    let mut masters = HashSet::new();
    for s in &shards {
        masters.insert(master_of_queue(&cluster, s));
    }
    assert_eq!(masters.len(), 3, "the shards share a master: {masters:?}");

    let declared = pym_broker::shards::parse("feed=3").unwrap();
    let queue = Queue::connect(&config(&url).with_shards(declared.clone()))
        .await
        .unwrap();
    for i in 0..60 {
        post::spawn(&queue, format!("feed-{i}")).await.unwrap();
    }
    let worker = start_feed_worker(&url, declared, "w-feed").await;
    eventually("60 tasks of the sharded queue ran", || {
        (0..60).all(|i| done(&format!("feed-{i}")))
    })
    .await;
    worker.stop().await;
    // Each shard, on its own master, delivered its third.
    let mut reader = pym_broker::connect_reader(&url, Duration::from_secs(2))
        .await
        .unwrap();
    for s in &shards {
        let mut node = node(master_of_queue(&cluster, s)).await;
        let added: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(QueueKeys::new(s).ready(pym_runtime::Priority::Normal))
            .query_async(&mut node)
            .await
            .unwrap();
        let pos = added
            .iter()
            .position(|v| matches!(v, redis::Value::BulkString(b) if b == b"entries-added"))
            .expect("entries-added");
        let n: u64 = redis::from_redis_value(added[pos + 1].clone()).unwrap();
        assert_eq!(n, 20, "{s}");
    }
    let s = stats::queue_stats(&mut reader, "feed").await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 0), "{s:?}");
}

/// A flow-controlled task of the sharded queue: unique per tag, rate-limited
/// and capped. Its lock, rate and cap keys are `{feed}`'s, so it is sent
/// to shard 0 (`feed`) whatever its shard key.
#[asynctask(
    queue = "feed",
    unique(key = "{tag}", until = "finished", ttl_secs = 60),
    rate = "200/s",
    max_concurrency = 2
)]
async fn digest(tag: String) -> Result<(), TaskError> {
    count_call(&tag);
    tokio::time::sleep(Duration::from_millis(5)).await;
    mark(tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_controlled_tasks_of_a_sharded_queue_stay_in_one_slot() {
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    let declared = pym_broker::shards::parse("feed=3").unwrap();
    let queue = Queue::connect(&config(&url).with_shards(declared.clone()))
        .await
        .unwrap();
    // Each tag spawned twice, with and without a shard key: one task each.
    let tags: Vec<String> = (0..30).map(|i| format!("digest-{i}")).collect();
    for tag in &tags {
        let first = digest::spawn(&queue, tag.clone()).await.unwrap();
        let again = digest::spawn_keyed(&queue, tag, tag.clone()).await.unwrap();
        assert_eq!(first.id(), again.id(), "{tag}: the key is held");
    }
    let ready = |shard: &str| {
        let key = QueueKeys::new(shard)
            .ready(pym_runtime::Priority::Normal)
            .to_owned();
        let port = cluster.master_of(&key);
        async move {
            let n: u64 = redis::cmd("XLEN")
                .arg(&key)
                .query_async(&mut node(port).await)
                .await
                .unwrap();
            n
        }
    };
    assert_eq!(ready("feed").await, 30, "all on shard 0");
    for s in ["feed#1", "feed#2"] {
        assert_eq!(ready(s).await, 0, "{s}");
    }
    let worker = start_feed_worker(&url, declared, "w-digest").await;
    eventually("30 flow-controlled tasks ran", || {
        tags.iter().all(|t| done(t))
    })
    .await;
    // Each ran once, and its lock went with its ack: a new spawn enqueues.
    for tag in &tags {
        assert_eq!(CALLS.lock().unwrap()[tag], 1, "{tag}");
    }
    let mut reader = pym_broker::connect_reader(&url, Duration::from_secs(2))
        .await
        .unwrap();
    let lock = keys::unique("feed", "digest", "digest-0");
    let deadline = Instant::now() + LIMIT;
    loop {
        let held: Option<String> = redis::cmd("GET")
            .arg(&lock)
            .query_async(&mut reader)
            .await
            .unwrap();
        if held.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "{lock} still held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = stats::queue_stats(&mut reader, "feed").await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.dead), (0, 0, 0), "{s:?}");
    worker.stop().await;
}

/// A tracked task: its record shares its queue's slot.
#[asynctask(queue = "images", track)]
async fn tracked_resize(tag: String) -> Result<String, TaskError> {
    mark(tag.clone())?;
    Ok(format!("resized {tag}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_and_cancelled_tasks_on_three_masters() {
    use pym_broker::{Cancelled, TaskState};
    let cluster = RedisCluster::start(3);
    let url = cluster.url();
    let queue = Queue::connect(&config(&url)).await.unwrap();
    // Cancelled before any worker: a tracked one, and untracked ones of
    // queues on the two other masters.
    let dropped = tracked_resize::spawn(&queue, "c-dropped".into())
        .await
        .unwrap();
    assert_eq!(dropped.cancel().await.unwrap(), Cancelled::BeforeStart);
    let mail = send_mail::spawn(&queue, "c-mail".into()).await.unwrap();
    let sms = send_sms::spawn_in(&queue, Duration::from_millis(300), "c-sms".into())
        .await
        .unwrap();
    assert_eq!(
        send_mail::cancel(&queue, &mail).await.unwrap(),
        Cancelled::Marked
    );
    assert_eq!(
        send_sms::cancel(&queue, &sms).await.unwrap(),
        Cancelled::Marked
    );
    let kept = tracked_resize::spawn(&queue, "c-kept".into())
        .await
        .unwrap();
    let w = start_worker(&url, "w-tracked").await;
    let r = kept.wait(LIMIT).await.unwrap();
    assert_eq!(r.state, TaskState::Succeeded);
    assert_eq!(
        kept.result().await.unwrap().as_deref(),
        Some("resized c-kept")
    );
    send_sms::spawn_in(&queue, Duration::from_millis(600), "c-after".into())
        .await
        .unwrap();
    eventually("a task due after the cancelled ones ran", || {
        done("c-after")
    })
    .await;
    assert!(!done("c-dropped") && !done("c-mail") && !done("c-sms"));
    assert_eq!(dropped.status().await.unwrap(), TaskState::Cancelled);
    w.stop().await;
}
