//! The user path on real pods: the real node `pym-node-0` of `e2e/cluster up`
//! (kubelet, containerd, runc, CNI, kube-proxy, CoreDNS) runs the images
//! `e2e/images build` made from the repository's Dockerfile.
//!
//! 1. `helm install` the chart with `pym/operator:dev`: real operator pods under
//!    the chart's ServiceAccount, one of them leader, serving `/metrics`.
//! 2. In a namespace that enforces Pod Security `restricted`, apply the hello
//!    PymService (managed Redis, `withAsync`, `minReplicas: 0`): real probes,
//!    Ready with real counts.
//! 3. From the host, through the Service's ClusterIP (kube-proxy) and through
//!    `kubectl port-forward`: `/ping`, `POST /signup` with a token minted by
//!    `hello token` inside an API pod, `GET /me`.
//! 4. A burst of signups: the autoscaler (inside the operator pod, reaching
//!    Redis through its Service) scales workers 0→N; real worker pods run every
//!    task with the caller's user and request id; they drain on scale-down
//!    (exit 0) and go back to 0; no task lost, no dead letter.
//!    Then a worker container is SIGKILLed in place (as the OOM killer
//!    does) while it holds tasks: the kubelet restarts it as a new
//!    consumer, another worker takes its tasks over (not after their 30 s
//!    lease), every task finishes, none is dead-lettered.
//! 5. The three defects real pods exposed: an RS256 service with `withAsync`
//!    starts; queue `orders:v2` is refused at apply; a config that renames an
//!    injected variable is `Degraded/InvalidSpec`.
//! 6. `kubectl delete pym hello`: every child gone, every container stopped.
//!
//! Prerequisites: `e2e/cluster up` (with its real node) and `e2e/images build`.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use pym_e2e::pymservice::{condition, kubectl_get_pym, pym_api, wait_condition, wait_pym_ready};
use pym_e2e::real_node::{self, IMAGE_HELLO, IMAGE_REDIS, NODE};
use pym_e2e::tools::Tool;
use pym_e2e::{Cluster, Result, wait, workspace_root};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Signups in the burst that scales the workers up from zero.
const BURST: usize = 300;
const USER: &str = "user-42";
const INSTANCE: &str = "app.kubernetes.io/instance";
const COMPONENT: &str = "app.kubernetes.io/component";

