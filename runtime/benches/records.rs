//! Task records: Redis memory per finished tracked task. Spawns
//! BENCH_RECORDS (default 100,000) tasks declared `track` that return a
//! small result, runs them on one worker, then reads `INFO memory`
//! (used_memory before the spawns and once every task finished, divided by
//! the count) and `MEMORY USAGE` of a sample of records. Also prints the
//! tracked tasks' throughput (each pays the start script) beside untracked
//! ones of the same body, same run. Every record has a TTL: the memory is
//! bounded by (tasks finished per TTL) × (bytes per record).
//! Run: `cargo bench -p pym-runtime --bench records`.

use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{Broker, BrokerConfig, keys, stats};
use pym_runtime::testing::RedisServer;
use pym_runtime::{Queue, TaskError, asynctask};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret";

#[asynctask(queue = "tracked", track)]
async fn tracked(n: u64) -> Result<u64, TaskError> {
    Ok(n * 2)
}

#[asynctask(queue = "plain")]
async fn plain(n: u64) -> Result<u64, TaskError> {
    Ok(n * 2)
}

async fn used_memory(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

async fn wait_drained(broker: &Broker, queue: &str) {
    loop {
        let s = stats::queue_stats(&mut broker.conn(), queue).await.unwrap();
        if s.work() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Spawn `n` tasks with `spawn` (50 at a time), run them on one worker of
/// `queue`; the tasks per second of the run.
async fn run<F, Fut>(url: &str, queue: &str, n: u64, spawn: F) -> f64
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        futures::future::join_all(chunk.iter().map(|i| spawn(*i))).await;
    }
    let bc = BrokerConfig::new(url, SECRET);
    let broker = Broker::connect(&bc).await.unwrap();
    let config = WorkerConfig {
        queues: vec![queue.into()],
        listen: None,
        name: format!("bench-{queue}"),
        ..WorkerConfig::default()
    };
    let worker = Worker::connect(&bc, config).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let h = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    wait_drained(&broker, queue).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = tx.send(());
    h.await.unwrap().unwrap();
    rate
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let redis = RedisServer::start();
    let url = redis.url();
    let q = Queue::connect(&BrokerConfig::new(&url, SECRET))
        .await
        .unwrap();
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let plain_rate = run(&url, "plain", n, |i| {
        let q = &q;
        async move {
            plain::spawn(q, i).await.unwrap();
        }
    })
    .await;
    let before = used_memory(&mut c).await;
    // The first 100 ids, to sample their records.
    let ids = std::sync::Mutex::new(Vec::with_capacity(100));
    let tracked_rate = run(&url, "tracked", n, |i| {
        let (q, ids) = (&q, &ids);
        async move {
            let h = tracked::spawn(q, i).await.unwrap();
            if i < 100 {
                ids.lock().unwrap().push(h.id().to_string());
            }
        }
    })
    .await;
    let ids = ids.into_inner().unwrap();
    let after = used_memory(&mut c).await;
    let mut sample = 0u64;
    for id in &ids {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(keys::task_record("tracked", id))
            .query_async(&mut c)
            .await
            .unwrap();
        sample += bytes.expect("every finished task has its record");
    }
    let per_record = (after.saturating_sub(before)) as f64 / n as f64;
    println!("records of {n} finished tracked tasks (result: a number):");
    println!(
        "  used_memory: +{:.1} MB, {per_record:.0} B per record ({per_record:.0} MB per 1M)",
        after.saturating_sub(before) as f64 / 1e6,
    );
    println!(
        "  MEMORY USAGE of {} records: {:.0} B each",
        ids.len(),
        sample as f64 / ids.len() as f64
    );
    println!(
        "  one worker, same body: untracked {plain_rate:.0} tasks/s, tracked {tracked_rate:.0} tasks/s"
    );
}
