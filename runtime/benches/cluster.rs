//! Redis Cluster benchmark: in one run, the consume throughput of ONE worker
//! process on one `redis-server` and on a 3-master Redis Cluster, each with
//! an unsharded queue and a queue of 3 shards (whose hash tags land on the
//! three masters of the cluster). Run:
//! `cargo bench -p pym-runtime --bench cluster` (env BENCH_N, default
//! 300,000 tasks per case; BENCH_WORKER_CONCURRENCY, BENCH_BATCH).
//!
//! Every case enqueues BENCH_N no-op tasks in pipelines of 1,000, then
//! times one worker draining them. All processes share this machine's
//! cores: the cluster's three servers compete with the worker, so the
//! figure says what one worker gets, not what the cluster can take.

use pym_broker::envelope::Envelope;
use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{Broker, BrokerConfig, shards, stats};
use pym_runtime::testing::{RedisCluster, RedisServer};
use pym_runtime::{Priority, TaskError, asynctask};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret";

#[asynctask(queue = "bench")]
async fn noop(_n: u64) -> Result<(), TaskError> {
    Ok(())
}

/// `{feed}`, `{feed#1}` and `{feed#2}` fall on three different masters.
#[asynctask(queue = "feed")]
async fn noop_feed(_n: u64) -> Result<(), TaskError> {
    Ok(())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Enqueues `n` tasks of `task` on `queue`, then times one worker draining
/// them: (enqueued/s, consumed/s).
async fn case(url: &str, task: &str, queue: &str, shard_count: u16, n: usize) -> (f64, f64) {
    let mut declared = shards::Declared::new();
    shards::declare(&mut declared, queue, shard_count).unwrap();
    let bc = BrokerConfig::new(url, SECRET).with_shards(declared);
    let broker = Broker::connect(&bc).await.unwrap();
    let t0 = Instant::now();
    let mut i = 0;
    while i < n {
        let envs: Vec<Envelope> = (i..(i + 1000).min(n))
            .map(|k| {
                Envelope::new(
                    task,
                    queue,
                    Priority::Normal,
                    serde_json::value::RawValue::from_string(k.to_string()).unwrap(),
                    Default::default(),
                )
            })
            .collect();
        broker.enqueue_batch(&envs).await.unwrap();
        i += 1000;
    }
    let enqueued = n as f64 / t0.elapsed().as_secs_f64();
    let wc = WorkerConfig {
        queues: vec![queue.into()],
        concurrency: env_usize("BENCH_WORKER_CONCURRENCY", 1024),
        batch: env_usize("BENCH_BATCH", 512),
        listen: None,
        name: format!("bench-{queue}"),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(broker.clone(), wc).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let t0 = Instant::now();
    let handle = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    loop {
        let s = stats::queue_stats(&mut broker.conn(), queue).await.unwrap();
        if s.work() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let consumed = n as f64 / t0.elapsed().as_secs_f64();
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
    (enqueued, consumed)
}

#[tokio::main]
async fn main() {
    let n = env_usize("BENCH_N", 300_000);
    let one = RedisServer::start();
    let cluster = RedisCluster::start(3);
    let feed_masters: std::collections::HashSet<u16> = pym_broker::keys::shards("feed", 3)
        .iter()
        .map(|s| cluster.master_of(&pym_broker::keys::QueueKeys::new(s).delayed))
        .collect();
    assert_eq!(feed_masters.len(), 3, "the shards of feed share a master");
    let cases = [
        ("one redis-server, 1 queue", one.url(), "noop", "bench", 1),
        (
            "one redis-server, 3 shards",
            one.url(),
            "noop_feed",
            "feed",
            3,
        ),
        (
            "3-master cluster, 1 queue",
            cluster.url(),
            "noop",
            "bench",
            1,
        ),
        (
            "3-master cluster, 3 shards",
            cluster.url(),
            "noop_feed",
            "feed",
            3,
        ),
    ];
    let mut rows = Vec::new();
    for (name, url, task, queue, shard_count) in cases {
        eprintln!("{name}: {n} tasks…");
        let (enq, con) = case(&url, task, queue, shard_count, n).await;
        rows.push((name, enq, con));
    }
    let base = rows[0].2;
    println!();
    println!(
        "| setup ({n} no-op tasks, one worker) | enqueue (pipelines of 1,000) | consume | vs one redis-server |"
    );
    println!("|---|---|---|---|");
    for (name, enq, con) in rows {
        println!(
            "| {name} | {enq:.0} tasks/s | {con:.0} tasks/s | {:.2}× |",
            con / base
        );
    }
}