#[tokio::test]
async fn user_path_on_real_pods() -> Result<()> {
    let cluster = Cluster::connect().await;
    real_node::require(&cluster).await?;
    let op_ns = cluster.namespace("real-operator").await?;
    let app_ns = cluster.namespace("real-hello").await?;
    let ns = app_ns.name();

    // 1. The operator, installed by its chart, as real pods.
    helm_install_operator(&cluster, op_ns.name()).await?;
    check_operator_pods(&cluster, op_ns.name()).await?;

    // 2. hello in a restricted namespace.
    cluster
        .kubectl()
        .args(["label", "namespace", ns])
        .arg("pod-security.kubernetes.io/enforce=restricted")
        .run()
        .await?;
    let applied = Instant::now();
    apply(&cluster, ns, &hello_manifest()).await?;
    let first_api_ready = first_ready_pod(
        &cluster.client(),
        ns,
        &selector("api"),
        Duration::from_secs(180),
    )
    .await?;
    eprintln!(
        "[figure] kubectl apply -> first real API pod Ready: {:.1} s",
        first_api_ready.as_secs_f64()
    );
    let pyms = pym_api(&cluster.client(), ns);
    let hello = wait_pym_ready(&pyms, "hello", Duration::from_secs(180)).await?;
    eprintln!(
        "[figure] kubectl apply -> PymService Ready: {:.1} s",
        applied.elapsed().as_secs_f64()
    );
    let api = &hello.data["status"]["api"];
    assert_eq!(
        (api["desired"].as_i64(), api["ready"].as_i64()),
        (Some(2), Some(2)),
        "{api}"
    );
    let listed = kubectl_get_pym(&cluster, ns, &[]).await?;
    assert!(
        listed.contains("hello") && listed.contains("True"),
        "{listed}"
    );
    check_pods_restricted(&cluster.client(), ns).await?;

    // 3. The API from the host: ClusterIP and port-forward.
    // kube-proxy programs the Service once its EndpointSlice lists the Ready
    // pods, a moment after the PymService turns Ready (until then a
    // connection is refused): wait for it, as any client would retry.
    let base = cluster_ip_url(&cluster.client(), ns, "hello").await?;
    let ready = Instant::now();
    wait::until(
        format!("GET {base}/ping"),
        Duration::from_secs(30),
        || async {
            let (code, body) = http("GET", &format!("{base}/ping"), &[], None).await?;
            match code {
                200 => Ok(Some(())),
                _ => Err::<_, pym_e2e::Error>(format!("{code} {body}").into()),
            }
        },
    )
    .await?;
    eprintln!(
        "[figure] PymService Ready -> ClusterIP answers: {:.1} s",
        ready.elapsed().as_secs_f64()
    );
    let token = mint_token(&cluster, ns).await?;
    let auth = format!("Bearer {token}");
    let (code, body) = http(
        "GET",
        &format!("{base}/me"),
        &[("authorization", &auth)],
        None,
    )
    .await?;
    assert_eq!(code, 200, "GET /me: {body}");
    assert!(body.contains(USER), "GET /me: {body}");
    let (code, body) = http(
        "GET",
        &format!("{base}/me"),
        &[("authorization", "Bearer nope")],
        None,
    )
    .await?;
    assert_eq!(code, 401, "GET /me with a bad token: {body}");
    port_forward_ping(&cluster, ns).await?;

    // 4. A burst: workers 0 -> N -> 0, every task run in its caller's context.
    let exits = watch_worker_exits(cluster.client(), ns);
    assert_eq!(
        worker_pods(&cluster.client(), ns).await?.len(),
        0,
        "minReplicas 0"
    );
    for i in 0..BURST {
        let body = format!(r#"{{"email":"u{i}@example.com","name":"U{i}"}}"#);
        let rid = format!("real-{i}");
        let (code, out) = http(
            "POST",
            &format!("{base}/signup"),
            &[("authorization", &auth), ("x-request-id", &rid)],
            Some(&body),
        )
        .await?;
        assert_eq!(code, 201, "POST /signup #{i}: {out}");
    }
    let enqueued = Instant::now();
    let first_run = first_task_run(&cluster, ns).await?;
    eprintln!(
        "[figure] burst queued -> first task run on a real worker (scale from 0): {:.1} s",
        first_run.duration_since(enqueued).as_secs_f64()
    );
    let peak = all_tasks_ran(&cluster, ns).await?;
    eprintln!("[figure] {BURST} tasks ran on {peak} worker pod(s)");
    assert!(
        peak >= 2,
        "the burst should scale past one worker, saw {peak}"
    );
    let dead = hello_cli(&cluster, ns, &["dead", "list"]).await?;
    assert!(
        !dead.contains("real-"),
        "dead letters after the burst: {dead}"
    );
    wait::until("workers back to 0", Duration::from_secs(120), || async {
        let n = worker_pods(&cluster.client(), ns).await?.len();
        Ok::<_, pym_e2e::Error>((n == 0).then_some(()))
    })
    .await?;
    let exits = exits.lock().unwrap().clone();
    eprintln!("worker exit codes on scale-down: {exits:?}");
    assert!(!exits.is_empty(), "no worker termination observed");
    assert!(
        exits.values().all(|&code| code == 0),
        "workers must drain and exit 0 on scale-down: {exits:?}"
    );

    // 4b. A worker killed in place while it holds tasks.
    worker_killed_in_place(&cluster, ns, &base, &auth).await?;

    // 4c. A scale-down takes the idle worker, not the busy one.
    scale_down_keeps_the_busy_worker(&cluster, ns, &base, &auth).await?;

    // 5. The three defects, each as a case.
    rs256_service_with_async_starts(&cluster, ns).await?;
    queue_with_colon_is_refused(&cluster, ns).await?;
    config_renaming_injected_env_is_degraded(&cluster, ns).await?;

    // 6. Delete: children and containers gone.
    cluster
        .kubectl()
        .args([
            "delete",
            "pym",
            "hello",
            "-n",
            ns,
            "--wait=true",
            "--timeout=120s",
        ])
        .run()
        .await?;
    children_gone(&cluster.client(), ns, "hello").await?;
    for name in ["hello-rs", "bad-config"] {
        cluster
            .kubectl()
            .args([
                "delete",
                "pym",
                name,
                "-n",
                ns,
                "--ignore-not-found",
                "--wait=true",
            ])
            .run()
            .await?;
    }
    real_node::no_containers(ns).await?;

    cluster
        .helm()
        .args([
            "uninstall",
            "pym",
            "--namespace",
            op_ns.name(),
            "--wait",
            "--timeout",
            "120s",
        ])
        .run()
        .await?;
    real_node::no_containers(op_ns.name()).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 1. The operator
// ---------------------------------------------------------------------------

async fn helm_install_operator(cluster: &Cluster, ns: &str) -> Result<()> {
    let chart = workspace_root().join("charts/pym-operator");
    let (repo, tag) = real_node::IMAGE_OPERATOR.split_once(':').unwrap();
    cluster
        .helm()
        .args(["install", "pym"])
        .arg(chart)
        .args(["--namespace", ns, "--wait", "--timeout", "180s"])
        .args(["--set", &format!("image.repository={repo}")])
        .args(["--set", &format!("image.tag={tag}")])
        .args(["--set", "image.pullPolicy=Never"])
        .args([
            "--set-json",
            &format!(
                r#"nodeSelector={{"{}":"{}"}}"#,
                real_node::NODE_LABEL.0,
                real_node::NODE_LABEL.1
            ),
        ])
        .args([
            "--set-json",
            &format!(
                r#"tolerations=[{{"key":"{}","operator":"Exists","effect":"NoSchedule"}}]"#,
                real_node::NODE_TAINT
            ),
        ])
        .run()
        .await?;
    Ok(())
}

/// Operator pods run on the real node; one holds the Lease; `/metrics` answers.
async fn check_operator_pods(cluster: &Cluster, ns: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let list = pods.list(&ListParams::default()).await?.items;
    assert!(!list.is_empty(), "no operator pods in {ns}");
    let names: BTreeSet<String> = list.iter().map(|p| p.name_any()).collect();
    for p in &list {
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
        assert_eq!(
            node.as_deref(),
            Some(NODE),
            "operator pod {} not on the real node",
            p.name_any()
        );
    }
    let leases: Api<Lease> = Api::namespaced(cluster.client(), ns);
    let holder = wait::until(
        "an operator pod holds the Lease",
        Duration::from_secs(60),
        || async {
            let holders: Vec<String> = leases
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter_map(|l| l.spec?.holder_identity)
                .collect();
            Ok::<_, kube::Error>(
                holders
                    .into_iter()
                    .find(|h| names.iter().any(|n| h.contains(n.as_str()))),
            )
        },
    )
    .await?;
    eprintln!("operator leader: {holder}");
    let ip = list[0]
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("pod IP");
    let port = container_port(&list[0]).unwrap_or(8000);
    let (code, body) = http("GET", &format!("http://{ip}:{port}/metrics"), &[], None).await?;
    assert_eq!(code, 200, "operator /metrics: {body}");
    assert!(
        body.contains("# TYPE"),
        "operator /metrics is not OpenMetrics text: {body}"
    );
    Ok(())
}

fn container_port(pod: &Pod) -> Option<u16> {
    let ports = pod.spec.as_ref()?.containers.first()?.ports.as_ref()?;
    u16::try_from(ports.first()?.container_port).ok()
}

// ---------------------------------------------------------------------------
// 2. hello
// ---------------------------------------------------------------------------

fn hello_manifest() -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: hello-jwt}}
stringData: {{secret: {jwt_secret}}}
---
apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {{name: hello}}
spec:
  image: {IMAGE_HELLO}
  imagePullPolicy: Never
  api: {{replicas: 2, port: 8080}}
  config: {{name: hello, jwt_issuer: "https://hello.example", jwt_audience: hello}}
  jwtSecretRef: {{name: hello-jwt, key: secret}}
  withAsync: true
  workers:
    minReplicas: 0
    maxReplicas: 3
    concurrency: 8
    queues: [default]
    # Workers wake once the whole burst is queued (activationThreshold), so it
    # scales 0 -> 3 in one step instead of one worker draining it as it comes.
    autoscaling: {{targetPerWorker: 50, activationThreshold: {activation}, pollIntervalSeconds: 1, scaleDownWindowSeconds: 15}}
  redis:
    managed: {{image: {IMAGE_REDIS}}}
{}"#,
        real_node::placement_yaml(2),
        activation = BURST - 1,
        // A fresh random JWT secret per run (≥ 32 bytes: shorter ones are
        // refused outside PYM_ENV=dev).
        jwt_secret = pym_e2e::pymservice::random_secret(),
    )
}

