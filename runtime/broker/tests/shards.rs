//! Sharded queues on one real `redis-server`: a queue declared with three
//! shards is spread over three queues by its producers (round-robin, or by
//! key), read in full by a worker (also by one that declares nothing and
//! learns the count from Redis), and its statistics sum the shards.

use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{BrokerConfig, keys, shards, stats};
use pym_core::keys::QueueKeys;
use pym_runtime::testing::RedisServer;
use pym_runtime::{Priority, Queue, TaskError, asynctask};
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "shards-test-secret";
const LIMIT: Duration = Duration::from_secs(20);

static DONE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

#[asynctask(queue = "thumbs")]
async fn thumbnail(tag: String) -> Result<(), TaskError> {
    DONE.lock().unwrap().insert(tag);
    Ok(())
}

fn config(url: &str, declared: &str) -> BrokerConfig {
    BrokerConfig::new(url, SECRET).with_shards(shards::parse(declared).unwrap())
}

fn worker_config(name: &str) -> WorkerConfig {
    WorkerConfig {
        queues: vec!["thumbs".into()],
        concurrency: 4,
        name: name.into(),
        listen: None,
        block: Duration::from_millis(200),
        ..WorkerConfig::default()
    }
}

fn done(prefix: &str, n: usize) -> bool {
    let d = DONE.lock().unwrap();
    (0..n).all(|i| d.contains(&format!("{prefix}-{i}")))
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn xlen(conn: &mut redis::aio::MultiplexedConnection, shard: u16) -> u64 {
    let stream = QueueKeys::new(&keys::shard("thumbs", shard))
        .ready(Priority::Normal)
        .to_owned();
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(conn)
        .await
        .unwrap()
}

async fn run_worker(url: &str, declared: &str, name: &str, until: impl Fn() -> bool) {
    let worker = Worker::connect(&config(url, declared), worker_config(name))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    eventually(name, until).await;
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_queue_spreads_and_every_shard_is_read() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let queue = Queue::connect(&config(&url, "thumbs=3")).await.unwrap();

    // Round-robin: 30 tasks, 10 per shard.
    for i in 0..30 {
        thumbnail::spawn(&queue, format!("rr-{i}")).await.unwrap();
    }
    for shard in 0..3 {
        assert_eq!(xlen(&mut conn, shard).await, 10, "shard {shard}");
    }
    // By key: one key, one shard, whatever the count of tasks.
    for i in 0..6 {
        thumbnail::spawn_keyed(&queue, "album-42", format!("keyed-{i}"))
            .await
            .unwrap();
    }
    let lens = [
        xlen(&mut conn, 0).await,
        xlen(&mut conn, 1).await,
        xlen(&mut conn, 2).await,
    ];
    assert_eq!(lens.iter().filter(|n| **n == 16).count(), 1, "{lens:?}");
    // Delayed tasks stay on their shard's delayed set; stats sum the shards.
    for i in 0..3 {
        thumbnail::spawn_in(&queue, Duration::from_secs(3600), format!("later-{i}"))
            .await
            .unwrap();
    }
    let s = stats::queue_stats(&mut conn, "thumbs").await.unwrap();
    assert_eq!(
        (s.queue.as_str(), s.ready, s.delayed_later),
        ("thumbs", 36, 3),
        "{s:?}"
    );
    let recorded: Option<u16> = redis::cmd("HGET")
        .arg(keys::SHARDS)
        .arg("thumbs")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(recorded, Some(3));
    // `pym:queues` knows the queue, not its shards.
    let all = stats::all_stats(&mut conn).await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.queue.as_str()).collect::<Vec<_>>(),
        ["thumbs"]
    );

    // A worker that declares no shards reads the three recorded in Redis.
    run_worker(&url, "", "w-undeclared", || {
        done("rr", 30) && done("keyed", 6)
    })
    .await;
    let s = stats::queue_stats(&mut conn, "thumbs").await.unwrap();
    assert_eq!((s.ready, s.in_flight, s.delayed_later), (0, 0, 3), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_shards_later_strand_no_task_and_fewer_are_still_read() {
    let redis = RedisServer::start();
    let url = redis.url();
    // Unsharded at first: its tasks are in shard 0, the queue itself.
    let one = Queue::connect(&config(&url, "")).await.unwrap();
    for i in 0..4 {
        thumbnail::spawn(&one, format!("before-{i}")).await.unwrap();
    }
    // Four shards declared by a producer; a worker that declares two reads
    // all four, as four are recorded.
    let four = Queue::connect(&config(&url, "thumbs=4")).await.unwrap();
    for i in 0..8 {
        thumbnail::spawn(&four, format!("after-{i}")).await.unwrap();
    }
    run_worker(&url, "thumbs=2", "w-two", || {
        done("before", 4) && done("after", 8)
    })
    .await;
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(shards::recorded_of(&mut conn, "thumbs").await.unwrap(), 4);
}
