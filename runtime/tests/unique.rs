//! Unique tasks on a real redis-server: 50 concurrent producers over two
//! keys enqueue two tasks, each producer answered with its key's task id;
//! the lock is released when the task finishes (or starts), not before,
//! and by a task that never starts (expired, cancelled before it started).

mod flow_common;

use flow_common::{cfg, eventually_at_least, get, queue};
use pym_broker::worker::Worker;
use pym_broker::{BrokerConfig, TaskState, keys};
use pym_runtime::testing::RedisServer;
use pym_runtime::{TaskError, TaskId, asynctask};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Counts its runs per user in Redis.
#[asynctask(
    queue = "uq",
    unique(key = "user:{user_id}", until = "finished", ttl_secs = 60)
)]
async fn refresh(url: String, user_id: String) -> Result<(), TaskError> {
    let mut c = flow_common::conn(&url).await;
    let _: i64 = redis::cmd("INCR")
        .arg(format!("runs:{user_id}"))
        .query_async(&mut c)
        .await?;
    Ok(())
}

/// Unique until it starts; waits for its release key, so it is running
/// while the test spawns again.
#[asynctask(queue = "uq", unique(key = "{n}", until = "started"))]
async fn slow(url: String, n: u32) -> Result<(), TaskError> {
    let mut c = flow_common::conn(&url).await;
    let _: i64 = redis::cmd("INCR")
        .arg(format!("slow:{n}"))
        .query_async(&mut c)
        .await?;
    let _: Option<(String, String)> = redis::cmd("BLPOP")
        .arg(format!("go:{n}"))
        .arg(10)
        .query_async(&mut c)
        .await?;
    Ok(())
}

/// Unique until it finishes, expired a second after it is due.
#[asynctask(
    queue = "uq2",
    unique(key = "{n}", until = "finished", ttl_secs = 600),
    expires_in_secs = 1
)]
async fn perishable(url: String, n: u32) -> Result<(), TaskError> {
    let mut c = flow_common::conn(&url).await;
    let _: i64 = redis::cmd("INCR")
        .arg(format!("perishable:{n}"))
        .query_async(&mut c)
        .await?;
    Ok(())
}

/// Unique until it starts, with no expiry: cancelled before it starts.
#[asynctask(queue = "uq2", unique(key = "{n}", until = "started"))]
async fn cancellable(url: String, n: u32) -> Result<(), TaskError> {
    let mut c = flow_common::conn(&url).await;
    let _: i64 = redis::cmd("INCR")
        .arg(format!("cancellable:{n}"))
        .query_async(&mut c)
        .await?;
    Ok(())
}

/// Unique and tracked: its record is written with its lock.
#[asynctask(queue = "uq3", unique(key = "{n}"), track)]
async fn tracked_unique(n: u32) -> Result<u32, TaskError> {
    Ok(n)
}

async fn ready_len(url: &str) -> i64 {
    redis::cmd("XLEN")
        .arg(keys::QueueKeys::new("uq").ready(pym_runtime::Priority::Normal))
        .query_async(&mut flow_common::conn(url).await)
        .await
        .unwrap()
}

