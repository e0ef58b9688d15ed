//! Helpers for the operator e2e tests: the operator binary as a local
//! process, the CRD, PymService access and waits.
//!
//! The operator binary: `$PYM_OPERATOR_BIN` if set, else
//! `<target dir>/debug/pym-operator`, which must be built first
//! (`cargo build -p pym-operator`). A test cannot run cargo itself (the outer
//! `cargo test` holds the build lock) and `CARGO_BIN_EXE_*` only exists
//! for a package's own binaries, so a missing or stale binary (older than a
//! source file of the operator) fails the test with the command to run.
#![allow(dead_code)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use pym_e2e::{Cluster, Result, free_port, run_dir, wait};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn workspace_root() -> PathBuf {
    pym_e2e::e2e_dir().parent().unwrap().to_path_buf()
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for e in entries.flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest_mtime(&p)
        } else {
            e.metadata().and_then(|m| m.modified()).unwrap_or(newest)
        };
        newest = newest.max(t);
    }
    newest
}

/// Path of a fresh pym-operator binary, or a panic that says how to build it.
pub fn operator_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PYM_OPERATOR_BIN") {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join("pym-operator");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} not found: run `cargo build -p pym-operator` before the operator e2e tests",
                bin.display()
            )
        });
    // The operator's own sources and the contract it imports (not all of
    // runtime/: files there may change without changing the operator).
    let contract = std::fs::metadata(root.join("runtime/src/contract.rs"))
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let src = newest_mtime(&root.join("operator/src")).max(contract);
    assert!(
        built >= src,
        "{} is older than the operator sources: run `cargo build -p pym-operator`",
        bin.display()
    );
    bin
}

/// Installs (server-side apply) the generated CRD and waits until it is Established.
pub async fn install_crd(cluster: &Cluster) -> Result<()> {
    let crd = workspace_root().join("crds/pymservice.yaml");
    cluster
        .kubectl()
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&crd)
        .run()
        .await?;
    // `kubectl wait` fails while the new CRD has no status yet: retry.
    wait::until(
        "CRD pymservices.pym.dev Established",
        Duration::from_secs(60),
        || async {
            cluster
                .kubectl()
                .args([
                    "wait",
                    "--for=condition=Established",
                    "crd/pymservices.pym.dev",
                    "--timeout=10s",
                ])
                .run()
                .await
                .map(|_| Some(()))
        },
    )
    .await?;
    Ok(())
}

/// A pym-operator process; killed when dropped.
pub struct Operator {
    child: Option<Child>,
    pub http_port: u16,
    pub log: PathBuf,
    pub identity: String,
}

impl Operator {
    /// Starts the operator watching `namespace`, with a short Lease (4 s) so
    /// failover is quick; logs go to `<run dir>/logs/operator-<identity>.log`.
    pub fn start(cluster: &Cluster, namespace: &str, identity: &str) -> Result<Operator> {
        let http_port = free_port();
        let logs = run_dir().join("logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(format!("operator-{identity}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(operator_binary())
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig_path())
            .args(["--namespace", namespace])
            .args(["--lease-namespace", namespace])
            .args(["--identity", identity])
            .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
            .args([
                "--lease-duration-seconds",
                "4",
                "--lease-grace-seconds",
                "2",
            ])
            .args(["--log-format", "pretty"])
            .env("RUST_LOG", "info,pym_operator=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot start the operator: {e}"))?;
        Ok(Operator {
            child: Some(child),
            http_port,
            log,
            identity: identity.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, no cleanup (the Lease stays held until it expires).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let c = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// GET a path of the operator's HTTP server; (status code, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.http_port)).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await?;
        let code = buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = buf
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// Value of an unlabelled metric (e.g. `pym_operator_leader`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await.ok()?;
        body.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) -> Result<()> {
        wait::until(
            format!("operator {} /readyz", self.identity),
            Duration::from_secs(30),
            || async {
                match self.get("/readyz").await {
                    Ok((200, _)) => Ok(Some(())),
                    Ok((c, b)) => Err(format!("{c} {b}")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
    }

    /// Waits until this process holds the Lease.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<()> {
        wait::until(
            format!("operator {} to lead", self.identity),
            timeout,
            || async {
                match self.metric("pym_operator_leader").await {
                    Some(1.0) => Ok(Some(())),
                    v => Err(format!("leader={v:?}")),
                }
            },
        )
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("operator log {}:\n{}", self.log.display(), self.logs());
        }
    }
}

pub fn pym_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("pym.dev", "v1alpha1", "PymService"),
        "pymservices",
    )
}

pub fn pym_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &pym_resource())
}

/// (status, reason, message) of a status condition.
pub fn condition(obj: &DynamicObject, ty: &str) -> Option<(String, String, String)> {
    let cs = obj.data.pointer("/status/conditions")?.as_array()?;
    let c = cs.iter().find(|c| c["type"] == ty)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

pub fn is_ready(obj: &DynamicObject) -> bool {
    condition(obj, "Ready").is_some_and(|c| c.0 == "True")
        && obj
            .data
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            == obj.metadata.generation
}

/// Waits until the PymService is Ready for its current generation.
pub async fn wait_pym_ready(
    api: &Api<DynamicObject>,
    name: &str,
    timeout: Duration,
) -> Result<DynamicObject> {
    wait::until(format!("PymService {name} Ready"), timeout, || async {
        let o = api.get(name).await.map_err(|e| e.to_string())?;
        if is_ready(&o) {
            Ok(Some(o))
        } else {
            Err(format!(
                "status: {}",
                o.data.get("status").cloned().unwrap_or_default()
            ))
        }
    })
    .await
}

/// Waits until a condition has the given status and reason.
pub async fn wait_condition(
    api: &Api<DynamicObject>,
    name: &str,
    ty: &str,
    status: &str,
    reason: &str,
) -> Result<DynamicObject> {
    wait::until(
        format!("PymService {name} {ty}={status} ({reason})"),
        wait::TIMEOUT,
        || async {
            let o = api.get(name).await.map_err(|e| e.to_string())?;
            match condition(&o, ty) {
                Some((s, r, _)) if s == status && r == reason => Ok(Some(o)),
                c => Err(format!("{ty}: {c:?}")),
            }
        },
    )
    .await
}

/// Waits until a Deployment exists and `check` holds for it.
pub async fn wait_deployment<F>(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: F,
) -> Result<Deployment>
where
    F: Fn(&Deployment) -> bool,
{
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let check = &check;
    wait::until(format!("Deployment {name}: {what}"), wait::TIMEOUT, || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await.map_err(|e| e.to_string())? {
                Some(d) if check(&d) => Ok(Some(d)),
                Some(_) => Err("not yet".to_string()),
                None => Err("absent".to_string()),
            }
        }
    })
    .await
}

pub fn template_annotation(d: &Deployment, key: &str) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

/// (Secret name, key) that `var` of the first container comes from, if a secretKeyRef.
pub fn secret_env_ref(pod: &PodSpec, var: &str) -> Option<(String, String)> {
    let e = pod.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == var)?;
    let s = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some((s.name.clone(), s.key.clone()))
}

/// The pod template spec of a Deployment.
pub fn template_spec(d: &Deployment) -> &PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("Deployment has a pod template")
}
