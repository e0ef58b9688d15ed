//! Unique tasks on a real redis-server: 50 concurrent producers over two
//! keys enqueue two tasks, each producer answered with its key's task id;
//! the lock is released when the task finishes (or starts), not before.

mod flow_common;

use flow_common::{cfg, eventually_at_least, get, queue};
use pym_broker::worker::Worker;
use pym_broker::{BrokerConfig, keys};
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
