//! A global concurrency cap on a real redis-server: `max_concurrency = 2`
//! on three worker processes (eight slots each) never runs more than two at
//! once, and every task runs once; tasks over the cap are parked and moved
//! back as places free up.

mod flow_common;

use flow_common::{children, eventually_at_least, get, queue};
use pym_runtime::testing::RedisServer;
use pym_runtime::{TaskError, asynctask};
use std::time::Duration;

/// Counts how many run at once (and the most seen) in Redis.
#[asynctask(queue = "cc", max_concurrency = 2, timeout_secs = 20, max_retries = 0)]
async fn capped(url: String, n: u32) -> Result<(), TaskError> {
    let mut c = flow_common::conn(&url).await;
    let _: i64 = redis::Script::new(
        "local n = redis.call('INCR', 'running')
         if n > tonumber(redis.call('GET', 'most') or '0') then redis.call('SET', 'most', n) end
         return n",
    )
    .invoke_async(&mut c)
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: i64 = redis::cmd("DECR")
        .arg("running")
        .query_async(&mut c)
        .await?;
    let _: i64 = redis::cmd("SADD")
        .arg("done")
        .arg(n)
        .query_async(&mut c)
        .await?;
    let _: i64 = redis::cmd("INCR").arg("runs").query_async(&mut c).await?;
    Ok(())
}

/// One at a time per tenant (the caller's `tenant` claim).
#[asynctask(
    queue = "ck",
    max_concurrency = 1,
    limit_key = "{claim.tenant}",
    timeout_secs = 20
)]
async fn per_tenant(url: String) -> Result<(), TaskError> {
    let tenant = pym_runtime::task::flow::claim("tenant");
    let mut c = flow_common::conn(&url).await;
    let _: i64 = redis::Script::new(
        "local n = redis.call('INCR', 'running:' .. ARGV[1])
         local all = redis.call('INCR', 'running')
         if n > tonumber(redis.call('GET', 'most:' .. ARGV[1]) or '0') then redis.call('SET', 'most:' .. ARGV[1], n) end
         if all > tonumber(redis.call('GET', 'most') or '0') then redis.call('SET', 'most', all) end
         return n",
    )
    .arg(&tenant)
    .invoke_async(&mut c)
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _: () = redis::pipe()
        .cmd("DECR")
        .arg(format!("running:{tenant}"))
        .ignore()
        .cmd("DECR")
        .arg("running")
        .ignore()
        .cmd("INCR")
        .arg("runs")
        .ignore()
        .query_async(&mut c)
        .await?;
    Ok(())
}

/// The body of each worker process.
#[tokio::test]
async fn cap_child_worker() {
    flow_common::child_worker_body().await;
}

#[tokio::test]
async fn two_at_once_at_most_across_three_worker_processes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let _workers = children(&url, "cc", "cap_child_worker", 3);
    for n in 0..24 {
        capped::spawn(&q, (url.clone(), n)).await.unwrap();
    }
    eventually_at_least(&url, "runs", 24, Duration::from_secs(60)).await;
    let done: i64 = redis::cmd("SCARD")
        .arg("done")
        .query_async(&mut flow_common::conn(&url).await)
        .await
        .unwrap();
    let (most, runs) = (get(&url, "most").await, get(&url, "runs").await);
    println!("max_concurrency = 2, 24 tasks of 200 ms, 3 worker processes: at most {most} at once");
    assert_eq!(most, 2, "the cap is reached and never passed");
    assert_eq!((done, runs), (24, 24), "each task ran once");
    let leases: i64 = redis::cmd("ZCARD")
        .arg(pym_broker::keys::CapKeys::new("cc", "capped", None).leases)
        .query_async(&mut flow_common::conn(&url).await)
        .await
        .unwrap();
    assert_eq!(leases, 0, "every place was given back");
    // What the operator's autoscaler reads: the queue is capped at 2.
    let caps =
        pym_broker::concurrency::queue_caps(&mut flow_common::conn(&url).await, &["cc".to_owned()])
            .await
            .unwrap();
    assert_eq!(caps, Some(2));
}

#[tokio::test]
async fn a_cap_per_key_counts_each_tenant_apart() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    for tenant in ["a", "b"] {
        let ctx = pym_runtime::Context {
            user_id: Some(format!("user-{tenant}")),
            claims: Some(serde_json::json!({"sub": format!("user-{tenant}"), "tenant": tenant})),
            ..Default::default()
        };
        pym_runtime::context::scope(std::sync::Arc::new(ctx), async {
            for _ in 0..4 {
                per_tenant::spawn(&q, url.clone()).await.unwrap();
            }
        })
        .await;
    }
    let worker = pym_broker::worker::Worker::connect(
        &pym_broker::BrokerConfig::new(&url, flow_common::SECRET),
        flow_common::cfg("ck", "w"),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    eventually_at_least(&url, "runs", 8, Duration::from_secs(30)).await;
    assert_eq!(
        (get(&url, "most:a").await, get(&url, "most:b").await),
        (1, 1)
    );
    println!(
        "cap 1 per tenant, two tenants: at most {} at once in all",
        get(&url, "most").await
    );
    for tenant in ["a", "b"] {
        let leases = pym_broker::keys::CapKeys::new("ck", "per_tenant", Some(tenant)).leases;
        let n: i64 = redis::cmd("ZCARD")
            .arg(leases)
            .query_async(&mut flow_common::conn(&url).await)
            .await
            .unwrap();
        assert_eq!(n, 0, "tenant {tenant}'s places given back");
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