#[tokio::test]
async fn fifty_concurrent_producers_over_two_keys_enqueue_two_tasks() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let producers = (0..50).map(|i| {
        let (q, url) = (q.clone(), url.clone());
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        tokio::spawn(async move {
            let q = if i % 5 == 0 {
                flow_common::queue(&url).await
            } else {
                q
            };
            let id = refresh::spawn(&q, (url, user.to_owned()))
                .await
                .unwrap()
                .id();
            (user, id)
        })
    });
    let answers: Vec<(&str, TaskId)> = futures::future::join_all(producers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut ids: HashMap<&str, HashSet<TaskId>> = HashMap::new();
    for (user, id) in &answers {
        ids.entry(user).or_default().insert(*id);
    }
    assert_eq!(ids.len(), 2);
    assert!(
        ids.values().all(|s| s.len() == 1),
        "one id per key: {ids:?}"
    );
    assert_ne!(ids["alice"], ids["bob"]);
    assert_eq!(ready_len(&url).await, 2, "two tasks enqueued");
    let lock = keys::unique("uq", "refresh", "user:alice");
    let holder: String = redis::cmd("GET")
        .arg(&lock)
        .query_async(&mut flow_common::conn(&url).await)
        .await
        .unwrap();
    assert_eq!(holder, ids["alice"].iter().next().unwrap().to_string());

    let worker = Worker::connect(
        &BrokerConfig::new(&url, flow_common::SECRET),
        cfg("uq", "w"),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    eventually_at_least(&url, "runs:alice", 1, Duration::from_secs(20)).await;
    eventually_at_least(&url, "runs:bob", 1, Duration::from_secs(20)).await;
    // Finished: the lock went with the ack, so the next spawn enqueues.
    let mut fresh = None;
    for _ in 0..100 {
        let id = refresh::spawn(&q, (url.clone(), "alice".into()))
            .await
            .unwrap()
            .id();
        if !ids["alice"].contains(&id) {
            fresh = Some(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fresh.is_some(), "the lock was not released at finish");
    eventually_at_least(&url, "runs:alice", 2, Duration::from_secs(20)).await;
    assert_eq!(get(&url, "runs:bob").await, 1);

    // until = "started": released when the task starts, while it runs.
    let first = slow::spawn(&q, (url.clone(), 7)).await.unwrap();
    eventually_at_least(&url, "slow:7", 1, Duration::from_secs(20)).await;
    let second = slow::spawn(&q, (url.clone(), 7)).await.unwrap();
    assert_ne!(
        first, second,
        "a running task of until = started holds no lock"
    );
    // The second starts while the first still runs.
    eventually_at_least(&url, "slow:7", 2, Duration::from_secs(20)).await;
    let _: i64 = redis::cmd("RPUSH")
        .arg("go:7")
        .arg("1")
        .arg("1")
        .query_async(&mut flow_common::conn(&url).await)
        .await
        .unwrap();
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_task_that_never_starts_gives_its_lock_back() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let expiring = perishable::spawn(&q, (url.clone(), 1)).await.unwrap();
    let cancelled = cancellable::spawn(&q, (url.clone(), 2)).await.unwrap();
    let _ = cancelled.cancel().await.unwrap();
    let again = perishable::spawn(&q, (url.clone(), 1)).await.unwrap();
    assert_eq!(
        again.id(),
        expiring.id(),
        "the key is held before a worker runs"
    );
    let again = cancellable::spawn(&q, (url.clone(), 2)).await.unwrap();
    assert_eq!(
        again.id(),
        cancelled.id(),
        "the key is held before a worker runs"
    );
    // Past its expiry before any worker picks it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let worker = Worker::connect(
        &BrokerConfig::new(&url, flow_common::SECRET),
        cfg("uq2", "w"),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let locks = [
        keys::unique("uq2", "perishable", "1"),
        keys::unique("uq2", "cancellable", "2"),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let held: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&locks)
            .query_async(&mut flow_common::conn(&url).await)
            .await
            .unwrap();
        if held.iter().all(Option::is_none) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "locks still held: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(&url, "perishable:1").await,
        0,
        "the expired task never ran"
    );
    assert_eq!(
        get(&url, "cancellable:2").await,
        0,
        "the cancelled task never ran"
    );
    let dead = pym_broker::dead::count(&mut flow_common::conn(&url).await, "uq2")
        .await
        .unwrap();
    assert_eq!(dead, 1, "the expired task is dead-lettered");
    // Each key is free: a new spawn enqueues a new task, which runs.
    let fresh = perishable::spawn(&q, (url.clone(), 1)).await.unwrap();
    assert_ne!(
        fresh.id(),
        expiring.id(),
        "the expired task's key was given back"
    );
    let fresh = cancellable::spawn(&q, (url.clone(), 2)).await.unwrap();
    assert_ne!(
        fresh.id(),
        cancelled.id(),
        "the cancelled task's key was given back"
    );
    for key in ["perishable:1", "cancellable:2"] {
        eventually_at_least(&url, key, 1, Duration::from_secs(20)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_unique_tracked_task_is_recorded_queued_at_its_spawn() {
    let redis = RedisServer::start();
    let q = queue(&redis.url()).await;
    let h = tracked_unique::spawn(&q, 5).await.unwrap();
    assert_eq!(h.status().await.unwrap(), TaskState::Queued);
    let again = tracked_unique::spawn(&q, 5).await.unwrap();
    assert_eq!(again.id(), h.id());
    assert_eq!(again.status().await.unwrap(), TaskState::Queued);
    let later = tracked_unique::spawn_in(&q, Duration::from_secs(60), 6)
        .await
        .unwrap();
    assert_eq!(later.status().await.unwrap(), TaskState::Delayed);
}
