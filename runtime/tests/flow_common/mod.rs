//! What the flow-control tests share: a queue and workers on a real
//! redis-server, worker processes (the test binary started again on one
//! test), and counters kept in Redis so every process adds to them.

#![allow(dead_code)]

use pym_broker::retry::Backoff;
use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{BrokerConfig, Queue};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SECRET: &str = "test-secret";
/// The environment variables a worker process is told its part by.
pub const CHILD_REDIS: &str = "PYM_TEST_FLOW_REDIS";
pub const CHILD_QUEUE: &str = "PYM_TEST_FLOW_QUEUE";

pub fn cfg(queue: &str, name: &str) -> WorkerConfig {
    WorkerConfig {
        queues: vec![queue.to_owned()],
        concurrency: 8,
        visibility_timeout: Duration::from_secs(5),
        grace_period: Duration::from_secs(2),
        backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        name: name.to_owned(),
        listen: None,
        block: Duration::from_millis(200),
        ..WorkerConfig::default()
    }
}

pub async fn queue(url: &str) -> Queue {
    Queue::connect(&BrokerConfig::new(url, SECRET))
        .await
        .unwrap()
}

/// Run a worker of `queue` until the process ends (the body of the test a
/// worker process runs); returns at once in a normal test run.
pub async fn child_worker_body() {
    let (Ok(url), Ok(queue)) = (std::env::var(CHILD_REDIS), std::env::var(CHILD_QUEUE)) else {
        return;
    };
    let name = format!("child-{}", std::process::id());
    let worker = Worker::connect(&BrokerConfig::new(&url, SECRET), cfg(&queue, &name))
        .await
        .unwrap();
    worker.run(std::future::pending::<()>()).await.unwrap();
}

/// Worker processes, killed when dropped.
pub struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `n` worker processes of `queue`: this test binary, running its test
/// `entry` (which calls [`child_worker_body`]).
pub fn children(url: &str, queue: &str, entry: &str, n: usize) -> Children {
    let spawn = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", entry, "--nocapture", "--test-threads=1"])
            .env(CHILD_REDIS, url)
            .env(CHILD_QUEUE, queue)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    Children((0..n).map(|_| spawn()).collect())
}

pub async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub async fn get(url: &str, key: &str) -> i64 {
    let v: Option<i64> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn(url).await)
        .await
        .unwrap();
    v.unwrap_or(0)
}

/// Wait (`within` at most) until counter `key` reaches `want`.
pub async fn eventually_at_least(url: &str, key: &str, want: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let v = get(url, key).await;
        if v >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {key} >= {want} (is {v})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
