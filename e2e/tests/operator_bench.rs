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
//!
//! `PYM_BENCH_RATE` unset: a burst, all N created at once (16 creates in
//! flight); its latencies are mostly queueing in the control plane, i.e. they
//! measure throughput. `PYM_BENCH_RATE=<per second>`: creates paced at that
//! rate (each one still measured from its own create call), which measures
//! apply→Ready latency while the namespace fills up to N objects.
//! `PYM_OPERATOR_BIN=target/release/pym-operator` for release figures.
//!
//! Besides apply→Ready, it prints when each step of an API part was first
//! seen (Deployment, ReplicaSet, Pod, scheduled, Ready, Deployment ready),
//! and the CPU the operator and each control-plane component used.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use pym_e2e::Result;
use pym_e2e::operator::{Launch, prepare};
use pym_e2e::proc_stats::proc_stats;
use pym_e2e::pymservice::{is_ready, pym_api};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Watches `api` and records, per PymService, when an object of its API
/// part (`<name>-api...`) first satisfied `pred`.
fn stage<K>(
    api: kube::Api<K>,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    pred: fn(&K) -> bool,
) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut s = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Ok(Some(o)) = s.try_next().await {
            let name = o.meta().name.clone().unwrap_or_default();
            let Some((svc, _)) = name.split_once("-api") else {
                continue;
            };
            if pred(&o) {
                seen.lock()
                    .unwrap()
                    .entry(svc.to_string())
                    .or_insert_with(Instant::now);
            }
        }
    })
}

/// CPU seconds used so far by each control-plane component `e2e/cluster` started.
fn control_plane_cpu() -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let dir = pym_e2e::run_dir().join("pids");
    for c in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ] {
        let pid = std::fs::read_to_string(dir.join(format!("{c}.pid")))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        if let Some(pid) = pid {
            out.push((c.to_string(), proc_stats(pid).cpu_seconds));
        }
    }
    out
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
    let (cluster, ns) = prepare("op-bench").await?;
    let client = cluster.client();
    let nsn = ns.name().to_string();
    let op = Launch::scoped(&cluster, &nsn, &format!("bench-{nsn}")).start()?;
    op.wait_leader(Duration::from_secs(30)).await?;
    let pid = op.pid();
    let before = proc_stats(pid);
    let (rss0, cpu0) = (before.rss_kib, before.cpu_seconds);
    let cp0 = control_plane_cpu();

    let api = pym_api(&client, &nsn);
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();

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

    // And for each step in between, on the API side of every PymService:
    // where the time goes (operator, kube-controller-manager, scheduler, kwok).
    let stages = [
        "API Deployment created (operator)",
        "ReplicaSet created (deployment controller)",
        "Pod created (replicaset controller)",
        "Pod scheduled (scheduler)",
        "Pod Ready (kwok)",
        "Deployment readyReplicas (deployment controller)",
    ];
    let seen: Vec<Arc<Mutex<HashMap<String, Instant>>>> =
        stages.iter().map(|_| Arc::default()).collect();
    let mut watches = Vec::new();
    watches.push(stage(
        kube::Api::<Deployment>::namespaced(client.clone(), &nsn),
        seen[0].clone(),
        |_| true,
    ));
    watches.push(stage(
        kube::Api::<ReplicaSet>::namespaced(client.clone(), &nsn),
        seen[1].clone(),
        |_| true,
    ));
    let pods = kube::Api::<Pod>::namespaced(client.clone(), &nsn);
    watches.push(stage(pods.clone(), seen[2].clone(), |_| true));
    watches.push(stage(pods.clone(), seen[3].clone(), |p: &Pod| {
        p.spec.as_ref().is_some_and(|s| s.node_name.is_some())
    }));
    watches.push(stage(pods, seen[4].clone(), |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }));
    watches.push(stage(
        kube::Api::<Deployment>::namespaced(client.clone(), &nsn),
        seen[5].clone(),
        |d: &Deployment| {
            d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= 1
        },
    ));

    let spec = if shape == "async" {
        json!({"image": "pym/hello:dev", "withAsync": true, "redis": {"managed": {}}})
    } else {
        json!({"image": "pym/hello:dev"})
    };
    let rate: Option<f64> = std::env::var("PYM_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|r| *r > 0.0);
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
                if let Some(r) = rate {
                    let at = started + Duration::from_secs_f64(i as f64 / r);
                    tokio::time::sleep_until(at.into()).await;
                }
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
    for w in &watches {
        w.abort();
    }
    let total = started.elapsed();
    let after = proc_stats(pid);
    let (rss, hwm, cpu) = (after.rss_kib, after.peak_rss_kib, after.cpu_seconds);
    let cp: Vec<String> = control_plane_cpu()
        .into_iter()
        .zip(cp0)
        .map(|((c, t), (_, t0))| format!("{c} {:.1}s", t - t0))
        .collect();

    let created = created.lock().unwrap().clone();
    let ready = ready.lock().unwrap().clone();
    // Sorted times from each object's create to its moment in `seen_at`.
    let since_created = |seen_at: &HashMap<String, Instant>| {
        let mut l: Vec<Duration> = created
            .iter()
            .filter_map(|(k, t)| seen_at.get(k).map(|r| r.saturating_duration_since(*t)))
            .collect();
        l.sort();
        l
    };
    let lat = since_created(&ready);
    println!("apply -> step        p50        p90        p99        max   (seen)");
    for (what, m) in stages.iter().zip(&seen) {
        let l = since_created(&m.lock().unwrap());
        println!(
            "{:>10.3?} {:>10.3?} {:>10.3?} {:>10.3?} ({:>4})  {what}",
            pct(&l, 0.50),
            pct(&l, 0.90),
            pct(&l, 0.99),
            l.last().copied().unwrap_or_default(),
            l.len()
        );
    }
    println!(
        "BENCH shape={shape} n={n} rate={} ready={}/{n} applied_all={applied_all:?} all_ready={total:?}\n\
         apply->Ready p50={:?} p90={:?} p99={:?} max={:?}\n\
         operator RSS before={} KiB after={} KiB peak={} KiB; CPU {:.2}s over the run",
        rate.map_or("burst".to_string(), |r| format!("{r}/s")),
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
    println!("control plane CPU over the run: {}", cp.join(", "));
    if let Some(r) = op.metric("pym_operator_reconcile_total").await {
        println!("reconciles={r}");
    }
    assert_eq!(lat.len(), n, "every PymService became Ready");
    Ok(())
}
