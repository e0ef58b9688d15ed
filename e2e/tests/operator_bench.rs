//! Benchmark (not run by default): apply N PymServices, measure apply→Ready
//! and the operator's RSS and CPU.
//!
//! ```sh
//! cargo build -p pym-operator
//! PYM_BENCH_N=100  cargo test -p pym-e2e --test operator_bench -- --ignored --nocapture
//! PYM_BENCH_N=1000 cargo test -p pym-e2e --test operator_bench -- --ignored --nocapture
//! ```
//! `PYM_BENCH_SHAPE=api` (default): 1 API pod each. `async`: API + worker +
//! managed Redis (3 pods, 9 objects each). kwok has 110 pods per node: bring
//! the cluster up with enough nodes (`PYM_E2E_NODES=12 e2e/cluster up`).

mod operator_support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use operator_support::*;
use pym_e2e::{Cluster, Result};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn proc_stats(pid: u32) -> (u64, u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    (kib("VmRSS:"), kib("VmHWM:"), ticks as f64 / 100.0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored"]
async fn bench_apply_to_ready() -> Result<()> {
    let n: usize = std::env::var("PYM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let shape = std::env::var("PYM_BENCH_SHAPE").unwrap_or_else(|_| "api".into());
    let cluster = Cluster::connect().await;
    install_crd(&cluster).await?;
    let client = cluster.client();
    let ns = cluster.namespace("op-bench").await?;
    let nsn = ns.name().to_string();
    let op = Operator::start(&cluster, &nsn, &format!("bench-{nsn}"))?;
    op.wait_leader(Duration::from_secs(30)).await?;
    let pid = op.pid();
    let (rss0, _, cpu0) = proc_stats(pid);

    let api = pym_api(&client, &nsn);
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let children: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();

    // Watch for Ready before creating anything.
    let r2 = ready.clone();
    let watch_api = api.clone();
    let watch = tokio::spawn(async move {
        let mut s = watcher(watch_api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Ok(Some(o)) = s.try_next().await {
            if is_ready(&o) {
                let mut r = r2.lock().unwrap();
                r.entry(o.metadata.name.clone().unwrap_or_default())
                    .or_insert_with(Instant::now);
                if r.len() >= n {
                    break;
                }
            }
        }
    });

    // And for the API Deployments (the operator's own part of the latency).
    let c2 = children.clone();
    let deps: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), &nsn);
    let dwatch = tokio::spawn(async move {
        let mut s = watcher(deps, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Ok(Some(d)) = s.try_next().await {
            let name = d.metadata.name.clone().unwrap_or_default();
            if let Some(svc) = name.strip_suffix("-api") {
                let mut c = c2.lock().unwrap();
                c.entry(svc.to_string()).or_insert_with(Instant::now);
                if c.len() >= n {
                    break;
                }
            }
        }
    });

    let spec = if shape == "async" {
        json!({"image": "pym/hello:dev", "withAsync": true, "redis": {"managed": {}}})
    } else {
        json!({"image": "pym/hello:dev"})
    };
    let started = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let api = api.clone();
            let created = created.clone();
            let spec = spec.clone();
            async move {
                let name = format!("b{i:04}");
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "pym.dev/v1alpha1", "kind": "PymService",
                    "metadata": {"name": name}, "spec": spec
                }))
                .unwrap();
                let t = Instant::now();
                api.create(&PostParams::default(), &obj)
                    .await
                    .expect("create");
                created.lock().unwrap().insert(name, t);
            }
        })
        .await;
    let applied_all = started.elapsed();
    let deadline = Duration::from_secs(60 + n as u64 / 2);
    let _ = tokio::time::timeout(deadline, watch).await;
    dwatch.abort();
    let total = started.elapsed();
    let (rss, hwm, cpu) = proc_stats(pid);

    let created = created.lock().unwrap().clone();
    let ready = ready.lock().unwrap().clone();
    let mut lat: Vec<Duration> = created
        .iter()
        .filter_map(|(k, t)| ready.get(k).map(|r| r.saturating_duration_since(*t)))
        .collect();
    lat.sort();
    let children = children.lock().unwrap().clone();
    let mut clat: Vec<Duration> = created
        .iter()
        .filter_map(|(k, t)| children.get(k).map(|r| r.saturating_duration_since(*t)))
        .collect();
    clat.sort();
    println!(
        "apply->API Deployment created p50={:?} p99={:?} max={:?} ({} seen)",
        pct(&clat, 0.50),
        pct(&clat, 0.99),
        clat.last().copied().unwrap_or_default(),
        clat.len()
    );
    println!(
        "BENCH shape={shape} n={n} ready={}/{n} applied_all={applied_all:?} all_ready={total:?}\n\
         apply->Ready p50={:?} p90={:?} p99={:?} max={:?}\n\
         operator RSS before={} KiB after={} KiB peak={} KiB; CPU {:.2}s over the run",
        lat.len(),
        pct(&lat, 0.50),
        pct(&lat, 0.90),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or_default(),
        rss0,
        rss,
        hwm,
        cpu - cpu0
    );
    if let Some(r) = op.metric("pym_operator_reconcile_total").await {
        println!("reconciles={r}");
    }
    assert_eq!(lat.len(), n, "every PymService became Ready");
    Ok(())
}
