//! Autoscaler benchmark (issue #7) on the local control plane:
//!
//! 1. BENCH_SERVICES (default 200) PymServices, each with its own worker
//!    queue on one loopback redis-server (external Redis URL Secret),
//!    minReplicas 0, polled every second by one operator process;
//! 2. operator CPU while idle-polling all of them (BENCH_IDLE_SECS, default 30);
//! 3. BENCH_SPIKES (default 20) spikes of 1000 tasks, each on another
//!    service: time from the enqueue to the worker Deployment's replicas
//!    being patched (read from the apiserver), and CPU during the spikes.
//!
//! Run: `e2e/cluster up`, `cargo build --release -p pym-operator`, then
//! `cargo bench -p pym-e2e --bench autoscale`. The operator binary is
//! `$PYM_OPERATOR_BIN`, else target/release/pym-operator, else target/debug.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use pym_broker::envelope::Envelope;
use pym_broker::{Broker, BrokerConfig};
use pym_e2e::operator::{Launch, Operator, operator_binary_prefer_release, prepare};
use pym_e2e::proc_stats::proc_stats;
use pym_e2e::pymservice::pym_api;
use pym_e2e::{RedisServer, Result, wait};
use pym_runtime::Priority;
use serde_json::json;
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    proc_stats(pid).cpu_seconds
}

fn rss_mib(pid: u32) -> f64 {
    proc_stats(pid).rss_kib as f64 / 1024.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn redis_ops_per_sec(url: &str) -> Result<String> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await?;
    Ok(info
        .lines()
        .find(|l| l.starts_with("instantaneous_ops_per_sec:"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default())
}

/// `services` PymServices `svc-<i>`, each with its own worker queue `q-<i>`,
/// minReplicas 0, on the external Redis (and JWT) of the Secret `bench`.
/// Returns when their creation started (after the Secret's).
async fn create_services(
    client: &Client,
    ns: &str,
    redis_url: String,
    services: usize,
) -> Result<Instant> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bench"},
        "stringData": {"url": redis_url, "jwt": "bench-secret"},
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;
    let pym = pym_api(client, ns);
    let created = Instant::now();
    for i in 0..services {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "pym.dev/v1alpha1", "kind": "PymService",
            "metadata": {"name": format!("svc-{i}")},
            "spec": {
                "image": "registry.invalid/pym/bench:1",
                "api": {"replicas": 0},
                "jwtSecretRef": {"name": "bench", "key": "jwt"},
                "withAsync": true,
                "workers": {"minReplicas": 0, "maxReplicas": 10, "concurrency": 10, "queues": [format!("q-{i}")]},
                "redis": {"external": {"urlSecretRef": {"name": "bench", "key": "url"}}},
            },
        }))?;
        pym.create(&PostParams::default(), &obj).await?;
    }
    Ok(created)
}

/// Waits until the operator made the worker Deployment of every service.
async fn wait_workers(deps: &Api<Deployment>, services: usize) -> Result<()> {
    wait::until(
        format!("{services} worker Deployments"),
        Duration::from_secs(600),
        || async {
            let l = deps.list(&Default::default()).await?;
            let workers = l
                .items
                .iter()
                .filter(|d| {
                    d.metadata
                        .name
                        .as_deref()
                        .is_some_and(|x| x.ends_with("-worker"))
                })
                .count();
            Ok::<_, kube::Error>((workers >= services).then_some(()))
        },
    )
    .await
}

/// One spike per service `0..spikes`: 1000 tasks on `q-<i>`, then the time
/// (ms) until `svc-<i>-worker` has replicas patched above 0.
async fn spike_latencies(
    broker: &Broker,
    deps: &Api<Deployment>,
    spikes: usize,
) -> Result<Vec<f64>> {
    let mut lat = Vec::new();
    for i in 0..spikes {
        let queue = format!("q-{i}");
        let envs: Vec<Envelope> = (0..1000)
            .map(|k| {
                Envelope::new(
                    "bench",
                    &queue,
                    Priority::Normal,
                    serde_json::value::RawValue::from_string(k.to_string()).unwrap(),
                    Default::default(),
                )
            })
            .collect();
        let name = format!("svc-{i}-worker");
        let start = Instant::now();
        broker.enqueue_batch(&envs).await?;
        loop {
            let r = deps
                .get(&name)
                .await?
                .spec
                .and_then(|s| s.replicas)
                .unwrap_or(0);
            if r > 0 {
                lat.push(start.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("{name} not scaled after 60 s").into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(lat)
}

/// Once the operator (`pid`) reconciled every service: its CPU while idle
/// polling, then the spikes' latencies and its CPU during them.
async fn measure(
    op: &Operator,
    deps: &Api<Deployment>,
    redis: &RedisServer,
    created: Instant,
) -> Result<()> {
    let services = env_usize("BENCH_SERVICES", 200);
    let idle_secs = env_usize("BENCH_IDLE_SECS", 30) as u64;
    let spikes = env_usize("BENCH_SPIKES", 20).min(services);
    let pid = op.pid();
    wait_workers(deps, services).await?;
    println!(
        "setup: {services} PymServices reconciled in {:.1} s by {}",
        created.elapsed().as_secs_f64(),
        op.binary.display()
    );
    // Let the reconciles settle before measuring the polling alone.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_cpu = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
    let ops = redis_ops_per_sec(&redis.url()).await?;
    println!(
        "idle: {services} services polled every 1 s: operator CPU {:.1}% of one core, RSS {:.0} MiB, redis {ops} ops/s",
        idle_cpu * 100.0,
        rss_mib(pid)
    );

    let broker = Broker::connect(&BrokerConfig::new(redis.url(), "bench-secret")).await?;
    let c1 = cpu_seconds(pid);
    let t1 = Instant::now();
    let mut lat = spike_latencies(&broker, deps, spikes).await?;
    let spike_cpu = (cpu_seconds(pid) - c1) / t1.elapsed().as_secs_f64();
    let (p50, p95, max) = (pct(&mut lat, 0.5), pct(&mut lat, 0.95), pct(&mut lat, 1.0));
    println!(
        "spike → replicas patched ({spikes} spikes of 1000 tasks, poll 1 s): p50 {p50:.0} ms, p95 {p95:.0} ms, max {max:.0} ms; operator CPU during spikes {:.1}%",
        spike_cpu * 100.0
    );
    println!(
        "KEDA defaults for comparison: pollingInterval 30 s (0→1 up to 30 s), then the HPA syncs every 15 s (1→N up to 45 s)"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let services = env_usize("BENCH_SERVICES", 200);
    let (cluster, ns) = prepare("autoscale-bench").await?;
    let n = ns.name();
    let client = cluster.client();
    let redis = RedisServer::start();
    let created = create_services(&client, n, redis.url(), services).await?;

    let mut op = Launch::new(
        operator_binary_prefer_release(),
        cluster.kubeconfig_path(),
        "bench",
    )
    .args(["--namespace", n, "--lease-namespace", n])
    .args(["--log-format", "json"])
    .env("RUST_LOG", "warn")
    .log_name("operator-autoscale-bench.log")
    .start()?;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), n);
    let result = measure(&op, &deps, &redis, created).await;
    op.kill9();
    if result.is_err() {
        eprintln!("operator log: {}", op.log.display());
    }
    result
}
