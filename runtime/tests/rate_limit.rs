//! A global rate limit on a real redis-server: 300 tasks at `10/s` on three
//! worker processes run 100 (within 10 %) in the first 10 s; the rest are
//! deferred to their slots, not failed and not retried.

mod flow_common;

use flow_common::{children, eventually_at_least, now_ms, queue};
use pym_runtime::testing::RedisServer;
use pym_runtime::{TaskError, asynctask};
use std::time::Duration;

/// Records when it started (ms since the epoch) in Redis.
#[asynctask(queue = "rl", rate = "10/s", max_retries = 0)]
async fn limited(url: String, n: u32) -> Result<(), TaskError> {
    let mut c = flow_common::conn(&url).await;
    let _: i64 = redis::cmd("RPUSH")
        .arg("starts")
        .arg(now_ms())
        .query_async(&mut c)
        .await?;
    let _: i64 = redis::cmd("INCR").arg("runs").query_async(&mut c).await?;
    let _ = n;
    Ok(())
}

/// The body of each worker process.
#[tokio::test]
async fn rate_child_worker() {
    flow_common::child_worker_body().await;
}

#[tokio::test]
async fn ten_per_second_hold_across_three_worker_processes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    for n in 0..300 {
        limited::spawn(&q, (url.clone(), n)).await.unwrap();
    }
    let _workers = children(&url, "rl", "rate_child_worker", 3);
    eventually_at_least(&url, "runs", 1, Duration::from_secs(30)).await;
    let first: Vec<u64> = redis::cmd("LRANGE")
        .arg("starts")
        .arg(0)
        .arg(0)
        .query_async(&mut flow_common::conn(&url).await)
        .await
        .unwrap();
    let t0 = first[0];
    // Wait past the window, then count the starts inside it.
    let end = t0 + 10_000;
    tokio::time::sleep(Duration::from_millis(end.saturating_sub(now_ms()) + 1500)).await;
    let starts: Vec<u64> = redis::cmd("LRANGE")
        .arg("starts")
        .arg(0)
        .arg(-1)
        .query_async(&mut flow_common::conn(&url).await)
        .await
        .unwrap();
    let in_window = starts.iter().filter(|&&t| t < end).count();
    println!(
        "rate 10/s, 300 tasks, 3 worker processes: {in_window} started in the first 10 s ({} by {} ms)",
        starts.len(),
        now_ms() - t0
    );
    assert!(
        (90..=110).contains(&in_window),
        "{in_window} tasks started in the first 10 s, want 100 ± 10 %"
    );
    assert!(starts.len() < 300, "the limit held the rest back");
    let dead: i64 = redis::cmd("HLEN")
        .arg(pym_broker::keys::QueueKeys::new("rl").dead)
        .query_async(&mut flow_common::conn(&url).await)
        .await
        .unwrap();
    assert_eq!(dead, 0, "deferred, never failed");
}
