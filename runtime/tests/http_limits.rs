//! The server's timeouts and limits, and `/metrics` on its own port, on a
//! real listener (issue #14 items 6 and 9).

mod http_raw;

use http_raw::*;
use pym_runtime::contract;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BASE: &str = "name: limits\nvalidate_responses: false\nbody_limit: 1024\n";

fn yaml(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// A client sending its headers a byte every 500 ms is cut off after the
/// header timeout (1 s), long before it would have finished (~25 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let svc = start(&yaml("header_read_timeout_secs: 1\n")).await;
    let stream = TcpStream::connect(svc.api).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    tokio::spawn(async move {
        for b in b"GET /ping HTTP/1.1\r\nHost: test\r\nX-Slow: 0123456789\r\n\r\n" {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), rd.read_to_end(&mut buf)).await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "still open after 8 s");
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed before the header timeout: {elapsed:?}"
    );
    assert!(
        !String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"),
        "the slow request was answered"
    );
}

/// A `Content-Length` over `body_limit` gets 413 at once, without the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_content_length_gets_413_at_once() {
    let svc = start(&yaml("")).await;
    let mut s = TcpStream::connect(svc.api).await.unwrap();
    let started = Instant::now();
    let r = exchange(
        &mut s,
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: 10000000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.status, 413, "{r:?}");
    let v = r.json();
    assert_eq!(v["error"], "PAYLOAD_TOO_LARGE", "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("body_limit"),
        "{v}"
    );
}

/// A body sent a byte every 500 ms hits the body timeout (1 s): 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_gets_408() {
    let svc = start(&yaml("body_timeout_secs: 1\n")).await;
    let stream = TcpStream::connect(svc.api).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
          Content-Length: 40\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    tokio::spawn(async move {
        for b in br#"{"a": "0123456789012345678901234567890"}"# {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), rd.read_to_end(&mut buf))
        .await
        .expect("no answer within 8 s")
        .unwrap();
    let r = parse(&buf);
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(r.json()["error"], "REQUEST_TIMEOUT", "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
}

/// A handler slower than the request timeout: 503, in the error format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handler_gets_503() {
    let svc = start(&yaml("request_timeout_secs: 1\n")).await;
    let started = Instant::now();
    let r = get(svc.api, "/slow").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.json()["error"], "SERVICE_UNAVAILABLE", "{r:?}");
    assert!(started.elapsed() < SLOW, "{:?}", started.elapsed());
    assert_eq!(get(svc.api, "/fast").await.status, 200);
}

/// Over `max_in_flight`, a request gets 503 with `Retry-After` at once;
/// `/healthz` is still answered; once the slow one is done, all is well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_cap_sheds_load() {
    let svc = start(&yaml("max_in_flight: 1\n")).await;
    let addr = svc.api;
    let slow = tokio::spawn(async move { get(addr, "/slow").await });
    let deadline = Instant::now() + SLOW;
    let shed = loop {
        let r = get(addr, "/fast").await;
        if r.status == 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(shed.status, 503, "{shed:?}");
    assert_eq!(shed.header("retry-after").as_deref(), Some("1"), "{shed:?}");
    assert!(
        shed.json()["error_id"].is_string(),
        "error format: {shed:?}"
    );
    assert_eq!(get(addr, contract::PATH_HEALTHZ).await.status, 200);
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(get(addr, "/fast").await.status, 200);
}

/// With `max_connections` open, the server accepts no more until one
/// closes; then the waiting connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_wait_for_a_slot() {
    let svc = start(&yaml("max_connections: 3\nheader_read_timeout_secs: 60\n")).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(svc.api).await.unwrap());
    }
    let mut extra = TcpStream::connect(svc.api).await.unwrap();
    extra
        .write_all(b"GET /fast HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let early = tokio::time::timeout(Duration::from_secs(1), extra.read_to_end(&mut buf)).await;
    assert!(
        early.is_err(),
        "served beyond max_connections: {:?}",
        String::from_utf8_lossy(&buf)
    );
    drop(idle.pop());
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut buf))
        .await
        .expect("not served after a slot freed")
        .unwrap();
    assert_eq!(parse(&buf).status, 200);
}

/// With `metrics_port`, `/metrics` is on that port only; `/version` stays
/// on the API port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_port() {
    let svc = start(&yaml("metrics_port: 9464\n")).await;
    let metrics = svc.metrics.expect("a metrics listener");
    let r = get(svc.api, contract::PATH_METRICS).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.json()["error"], "NOT_FOUND", "{r:?}");
    let r = get(metrics, contract::PATH_METRICS).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some(contract::METRICS_CONTENT_TYPE)
    );
    assert!(r.body.contains("# EOF"), "{r:?}");
    assert_eq!(get(metrics, "/version").await.status, 404);
    assert_eq!(get(svc.api, "/version").await.status, 200);
}

/// Without `metrics_port`, `/metrics` is on the API port, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_the_api_port_by_default() {
    let svc = start(&yaml("")).await;
    assert!(svc.metrics.is_none());
    let r = get(svc.api, contract::PATH_METRICS).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some(contract::METRICS_CONTENT_TYPE)
    );
}

/// Shutdown stops accepting, lets the request in flight finish, and the
/// serve future ends (with an idle keep-alive connection open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight() {
    let mut svc = start(&yaml("metrics_port: 9464\n")).await;
    let addr = svc.api;
    let _idle = TcpStream::connect(addr).await.unwrap();
    let slow = tokio::spawn(async move { get(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    svc.stop();
    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    tokio::time::timeout(Duration::from_secs(5), &mut svc.task)
        .await
        .expect("serve did not end after the drain")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
