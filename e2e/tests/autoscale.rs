//! Autoscaling e2e (issue #7): the real operator process, the real
//! apiserver, a real redis-server, and real `hello` worker processes
//! started from the worker Deployment's pod template.
//!
//! The managed Redis pod of the example is faked by kwok, so the test runs
//! a loopback redis-server with the password the operator generated, and
//! starts the operator with `--stats-redis-endpoint <ns>/hello=127.0.0.1:<port>`
//! (the documented override for operators outside the cluster).
//!
//! Needs `e2e/cluster up`, `cargo build -p pym-operator -p hello`.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, Secret};
use kube::api::{Api, Patch, PatchParams};
use pym_broker::envelope::Envelope;
use pym_broker::keys::QueueKeys;
use pym_broker::stats::{QueueStats, queue_stats};
use pym_broker::{Broker, BrokerConfig, fetch};
use pym_e2e::objects::secret_value;
use pym_e2e::operator::{Launch, Operator, prepare};
use pym_e2e::pymservice::{apply_hello, condition, kubectl_get_pym, pym_api};
use pym_e2e::{Cluster, RedisServer, Result, TestNamespace, free_port, run_dir, target_dir, wait};
use pym_runtime::{Context, Priority};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TASK: &str = "send_welcome_email_async";
const QUEUE: &str = "default";

/// The operator of the operator tests, plus the stats endpoint override.
fn start_operator(cluster: &Cluster, ns: &str, redis_port: u16) -> Result<Operator> {
    Launch::scoped(cluster, ns, &format!("autoscale-{ns}"))
        .arg("--stats-redis-endpoint")
        .arg(format!("{ns}/hello=127.0.0.1:{redis_port}"))
        .start()
}

