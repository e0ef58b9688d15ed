//! 1,000 idle connections: the service still answers, and what they cost
//! in memory (RSS of this process, which holds both ends). Alone in its
//! test binary so that no other test moves the RSS.

mod http_raw;

use http_raw::*;
use std::time::Duration;
use tokio::net::TcpStream;

const IDLE: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections() {
    let svc = start(
        "name: idle\nvalidate_responses: false\nheader_read_timeout_secs: 60\nmax_connections: 2000\n",
    )
    .await;
    // Warm up: the first requests allocate what every later one reuses.
    for _ in 0..20 {
        assert_eq!(get(svc.api, "/fast").await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(svc.api).await.unwrap());
    }
    // Accepting is in order: once this is answered, all idle ones are in.
    let r = get(svc.api, "/fast").await;
    assert_eq!(r.status, 200, "{r:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    let per = after.saturating_sub(before) as f64 / IDLE as f64;
    eprintln!(
        "RSS {before} KiB before, {after} KiB with {IDLE} idle connections: ~{per:.1} KiB each (both ends)"
    );
    // Not a performance check: a gross leak per connection (a megabyte)
    // would show here.
    assert!(per < 1024.0, "{per} KiB per idle connection");
    drop(idle);
}
