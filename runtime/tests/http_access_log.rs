//! The access line: every request writes one, with the request's ids.
//!
//! Alone in its test binary: tracing caches whether a callsite is enabled
//! for every thread, and the other tests of a shared binary, running on
//! other threads with no subscriber or another one, made this one miss its
//! lines now and then (3 runs in 40).

mod http_common;

use http_common::*;

/// The lines logged while `f` runs, as JSON (pym's production format).
async fn logged<F: std::future::Future<Output = ()>>(f: F) -> Vec<serde_json::Value> {
    let (subscriber, captured) = pym_process::json_lines::capture();
    let _on = tracing::subscriber::set_default(subscriber);
    f.await;
    captured.lines()
}

#[tokio::test(flavor = "current_thread")]
async fn every_request_writes_one_access_line() {
    let svc = service();
    let mut ids = Vec::new();
    let lines = logged(async {
        for req in [get("/ping"), get("/me"), get("/boom"), get("/nowhere")] {
            let r = call(&svc, req).await;
            ids.push(r.headers["x-request-id"].to_str().unwrap().to_string());
        }
    })
    .await;
    let access: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request done")
        .collect();
    let want = [
        ("/ping", "ping", 200),
        ("/me", "me", 401),
        ("/boom", "boom", 500),
        ("/nowhere", "unmatched", 404),
    ];
    assert_eq!(access.len(), want.len(), "{lines:#?}");
    for ((line, (path, op, status)), id) in access.iter().zip(want).zip(&ids) {
        let f = &line["fields"];
        assert_eq!(
            (
                f["method"].as_str(),
                f["path"].as_str(),
                f["operation"].as_str()
            ),
            (Some("GET"), Some(path), Some(op)),
            "{line}"
        );
        assert_eq!(f["status"], status, "{line}");
        assert!(
            f["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
        assert_eq!(line["request_id"], id.as_str(), "{line}");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
        assert_eq!(line["level"], "INFO");
    }
}