fn hello_binary() -> PathBuf {
    let bin = target_dir().join("debug").join("hello");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p hello` before this test",
        bin.display()
    );
    bin
}

/// The example service, applied as is, then its autoscaling tuned for a
/// short test (`scaleDownWindowSeconds`, `minReplicas`).
async fn apply_tuned_hello(cluster: &Cluster, ns: &str, min: i32, window: i32) -> Result<()> {
    apply_hello(cluster, ns).await?;
    let patch = json!({"spec": {"workers": {
        "minReplicas": min,
        "autoscaling": {"scaleDownWindowSeconds": window}
    }}});
    pym_api(&cluster.client(), ns)
        .patch("hello", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A broker that signs tasks the way the service's workers verify them: with
/// the task secret the operator injects into the worker pods.
async fn task_broker(cluster: &Cluster, ns: &str, url: &str) -> Result<Broker> {
    let dep = Api::<Deployment>::namespaced(cluster.client(), ns)
        .get("hello-worker")
        .await?;
    let container = dep
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .ok_or("worker container")?;
    let r = container
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == pym_runtime::contract::ENV_TASK_SECRET)
        .and_then(|e| e.value_from?.secret_key_ref)
        .ok_or("the worker pods get PYM_TASK_SECRET from a Secret")?;
    let s = Api::<Secret>::namespaced(cluster.client(), ns)
        .get(&r.name)
        .await?;
    let secret = secret_value(&s, &r.key).ok_or("task secret key")?;
    Ok(Broker::connect(&BrokerConfig::new(url.to_string(), secret)).await?)
}

/// Waits for the managed Redis Secret and makes the loopback server require
/// its password, as the managed Redis pod would. Returns the loopback URL.
async fn serve_managed_password(
    cluster: &Cluster,
    ns: &str,
    redis: &RedisServer,
) -> Result<String> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), ns);
    let pw = wait::until("Secret hello-redis", wait::TIMEOUT, || async {
        Ok::<_, kube::Error>(
            secrets
                .get_opt("hello-redis")
                .await?
                .and_then(|s| secret_value(&s, "password")),
        )
    })
    .await?;
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(&pw)
        .query_async(&mut conn)
        .await?;
    Ok(format!("redis://:{pw}@127.0.0.1:{}/0", redis.port()))
}

async fn replicas(deps: &Api<Deployment>, name: &str) -> Option<i32> {
    deps.get_opt(name).await.ok().flatten()?.spec?.replicas
}

async fn wait_replicas(deps: &Api<Deployment>, want: i32, timeout: Duration) -> Result<()> {
    wait::until(
        format!("hello-worker replicas = {want}"),
        timeout,
        || async {
            let r = replicas(deps, "hello-worker").await;
            if r == Some(want) {
                Ok(Some(()))
            } else {
                Err(format!("replicas {r:?}"))
            }
        },
    )
    .await
}

async fn stats(url: &str) -> Result<QueueStats> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    Ok(queue_stats(&mut conn, QUEUE).await?)
}

fn signup(i: usize) -> Envelope {
    let args = json!({"id": format!("e2e-{i}"), "email": format!("user{i}@example.com"), "name": null, "referred_by": null});
    Envelope::new(
        TASK,
        QUEUE,
        Priority::Normal,
        serde_json::value::RawValue::from_string(args.to_string()).unwrap(),
        Context::default(),
    )
}

/// Worker processes standing in for the pods of the worker Deployment: the
/// container's args and env exactly, with secretKeyRef values read from
/// their Secrets, the pod name for fieldRef, the config volume's ConfigMap
/// written to a local directory, and only the Redis URL's host (pod DNS
/// name → loopback) and the worker port (one network namespace here) changed.
struct Kubelet {
    procs: Vec<Child>,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    started: usize,
}

impl Kubelet {
    async fn from_template(cluster: &Cluster, ns: &str, redis_port: u16) -> Result<Kubelet> {
        let client = cluster.client();
        let dep = Api::<Deployment>::namespaced(client.clone(), ns)
            .get("hello-worker")
            .await?;
        let pod = dep
            .spec
            .and_then(|s| s.template.spec)
            .ok_or("worker pod template")?;
        let c = pod.containers.first().ok_or("worker container")?.clone();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);

        // Config volume → local directory with the ConfigMap's files.
        let dir = run_dir().join(format!("autoscale-{ns}"));
        std::fs::create_dir_all(&dir)?;
        let mut mounts = BTreeMap::new();
        for m in c.volume_mounts.clone().unwrap_or_default() {
            let vol = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name)
                .ok_or("a mount without a volume")?;
            // Scratch space (the /tmp of a read-only root filesystem): the
            // local process has its own.
            if vol.empty_dir.is_some() {
                continue;
            }
            let vol = vol
                .config_map
                .clone()
                .ok_or("only ConfigMap and emptyDir volumes are expected")?;
            let cm = cms.get(&vol.name).await?;
            let local = dir.join(&m.name);
            std::fs::create_dir_all(&local)?;
            for (k, v) in cm.data.unwrap_or_default() {
                std::fs::write(local.join(k), v)?;
            }
            mounts.insert(m.mount_path.clone(), local);
        }
        let mut env = Vec::new();
        for EnvVar {
            name,
            value,
            value_from,
        } in c.env.clone().unwrap_or_default()
        {
            let mut v = match (value, value_from) {
                (Some(v), _) => v,
                (None, Some(src)) => {
                    if let Some(r) = src.secret_key_ref {
                        let s = secrets.get(&r.name).await?;
                        secret_value(&s, &r.key).ok_or("secret key")?
                    } else if src.field_ref.is_some() {
                        "{pod}".to_string()
                    } else {
                        return Err(format!("unsupported env source for {name}").into());
                    }
                }
                _ => String::new(),
            };
            if name == pym_runtime::contract::ENV_REDIS_URL {
                let (before, after) = v.rsplit_once('@').ok_or("Redis URL with credentials")?;
                let tail = after.split_once('/').map(|(_, t)| t).unwrap_or("0");
                v = format!("{before}@127.0.0.1:{redis_port}/{tail}");
            }
            for (mount, local) in &mounts {
                if let Some(rest) = v.strip_prefix(mount.as_str()) {
                    v = format!("{}{rest}", local.display());
                }
            }
            env.push((name, v));
        }
        let args = c
            .command
            .unwrap_or_default()
            .into_iter()
            .skip(1)
            .chain(c.args.unwrap_or_default())
            .collect();
        Ok(Kubelet {
            procs: Vec::new(),
            dir,
            args,
            env,
            started: 0,
        })
    }

    /// Starts or stops (SIGTERM, drain) processes to match `n`.
    fn sync(&mut self, n: usize) -> Result<()> {
        self.procs.retain_mut(|p| matches!(p.try_wait(), Ok(None)));
        while self.procs.len() < n {
            self.started += 1;
            let pod = format!("hello-worker-local-{}", self.started);
            let log = std::fs::File::create(self.dir.join(format!("{pod}.log")))?;
            let mut cmd = Command::new(hello_binary());
            cmd.args(&self.args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default());
            for (k, v) in &self.env {
                let v = if k == pym_runtime::contract::ENV_WORKER_PORT {
                    free_port().to_string()
                } else {
                    v.replace("{pod}", &pod)
                };
                cmd.env(k, v);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            self.procs.push(child);
        }
        while self.procs.len() > n {
            let mut p = self.procs.pop().unwrap();
            let _ = Command::new("kill")
                .args(["-TERM", &p.id().to_string()])
                .status();
            std::thread::spawn(move || {
                let _ = p.wait();
            });
        }
        Ok(())
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// hello in a namespace of its own, autoscaled by the operator, its managed
/// Redis played by a loopback redis-server, the workers at `min` replicas.
/// Fields drop in order: the operator before Redis before the namespace.
struct Autoscaled {
    deps: Api<Deployment>,
    /// The managed Redis URL with its password, pointing at the loopback server.
    url: String,
    _op: Operator,
    redis: RedisServer,
    ns: TestNamespace,
    cluster: Cluster,
}

impl Autoscaled {
    async fn start(prefix: &str, min: i32, window: i32) -> Result<Autoscaled> {
        let (cluster, ns) = prepare(prefix).await?;
        let n = ns.name();
        let redis = RedisServer::start();
        let op = start_operator(&cluster, n, redis.port())?;
        apply_tuned_hello(&cluster, n, min, window).await?;
        let url = serve_managed_password(&cluster, n, &redis).await?;
        let deps: Api<Deployment> = Api::namespaced(cluster.client(), n);
        wait_replicas(&deps, min, wait::TIMEOUT).await?;
        Ok(Autoscaled {
            deps,
            url,
            _op: op,
            redis,
            ns,
            cluster,
        })
    }
}

#[tokio::test]
async fn queue_spike_scales_workers_fast_and_back_to_min_after_the_window() -> Result<()> {
    let window = 5;
    let fx = Autoscaled::start("autoscale-spike", 1, window).await?;
    let (cluster, n, redis, url, deps) = (&fx.cluster, fx.ns.name(), &fx.redis, &fx.url, &fx.deps);
    let pym = pym_api(&cluster.client(), n);
    // The autoscaler reads the queue (condition True) before the spike.
    wait::until("Autoscaling condition True", wait::TIMEOUT, || async {
        let o = pym.get("hello").await.map_err(|e| e.to_string())?;
        Ok::<_, String>(condition(&o, "Autoscaling").filter(|(s, _, _)| s == "True"))
    })
    .await?;

    let broker = task_broker(cluster, n, url).await?;
    let envs: Vec<Envelope> = (0..1000).map(signup).collect();

    // Spike: 1000 tasks → ceil(1000 / 8) = 125 → maxReplicas 5.
    // The spike is there once the batch is in Redis; the clock for the
    // 2 s check starts then (the enqueue time is the producer's, printed too).
    let t0 = Instant::now();
    broker.enqueue_batch(&envs).await?;
    let spike = Instant::now();
    let enqueued = spike - t0;
    let mut patched = None;
    while spike.elapsed() < Duration::from_secs(30) {
        if replicas(deps, "hello-worker").await.unwrap_or(0) > 1 {
            patched = Some(spike.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let patched = patched.ok_or("worker Deployment never scaled up")?;
    eprintln!(
        "MEASURED spike→replicas patched: {:.0} ms after the 1000 tasks were in Redis ({:.0} ms from the start of the enqueue, which took {:.0} ms)",
        patched.as_secs_f64() * 1000.0,
        (patched + enqueued).as_secs_f64() * 1000.0,
        enqueued.as_secs_f64() * 1000.0
    );
    assert!(
        patched < Duration::from_secs(2),
        "scaled up within 2 s, took {patched:?}"
    );
    wait_replicas(deps, 5, Duration::from_secs(10)).await?;

    // Real worker processes from the pod template drain the queue.
    let mut kubelet = Kubelet::from_template(cluster, n, redis.port()).await?;
    let drain_start = Instant::now();
    let mut drained_at = None;
    let mut min_at = None;
    let mut max_seen = 0;
    while drain_start.elapsed() < Duration::from_secs(120) {
        let r = replicas(deps, "hello-worker").await.unwrap_or(0);
        max_seen = max_seen.max(r);
        kubelet.sync(usize::try_from(r).unwrap_or(0))?;
        let s = stats(url).await?;
        if drained_at.is_none() && s.work() == 0 {
            drained_at = Some(Instant::now());
            eprintln!(
                "MEASURED 1000 tasks drained by {r} worker processes in {:.1} s",
                drain_start.elapsed().as_secs_f64()
            );
        }
        if let Some(d) = drained_at
            && r == 1
        {
            min_at = Some(d.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = min_at.ok_or("replicas never returned to minReplicas")?;
    eprintln!(
        "MEASURED drained → back to minReplicas 1: {:.1} s (window {window} s)",
        back.as_secs_f64()
    );
    assert_eq!(max_seen, 5);
    let s = stats(url).await?;
    assert_eq!(
        (s.ready, s.in_flight, s.dead),
        (0, 0, 0),
        "every task ran once, none dead: {s:?}"
    );

    // Status, events, kubectl columns.
    let status = wait::until(
        "status queueDepth 0, desired 1, last scale to 1",
        Duration::from_secs(20),
        || async {
            let o = pym.get("hello").await.map_err(|e| e.to_string())?;
            let st = o.data["status"].clone();
            let ok = st["queueDepth"] == 0
                && st["workers"]["desired"] == 1
                && st["lastScaleReason"]
                    .as_str()
                    .is_some_and(|r| r.contains("→ 1 workers"));
            Ok::<_, String>(ok.then_some(st))
        },
    )
    .await?;
    let reason = status["lastScaleReason"].as_str().unwrap_or_default();
    assert!(reason.contains("→ 1 workers"), "{reason}");
    assert!(status["lastScaleTime"].is_string());
    let up = cluster.event_messages(n, "ScaledUp").await?;
    assert!(
        up.contains("ready") && up.contains("→ 5 workers"),
        "ScaledUp event: {up}"
    );
    eprintln!("ScaledUp event: {}", up.lines().next().unwrap_or_default());
    let down = cluster.event_messages(n, "ScaledDown").await?;
    assert!(!down.trim().is_empty(), "ScaledDown event");
    kubectl_get_pym(cluster, n, &["WORKERS", "DESIRED", "QUEUE", "SCALED"]).await?;
    drop(kubelet);
    Ok(())
}

#[tokio::test]
async fn zero_idle_workers_wake_on_a_task_and_in_flight_blocks_scale_to_zero() -> Result<()> {
    let window = 3;
    let fx = Autoscaled::start("autoscale-zero", 0, window).await?;
    let (cluster, n, url, deps) = (&fx.cluster, fx.ns.name(), &fx.url, &fx.deps);
    // Idle for longer than a window: still zero.
    tokio::time::sleep(Duration::from_secs(window as u64 + 2)).await;
    assert_eq!(
        replicas(deps, "hello-worker").await,
        Some(0),
        "an idle service has 0 workers"
    );

    let broker = task_broker(cluster, n, url).await?;
    let t0 = Instant::now();
    broker.enqueue(signup(0)).await?;
    wait_replicas(deps, 1, Duration::from_secs(30)).await?;
    eprintln!(
        "MEASURED one task → 1 worker from zero: {:.0} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );

    // A worker takes the task and holds it (a long task): in flight.
    let mut conn = broker.conn();
    fetch::ensure_groups(&mut conn, QUEUE).await?;
    let qk = QueueKeys::new(QUEUE);
    let got = fetch::read_now(&mut conn, "e2e-long-task", &qk.ready, 1).await?;
    assert_eq!(got.len(), 1);
    let s = stats(url).await?;
    assert_eq!((s.ready, s.in_flight), (0, 1));
    // For four windows the task runs: the worker stays.
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(4 * window as u64) {
        assert_eq!(
            replicas(deps, "hello-worker").await,
            Some(1),
            "a task in flight blocks scale-to-zero"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The task finishes (ack + delete, as the worker does): zero after the window.
    let d = &got[0];
    let _: () = redis::pipe()
        .cmd("XACK")
        .arg(&d.stream)
        .arg(pym_broker::keys::GROUP)
        .arg(&d.id)
        .ignore()
        .cmd("XDEL")
        .arg(&d.stream)
        .arg(&d.id)
        .ignore()
        .query_async(&mut conn)
        .await?;
    let done = Instant::now();
    wait_replicas(deps, 0, Duration::from_secs(30)).await?;
    eprintln!(
        "MEASURED task done → 0 workers: {:.1} s (window {window} s)",
        done.elapsed().as_secs_f64()
    );
    let pym = pym_api(&cluster.client(), n);
    // The status follows the /scale patch (same poll).
    wait::until(
        "lastScaleReason → 0 workers",
        Duration::from_secs(10),
        || async {
            let o = pym.get("hello").await.map_err(|e| e.to_string())?;
            let r = o.data["status"]["lastScaleReason"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if r.contains("→ 0 workers") {
                Ok(Some(()))
            } else {
                Err(r)
            }
        },
    )
    .await?;

    // No more async: the autoscaler stops and removes its status fields.
    let patch = json!({"spec": {"withAsync": false, "workers": null}});
    pym.patch("hello", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait::until("autoscaler status removed", wait::TIMEOUT, || async {
        let o = pym.get("hello").await.map_err(|e| e.to_string())?;
        let st = &o.data["status"];
        let gone = st.get("queueDepth").is_none()
            && st.get("lastScaleReason").is_none()
            && condition(&o, "Autoscaling").is_none();
        Ok::<_, String>(gone.then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn unreachable_redis_keeps_replicas_and_sets_the_condition() -> Result<()> {
    let fx = Autoscaled::start("autoscale-down", 1, 1).await?;
    let (cluster, n, url, deps) = (&fx.cluster, fx.ns.name(), &fx.url, &fx.deps);
    let port = fx.redis.port();
    let broker = task_broker(cluster, n, url).await?;
    broker
        .enqueue_batch(&(0..40).map(signup).collect::<Vec<_>>())
        .await?;
    wait_replicas(deps, 5, Duration::from_secs(30)).await?;
    drop(broker);
    drop(fx.redis); // Redis goes away with 40 tasks queued.
    let pym = pym_api(&cluster.client(), n);
    let (_, reason, msg) = wait::until(
        "Autoscaling condition False",
        Duration::from_secs(30),
        || async {
            let o = pym.get("hello").await.map_err(|e| e.to_string())?;
            Ok::<_, String>(condition(&o, "Autoscaling").filter(|(s, _, _)| s == "False"))
        },
    )
    .await?;
    assert_eq!(reason, "RedisUnreachable");
    assert!(
        msg.contains("keeping 5 workers") && msg.contains(&format!("127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(
        !msg.contains(
            url.split('@')
                .next()
                .unwrap()
                .trim_start_matches("redis://:")
        ),
        "no password in {msg}"
    );
    // Window is 1 s: without statistics nothing scales down.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(replicas(deps, "hello-worker").await, Some(5));
    let ev = cluster.event_messages(n, "RedisUnreachable").await?;
    assert!(!ev.trim().is_empty(), "a Warning event");
    // Other conditions of the reconciler are intact (list-map ownership).
    let o = pym.get("hello").await?;
    assert!(condition(&o, "Ready").is_some());
    Ok(())
}