async fn apply(cluster: &Cluster, ns: &str, manifest: &str) -> Result<String> {
    cluster
        .kubectl()
        .args(["apply", "-n", ns, "-f", "-"])
        .stdin(manifest.to_string())
        .run()
        .await
}

/// Pods of hello's `component` (api, worker, redis).
fn selector(component: &str) -> String {
    selector_of("hello", component)
}

fn selector_of(instance: &str, component: &str) -> String {
    format!("{INSTANCE}={instance},{COMPONENT}={component}")
}

/// Time until the first pod that `selector` selects is Ready (measured here, polling).
async fn first_ready_pod(
    client: &Client,
    ns: &str,
    selector: &str,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(selector);
    wait::until(format!("a Ready pod `{selector}`"), timeout, || async {
        let items = pods.list(&lp).await?.items;
        Ok::<_, kube::Error>(items.iter().any(wait::is_ready).then(|| start.elapsed()))
    })
    .await
}

/// Every pod of the namespace runs as PSA `restricted` admitted it: the
/// namespace enforces it, so a pod that breaks it would not exist at all;
/// here we check that every Deployment of the service got its pods.
async fn check_pods_restricted(client: &Client, ns: &str) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for d in deployments.list(&ListParams::default()).await?.items {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let created = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let failure = d
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "ReplicaFailure"))
            .and_then(|c| c.message.clone());
        assert!(failure.is_none(), "{}: {failure:?}", d.name_any());
        assert_eq!(
            created,
            want,
            "{}: pods not created (refused by Pod Security?)",
            d.name_any()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. HTTP from the host
// ---------------------------------------------------------------------------

/// `curl` from the host: (status code, body).
async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<(u16, String)> {
    let mut curl = Tool::new("curl").args([
        "-sS",
        "--max-time",
        "10",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    for (k, v) in headers {
        curl = curl.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(b) = body {
        curl = curl.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    let out = curl.arg(url).run().await?;
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    Ok((code.parse()?, body.to_string()))
}

async fn cluster_ip_url(client: &Client, ns: &str, name: &str) -> Result<String> {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let spec = svc.spec.expect("service spec");
    let ip = spec.cluster_ip.expect("ClusterIP");
    let port = spec
        .ports
        .unwrap_or_default()
        .first()
        .map(|p| p.port)
        .expect("a port");
    Ok(format!("http://{ip}:{port}"))
}

/// `hello <args>` inside an API pod (`kubectl exec`: apiserver → kubelet).
async fn hello_cli(cluster: &Cluster, ns: &str, args: &[&str]) -> Result<String> {
    cluster
        .kubectl()
        .args([
            "exec",
            "-n",
            ns,
            "deploy/hello-api",
            "--",
            "/usr/local/bin/hello",
        ])
        .args(args)
        .run()
        .await
}

async fn mint_token(cluster: &Cluster, ns: &str) -> Result<String> {
    let out = hello_cli(cluster, ns, &["token", USER]).await?;
    Ok(out.trim().to_string())
}

/// `kubectl port-forward svc/hello :<port>` (apiserver → kubelet → pod), then `/ping`.
async fn port_forward_ping(cluster: &Cluster, ns: &str) -> Result<()> {
    let mut child = tokio::process::Command::new(pym_e2e::cluster::tool_path("kubectl"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["port-forward", "-n", ns, "svc/hello", ":8080"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| "kubectl port-forward printed nothing in 30 s")??
        .unwrap_or_default();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let port = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .ok_or_else(|| format!("unexpected port-forward output: {line}"))?;
    let (code, body) = http("GET", &format!("http://127.0.0.1:{port}/ping"), &[], None).await?;
    assert_eq!(code, 200, "GET /ping through port-forward: {body}");
    child.kill().await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. Workers
// ---------------------------------------------------------------------------

async fn worker_pods(client: &Client, ns: &str) -> Result<Vec<Pod>> {
    let lp = ListParams::default().labels(&selector("worker"));
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items)
}

/// Exit codes of worker containers that terminated, by pod, seen by a watch
/// (a deleted pod's last status is only visible to a watch).
fn watch_worker_exits(client: Client, ns: &str) -> Arc<Mutex<BTreeMap<String, i32>>> {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let api: Api<Pod> = Api::namespaced(client, ns);
    let cfg = watcher::Config::default().labels(&selector("worker"));
    let out = seen.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, cfg).boxed();
        while let Some(ev) = events.next().await {
            let pod = match ev {
                Ok(
                    watcher::Event::Apply(p)
                    | watcher::Event::Delete(p)
                    | watcher::Event::InitApply(p),
                ) => p,
                _ => continue,
            };
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone());
            for cs in statuses.unwrap_or_default() {
                if let Some(t) = cs.state.and_then(|s| s.terminated) {
                    out.lock().unwrap().insert(pod.name_any(), t.exit_code);
                }
            }
        }
    });
    seen
}

/// The worker pods' logs, all lines (`kubectl logs -l` alone keeps only 10 per pod).
async fn worker_logs(cluster: &Cluster, ns: &str) -> Result<String> {
    cluster
        .kubectl()
        .args(["logs", "-n", ns, "-l", &selector("worker")])
        .args([
            "--tail=-1",
            "--prefix",
            "--max-log-requests=10",
            "--ignore-errors",
        ])
        .run()
        .await
}

fn task_runs(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.contains("sending welcome email"))
        .collect()
}

async fn first_task_run(cluster: &Cluster, ns: &str) -> Result<Instant> {
    wait::until(
        "a task run on a real worker",
        Duration::from_secs(180),
        || async {
            let logs = worker_logs(cluster, ns).await.unwrap_or_default();
            Ok::<_, pym_e2e::Error>((!task_runs(&logs).is_empty()).then(Instant::now))
        },
    )
    .await
}

/// Waits until every signup's task ran once at least, each with the caller's
/// user id and its own request id; returns the number of worker pods seen.
async fn all_tasks_ran(cluster: &Cluster, ns: &str) -> Result<usize> {
    let peak = std::cell::Cell::new(0);
    wait::until(
        format!("{BURST} tasks run"),
        Duration::from_secs(180),
        || {
            let client = cluster.client();
            let peak = &peak;
            async move {
                peak.set(peak.get().max(worker_pods(&client, ns).await?.len()));
                let logs = worker_logs(cluster, ns).await?;
                let mut done = BTreeSet::new();
                for line in task_runs(&logs) {
                    let Some(i) = field_after(line, "u", "@example.com") else {
                        continue;
                    };
                    assert!(
                        line.contains(USER),
                        "task without the caller's user id: {line}"
                    );
                    assert!(
                        line.contains(&format!("real-{i}")),
                        "task without its request id: {line}"
                    );
                    done.insert(i);
                }
                if done.len() == BURST {
                    Ok::<_, pym_e2e::Error>(Some(()))
                } else {
                    Err(format!("{} of {BURST} tasks ran", done.len()).into())
                }
            }
        },
    )
    .await?;
    Ok(peak.get())
}

/// The digits between `before` and `after` in `line` ("u17@example.com" → 17).
fn field_after(line: &str, before: &str, after: &str) -> Option<usize> {
    let end = line.find(after)?;
    let start = line[..end].rfind(before)? + before.len();
    line[start..end].parse().ok()
}

// ---------------------------------------------------------------------------
// 4b. A worker killed in place
// ---------------------------------------------------------------------------

/// Signups whose tasks a killed worker holds.
const KILL_BURST: usize = 12;

/// Workers at 2 whose tasks take 4 s; `KILL_BURST` signups; SIGKILL of the
/// containers of a worker that holds some (from the host, through the
/// node's containerd). The kubelet restarts the container in the same pod;
/// its tasks restart on a live worker (the takeover of a worker that
/// stopped beating), every task finishes once at least, none is dead.
async fn worker_killed_in_place(cluster: &Cluster, ns: &str, base: &str, auth: &str) -> Result<()> {
    let patch = r#"{"spec":{"workers":{"minReplicas":2,"env":[{"name":"HELLO_TASK_DELAY_MS","value":"4000"}]}}}"#;
    cluster
        .kubectl()
        .args([
            "patch", "pym", "hello", "-n", ns, "--type", "merge", "-p", patch,
        ])
        .run()
        .await?;
    let client = cluster.client();
    wait::until(
        "two slow workers Ready",
        Duration::from_secs(180),
        || async {
            let pods = worker_pods(&client, ns).await?;
            let slow_ready = pods
                .iter()
                .filter(|p| is_ready(p) && has_env(p, "HELLO_TASK_DELAY_MS"));
            let ok = pods.len() == 2 && slow_ready.count() == 2;
            Ok::<_, pym_e2e::Error>(ok.then_some(()))
        },
    )
    .await?;
    for i in 0..KILL_BURST {
        let body = format!(r#"{{"email":"kill{i}@example.com"}}"#);
        let rid = format!("kill-{i}");
        let (code, out) = http(
            "POST",
            &format!("{base}/signup"),
            &[("authorization", auth), ("x-request-id", &rid)],
            Some(&body),
        )
        .await?;
        assert_eq!(code, 201, "POST /signup {rid}: {out}");
    }
    let victim = wait::until(
        "a worker holding tasks",
        Duration::from_secs(60),
        || async {
            for pod in worker_pods(&client, ns).await? {
                let logs = pod_logs(cluster, ns, &pod.name_any(), false).await?;
                if !unfinished(&logs).is_empty() {
                    return Ok::<_, pym_e2e::Error>(Some(pod.name_any()));
                }
            }
            Ok(None)
        },
    )
    .await?;
    let killed = Instant::now();
    let n = real_node::kill_pod_containers(ns, &victim).await?;
    assert!(n >= 1, "no running container of {victim} to kill");
    // What it held when it died: its last container's log.
    let held = wait::until(
        "the killed container's log",
        Duration::from_secs(60),
        || async { Ok::<_, pym_e2e::Error>(pod_logs(cluster, ns, &victim, true).await.ok()) },
    )
    .await?;
    let held = unfinished(&held);
    assert!(!held.is_empty(), "{victim} held no task when killed");
    wait::until(
        "the held tasks started again",
        Duration::from_secs(120),
        || async {
            let logs = worker_logs(cluster, ns).await?;
            let started: BTreeSet<usize> = lines_of(&logs, "sending welcome email").collect();
            Ok::<_, pym_e2e::Error>(held.is_subset(&started).then_some(()))
        },
    )
    .await?;
    eprintln!(
        "[figure] worker SIGKILLed holding {} task(s): all started again {:.1} s after the kill (lease: 30 s)",
        held.len(),
        killed.elapsed().as_secs_f64()
    );
    wait::until("every task finished", Duration::from_secs(120), || async {
        let logs = worker_logs(cluster, ns).await?;
        let previous = pod_logs(cluster, ns, &victim, true).await?;
        let sent: BTreeSet<usize> = lines_of(&logs, "welcome email sent")
            .chain(lines_of(&previous, "welcome email sent"))
            .collect();
        let all = (0..KILL_BURST).all(|i| sent.contains(&i));
        Ok::<_, pym_e2e::Error>(all.then_some(()))
    })
    .await?;
    let logs = worker_logs(cluster, ns).await?;
    assert!(
        logs.contains("took over the tasks of a dead worker"),
        "the tasks came back by the takeover, not the lease"
    );
    let dead = hello_cli(cluster, ns, &["dead", "list"]).await?;
    assert!(
        !dead.contains("kill"),
        "dead letters after the kill: {dead}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 4c. Which worker a scale-down takes
// ---------------------------------------------------------------------------

/// The signup (as `kill<N>@example.com`, read by [`unfinished`]) whose task
/// the busy worker holds while the workers are scaled down.
const HELD_SIGNUP: usize = 100;

/// Two slow workers (4 s tasks, from 4b), one holding a task, the other
/// idle; `maxReplicas: 1`. Before scaling down, the autoscaler sets each
/// pod's deletion cost to the tasks it holds, so the ReplicaSet deletes the
/// idle pod and the busy one keeps its task.
async fn scale_down_keeps_the_busy_worker(
    cluster: &Cluster,
    ns: &str,
    base: &str,
    auth: &str,
) -> Result<()> {
    let client = cluster.client();
    wait::until(
        "two workers Ready, nothing held",
        Duration::from_secs(180),
        || async {
            let pods = worker_pods(&client, ns).await?;
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            Ok::<_, pym_e2e::Error>((pods.len() == 2 && ready == 2).then_some(()))
        },
    )
    .await?;
    let body = format!(r#"{{"email":"kill{HELD_SIGNUP}@example.com"}}"#);
    let (code, out) = http(
        "POST",
        &format!("{base}/signup"),
        &[("authorization", auth)],
        Some(&body),
    )
    .await?;
    assert_eq!(code, 201, "POST /signup: {out}");
    let busy = wait::until(
        "a worker holding the task",
        Duration::from_secs(60),
        || async {
            for pod in worker_pods(&client, ns).await? {
                let logs = pod_logs(cluster, ns, &pod.name_any(), false).await?;
                if unfinished(&logs).contains(&HELD_SIGNUP) {
                    return Ok::<_, pym_e2e::Error>(Some(pod.name_any()));
                }
            }
            Ok(None)
        },
    )
    .await?;
    // The registry's in-flight count is written at each beat (every second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let patch = r#"{"spec":{"workers":{"minReplicas":1,"maxReplicas":1}}}"#;
    cluster
        .kubectl()
        .args([
            "patch", "pym", "hello", "-n", ns, "--type", "merge", "-p", patch,
        ])
        .run()
        .await?;
    let survivor = wait::until("one worker left", Duration::from_secs(60), || async {
        let pods = worker_pods(&client, ns).await?;
        let left: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        Ok::<_, pym_e2e::Error>((left.len() == 1).then(|| left[0].clone()))
    })
    .await?;
    let cost = survivor
        .annotations()
        .get("controller.kubernetes.io/pod-deletion-cost")
        .cloned();
    eprintln!(
        "[figure] scale-down 2 -> 1 kept {} (deletion cost {cost:?}), the busy one: {busy}",
        survivor.name_any()
    );
    assert_eq!(
        survivor.name_any(),
        busy,
        "the scale-down took the busy worker"
    );
    assert_eq!(
        cost.as_deref(),
        Some("1"),
        "the busy pod's deletion cost is the task it held"
    );
    wait::until(
        "the held task finished",
        Duration::from_secs(60),
        || async {
            let logs = pod_logs(cluster, ns, &busy, false).await?;
            Ok::<_, pym_e2e::Error>(
                lines_of(&logs, "welcome email sent")
                    .any(|i| i == HELD_SIGNUP)
                    .then_some(()),
            )
        },
    )
    .await?;
    let restore = r#"{"spec":{"workers":{"maxReplicas":3}}}"#;
    cluster
        .kubectl()
        .args([
            "patch", "pym", "hello", "-n", ns, "--type", "merge", "-p", restore,
        ])
        .run()
        .await?;
    Ok(())
}

/// One pod's worker log (`previous`: its last terminated container's).
async fn pod_logs(cluster: &Cluster, ns: &str, pod: &str, previous: bool) -> Result<String> {
    let mut cmd = cluster.kubectl();
    cmd = cmd.args(["logs", "-n", ns, pod, "--tail=-1"]);
    if previous {
        cmd = cmd.arg("--previous");
    }
    cmd.run().await
}

/// The signup numbers (`kill<N>@example.com`) of the lines holding `what`.
fn lines_of<'a>(logs: &'a str, what: &'a str) -> impl Iterator<Item = usize> + 'a {
    logs.lines()
        .filter(move |l| l.contains(what))
        .filter_map(|l| field_after(l, "kill", "@example.com"))
}

/// Signups whose task started in `logs` and did not finish there.
fn unfinished(logs: &str) -> BTreeSet<usize> {
    let sent: BTreeSet<usize> = lines_of(logs, "welcome email sent").collect();
    lines_of(logs, "sending welcome email")
        .filter(|i| !sent.contains(i))
        .collect()
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn has_env(pod: &Pod, name: &str) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .any(|c| c.env.iter().flatten().any(|e| e.name == name))
    })
}

// ---------------------------------------------------------------------------
// 5. The defects
// ---------------------------------------------------------------------------

/// RS256 (no `jwtSecretRef`) with `withAsync`: the operator's task secret lets
/// API and worker pods start.
async fn rs256_service_with_async_starts(cluster: &Cluster, ns: &str) -> Result<()> {
    let key = Tool::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .run()
        .await?;
    let public = Tool::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(key)
        .run()
        .await?;
    let indented: String = public.lines().map(|l| format!("    {l}\n")).collect();
    let manifest = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: hello-rs-keys}}
stringData:
  public: |
{indented}---
apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {{name: hello-rs}}
spec:
  image: {IMAGE_HELLO}
  imagePullPolicy: Never
  api: {{replicas: 1, port: 8080}}
  config:
    name: hello
    jwt_issuer: "https://hello.example"
    jwt_audience: hello
    jwt_algorithm: RS256
    jwt_public_key_env: HELLO_JWT_PUBLIC_KEY
  env: [{{name: HELLO_JWT_PUBLIC_KEY, valueFrom: {{secretKeyRef: {{name: hello-rs-keys, key: public}}}}}}]
  withAsync: true
  workers: {{minReplicas: 1, maxReplicas: 1}}
  redis:
    managed: {{image: {IMAGE_REDIS}}}
{}"#,
        real_node::placement_yaml(2)
    );
    apply(cluster, ns, &manifest).await?;
    let pyms = pym_api(&cluster.client(), ns);
    let o = wait_pym_ready(&pyms, "hello-rs", Duration::from_secs(180)).await?;
    let workers = &o.data["status"]["workers"];
    first_ready_pod(
        &cluster.client(),
        ns,
        &selector_of("hello-rs", "worker"),
        Duration::from_secs(120),
    )
    .await
    .map_err(|e| format!("{e}; workers status: {workers}"))?;
    Ok(())
}

/// A queue name the runtime refuses is refused by the apiserver too.
async fn queue_with_colon_is_refused(cluster: &Cluster, ns: &str) -> Result<()> {
    let manifest = format!(
        "apiVersion: pym.dev/v1alpha1\nkind: PymService\nmetadata: {{name: bad-queue}}\nspec:\n  image: {IMAGE_HELLO}\n  withAsync: true\n  workers: {{queues: [\"orders:v2\"]}}\n  redis: {{managed: {{}}}}\n"
    );
    let out = cluster
        .kubectl()
        .args(["apply", "-n", ns, "-f", "-"])
        .stdin(manifest)
        .run_expect_failure()
        .await?;
    assert!(
        out.stderr.contains("queues") && out.stderr.contains("orders:v2"),
        "refusal should name the field and the value: {}",
        out.stderr
    );
    Ok(())
}

/// `jwt_secret_env` in spec.config would make pods ignore the injected
/// PYM_JWT_SECRET: Degraded/InvalidSpec, naming the key.
async fn config_renaming_injected_env_is_degraded(cluster: &Cluster, ns: &str) -> Result<()> {
    let manifest = format!(
        r#"apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {{name: bad-config}}
spec:
  image: {IMAGE_HELLO}
  imagePullPolicy: Never
  config: {{name: hello, jwt_secret_env: MY_OWN_SECRET}}
  jwtSecretRef: {{name: hello-jwt, key: secret}}
{}"#,
        real_node::placement_yaml(2)
    );
    apply(cluster, ns, &manifest).await?;
    let pyms = pym_api(&cluster.client(), ns);
    let o = wait_condition(&pyms, "bad-config", "Degraded", "True", "InvalidSpec").await?;
    let (_, _, message) = condition(&o, "Degraded").unwrap();
    assert!(
        message.contains("jwt_secret_env"),
        "the message names the key: {message}"
    );
    // No pod ever started with a config that ignores the injected secret.
    let lp = ListParams::default().labels(&format!("{INSTANCE}=bad-config"));
    let pods = Api::<Pod>::namespaced(cluster.client(), ns)
        .list(&lp)
        .await?
        .items;
    assert!(
        pods.is_empty(),
        "pods of an invalid spec: {:?}",
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. Delete
// ---------------------------------------------------------------------------

async fn children_gone(client: &Client, ns: &str, name: &str) -> Result<()> {
    let lp = ListParams::default().labels(&format!("{INSTANCE}={name}"));
    wait::until(
        format!("every child of {name} deleted"),
        Duration::from_secs(120),
        || async {
            let mut left = names::<Deployment>(client, ns, &lp).await?;
            left.extend(names::<Service>(client, ns, &lp).await?);
            left.extend(names::<Secret>(client, ns, &lp).await?);
            left.extend(names::<ConfigMap>(client, ns, &lp).await?);
            left.extend(names::<Pod>(client, ns, &lp).await?);
            if left.is_empty() {
                Ok::<_, pym_e2e::Error>(Some(()))
            } else {
                Err(left.join(", ").into())
            }
        },
    )
    .await
}

/// `<kind>/<name>` of the objects of one kind that `lp` selects.
async fn names<K>(client: &Client, ns: &str, lp: &ListParams) -> kube::Result<Vec<String>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let items = Api::<K>::namespaced(client.clone(), ns)
        .list(lp)
        .await?
        .items;
    let kind = K::kind(&K::DynamicType::default()).to_lowercase();
    Ok(items
        .iter()
        .map(|o| format!("{kind}/{}", o.name_any()))
        .collect())
}
