//! Cancellation across processes on a real redis-server: the worker is
//! another process (this test binary, started again as a worker). A
//! running task is told through its context about a second after
//! `cancel` (the figure is printed); queued and delayed tasks, tracked or
//! not, never run.

use pym_broker::retry::Backoff;
use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{BrokerConfig, Cancelled};
use pym_core::context;
use pym_runtime::testing::RedisServer;
use pym_runtime::{Queue, TaskError, TaskState, asynctask};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "test-secret";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn get(url: &str, key: &str) -> Option<u64> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn(url).await)
        .await
        .unwrap()
}

/// Counts its runs in Redis, then works until it is told it is cancelled,
/// and notes when (ms since the epoch) in `told:<tag>`.
async fn until_told(url: &str, tag: &str) -> Result<(), TaskError> {
    let mut c = conn(url).await;
    let _: i64 = redis::cmd("INCR")
        .arg(format!("runs:{tag}"))
        .query_async(&mut c)
        .await?;
    let ctx = context::context();
    ctx.progress(0.1, "waiting to be cancelled");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ctx.cancelled() {
        if Instant::now() > deadline {
            return Err(TaskError::fatal("never told"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _: () = redis::cmd("SET")
        .arg(format!("told:{tag}"))
        .arg(now_ms())
        .query_async(&mut c)
        .await?;
    Err(TaskError::retry("stopped: cancelled"))
}

#[asynctask(queue = "c", track)]
async fn tracked(url: String, tag: String) -> Result<(), TaskError> {
    until_told(&url, &tag).await
}

#[asynctask(queue = "c")]
async fn untracked(url: String, tag: String) -> Result<(), TaskError> {
    until_told(&url, &tag).await
}

/// Entry point of the worker process (see `worker_process`).
#[tokio::test]
async fn child_worker_process() {
    let Ok(url) = std::env::var("PYM_TEST_CANCEL_REDIS") else {
        return; // only meaningful when started by the tests below
    };
    let config = WorkerConfig {
        queues: vec!["c".into()],
        concurrency: 8,
        visibility_timeout: Duration::from_secs(5),
        grace_period: Duration::from_secs(1),
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(50),
        },
        name: "cancel-child".into(),
        listen: None,
        block: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let worker = Worker::connect(&BrokerConfig::new(&url, SECRET), config)
        .await
        .unwrap();
    worker.run(std::future::pending()).await.unwrap();
}

/// A worker process on `url`, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker_process(url: &str) -> Child {
    let c = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_worker_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PYM_TEST_CANCEL_REDIS", url)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Child(c)
}

async fn queue(url: &str) -> Queue {
    Queue::connect(&BrokerConfig::new(url, SECRET))
        .await
        .unwrap()
}

async fn eventually_set(url: &str, key: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = get(url, key).await {
            return v;
        }
        assert!(Instant::now() < deadline, "{key} never set");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_task_running_in_another_process_is_told_about_a_second_after_cancel() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let _worker = worker_process(&url);
    let h = tracked::spawn(&q, (url.clone(), "run-tracked".into()))
        .await
        .unwrap();
    let plain = untracked::spawn(&q, (url.clone(), "run-plain".into()))
        .await
        .unwrap();
    eventually_set(&url, "runs:run-tracked").await;
    eventually_set(&url, "runs:run-plain").await;
    assert_eq!(h.status().await.unwrap(), TaskState::Running);

    let asked = now_ms();
    assert_eq!(tracked::cancel(&q, &h).await.unwrap(), Cancelled::Told);
    assert_eq!(
        untracked::cancel(&q, plain.id()).await.unwrap(),
        Cancelled::Marked
    );
    let told = eventually_set(&url, "told:run-tracked").await;
    let told_plain = eventually_set(&url, "told:run-plain").await;
    println!(
        "cancel → told, in another worker process: tracked {} ms, untracked {} ms",
        told.saturating_sub(asked),
        told_plain.saturating_sub(asked)
    );
    // It returned an error once told: cancelled, not retried.
    let r = h.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(r.state, TaskState::Cancelled);
    assert!(r.cancel_requested_ms.is_some(), "{r:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&url, "runs:run-tracked").await, Some(1));
    assert_eq!(get(&url, "runs:run-plain").await, Some(1));
}

#[tokio::test]
async fn queued_and_delayed_tasks_cancelled_in_another_process_never_run() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let args = |tag: &str| (url.clone(), tag.to_owned());
    // Queued with no worker running, then cancelled.
    let queued = tracked::spawn(&q, args("queued-tracked")).await.unwrap();
    let plain = untracked::spawn(&q, args("queued-plain")).await.unwrap();
    let delayed = tracked::spawn_in(&q, Duration::from_millis(1500), args("delayed-tracked"))
        .await
        .unwrap();
    let delayed_plain = untracked::spawn_in(&q, Duration::from_millis(1500), args("delayed-plain"))
        .await
        .unwrap();
    // Cancelled from another queue connection, by id.
    let other = queue(&url).await;
    assert_eq!(
        tracked::cancel(&other, queued.id()).await.unwrap(),
        Cancelled::BeforeStart
    );
    assert_eq!(
        tracked::cancel(&other, delayed.id()).await.unwrap(),
        Cancelled::BeforeStart
    );
    for id in [plain.id(), delayed_plain.id()] {
        assert_eq!(
            untracked::cancel(&other, id).await.unwrap(),
            Cancelled::Marked
        );
    }
    let _worker = worker_process(&url);
    // A task spawned after them, and due after the delayed ones, runs.
    let after = untracked::spawn_in(&q, Duration::from_millis(2000), args("after"))
        .await
        .unwrap();
    eventually_set(&url, "runs:after").await;
    untracked::cancel(&q, after).await.unwrap();
    eventually_set(&url, "told:after").await;
    for tag in [
        "queued-tracked",
        "queued-plain",
        "delayed-tracked",
        "delayed-plain",
    ] {
        assert_eq!(get(&url, &format!("runs:{tag}")).await, None, "{tag} ran");
    }
    assert_eq!(queued.status().await.unwrap(), TaskState::Cancelled);
    assert_eq!(delayed.status().await.unwrap(), TaskState::Cancelled);
    // Nothing is left in the queue: they were acked, not handed on (nor
    // `after`, told while it ran: acked, not retried).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pym_broker::stats::queue_stats(&mut conn(&url).await, "c")
            .await
            .unwrap();
        if (s.work(), s.delayed_later, s.delayed_due) == (0, 0, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&url, "runs:after").await, Some(1), "not retried");
}
