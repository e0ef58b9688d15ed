//! # pym-e2e: the e2e ground
//!
//! Helpers for end-to-end tests that run against the real, local Kubernetes
//! control plane started by `e2e/cluster up` (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok faking the nodes, all on
//! 127.0.0.1; see the header of `e2e/cluster`).
//!
//! ```no_run
//! use pym_e2e::{Cluster, wait};
//!
//! # async fn example() -> pym_e2e::Result<()> {
//! let cluster = Cluster::connect().await; // fails: "run `e2e/cluster up`" when it is down
//! let ns = cluster.namespace("my-test").await?; // unique, deleted again on drop
//! cluster
//!     .kubectl()
//!     .args(["apply", "-n", ns.name(), "-f", "-"])
//!     .stdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
//!     .run()
//!     .await?;
//! let pods = wait::pods_running(&cluster.client(), ns.name(), "app=x", 0).await?;
//! # let _ = pods;
//! # Ok(())
//! # }
//! ```
//!
//! What is here:
//! - [`Cluster`]: admin client and kubeconfig, [`Cluster::kubectl`] / [`Cluster::helm`]
//!   runners, [`Cluster::as_service_account`] (impersonation) and
//!   [`Cluster::service_account_kubeconfig`] (a real token, for running a process
//!   such as the operator as a ServiceAccount), [`Cluster::namespace`] (unique,
//!   ready-to-use test namespaces).
//! - [`wait`]: `wait::until` and ready-made waits (pods Running, deletion, ...).
//! - [`operator`]: the pym-operator binary as a local process ([`operator::Launch`],
//!   [`operator::Operator`]) and the CRD it needs.
//! - [`pymservice`]: PymService objects (API, conditions, Ready waits) and the
//!   example service `examples/hello`.
//! - [`proc_stats`]: memory and CPU of a process (benchmarks).
//! - [`objects`]: fields of Kubernetes objects (a Deployment's pod template, a Secret's key).
//! - [`RedisServer`] / [`free_port`]: a throw-away redis-server on 127.0.0.1
//!   (`pym_runtime::testing`, the same one pym's own tests use).
//! - [`real_node`]: the real node `pym-node-0` (placement, its containerd, the pym images).
//!
//! Where things are found:
//! - kubeconfig: `$PYM_E2E_KUBECONFIG`, else `<run dir>/kubeconfig` (written by
//!   `e2e/cluster up`), else `$KUBECONFIG`.
//! - run dir: `$PYM_E2E_RUN`, else `e2e/.run`.
//! - kubectl/helm: `<run dir>/bin/`, the exact versions the cluster runs.
//! - redis-server: `$PYM_REDIS_SERVER`, else `redis-server` on `PATH`.

pub mod cluster;
pub mod objects;
pub mod operator;
pub mod proc_stats;
pub mod pymservice;
pub mod real_node;
pub mod tools;
pub mod wait;

use std::path::PathBuf;

pub use cluster::{Cluster, TestNamespace, unique_suffix};
pub use pym_runtime::testing::{RedisServer, free_port};
pub use tools::{Tool, ToolOutput};

/// Error type of the harness: anything, with a readable message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result type of the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `e2e/` directory of the repository.
pub fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root (the cargo workspace).
pub fn workspace_root() -> PathBuf {
    e2e_dir().parent().expect("e2e/ has a parent").to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Run state of the cluster (`$PYM_E2E_RUN`, default `e2e/.run`).
pub fn run_dir() -> PathBuf {
    std::env::var_os("PYM_E2E_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e_dir().join(".run"))
}

/// A file under `e2e/testdata/`.
pub fn testdata(rel: &str) -> PathBuf {
    e2e_dir().join("testdata").join(rel)
}

/// A value from `e2e/versions.env`, e.g. `pinned_version("KUBERNETES_VERSION")`.
pub fn pinned_version(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(e2e_dir().join("versions.env")).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.split_whitespace().next().unwrap_or("").to_string())
    })
}
