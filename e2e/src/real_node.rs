//! The real node of the e2e ground (`pym-node-0`, see `e2e/lib/node.sh`):
//! what tests need to put pods on it and to look at its containerd.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;

use crate::tools::Tool;
use crate::{Cluster, Result, run_dir, wait};

/// Name of the real node.
pub const NODE: &str = "pym-node-0";
/// Label that selects it (`--node-labels` of its kubelet).
pub const NODE_LABEL: (&str, &str) = ("pym.dev/node", "real");
/// Its NoSchedule taint: only pods that tolerate it run there.
pub const NODE_TAINT: &str = "pym.dev/real-node";

/// The images `e2e/images build` loads into the node's containerd.
pub const IMAGE_OPERATOR: &str = "pym/operator:dev";
pub const IMAGE_HELLO: &str = "pym/hello:dev";
pub const IMAGE_REDIS: &str = "pym/redis:dev";

/// YAML lines (at the indentation of a pod spec's or PymService spec's
/// fields) that put a pod on the real node.
pub fn placement_yaml(indent: usize) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}nodeSelector: {{{}: {}}}\n{pad}tolerations: [{{key: {NODE_TAINT}, operator: Exists, effect: NoSchedule}}]\n",
        NODE_LABEL.0, NODE_LABEL.1
    )
}

/// The node's containerd socket (`<run dir>/node/containerd.sock`).
pub fn containerd_socket() -> std::path::PathBuf {
    run_dir().join("node").join("containerd.sock")
}

/// `ctr` against the node's containerd, in the CRI's namespace `k8s.io`.
pub fn ctr() -> Tool {
    Tool::new("ctr")
        .arg("--address")
        .arg(containerd_socket())
        .args(["-n", "k8s.io"])
}

/// Fails with what to run unless the real node is Ready and the pym images
/// are in its containerd.
pub async fn require(cluster: &Cluster) -> Result<()> {
    let nodes: Api<Node> = Api::all(cluster.client());
    let ready = nodes.get_opt(NODE).await?.is_some_and(|n| {
        n.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    });
    if !ready {
        return Err(format!(
            "the real node {NODE} is not Ready: run `e2e/cluster up` (without PYM_E2E_REAL_NODE=0)"
        )
        .into());
    }
    let images = ctr().args(["images", "ls", "-q"]).run().await?;
    for image in [IMAGE_OPERATOR, IMAGE_HELLO, IMAGE_REDIS] {
        if !images.lines().any(|l| l == format!("docker.io/{image}")) {
            return Err(
                format!("{image} is not in {NODE}'s containerd: run `e2e/images build`").into(),
            );
        }
    }
    Ok(())
}

/// IDs of the containers (any state) of pods of `namespace` on the node.
pub async fn containers_of_namespace(namespace: &str) -> Result<Vec<String>> {
    let filter = format!("labels.\"io.kubernetes.pod.namespace\"=={namespace}");
    let out = ctr()
        .args(["containers", "ls", "-q"])
        .arg(filter)
        .run()
        .await?;
    Ok(out.lines().map(str::to_string).collect())
}

/// SIGKILL the running containers of pod `pod` of `namespace`, as the OOM
/// killer would: no signal to catch, no hand-back; the kubelet restarts
/// them in place (same pod). Returns how many were killed.
pub async fn kill_pod_containers(namespace: &str, pod: &str) -> Result<usize> {
    let filter = format!(
        "labels.\"io.kubernetes.pod.namespace\"=={namespace},labels.\"io.kubernetes.pod.name\"=={pod},labels.\"io.cri-containerd.kind\"==container"
    );
    let ids = ctr()
        .args(["containers", "ls", "-q"])
        .arg(filter)
        .run()
        .await?;
    // `ctr tasks ls`: TASK PID STATUS, one running or stopped task per line.
    let tasks = ctr().args(["tasks", "ls"]).run().await?;
    let running: Vec<&str> = tasks
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("RUNNING"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut killed = 0;
    for id in ids.lines().filter(|id| running.contains(id)) {
        ctr()
            .args(["tasks", "kill", "--signal", "SIGKILL", id])
            .run()
            .await?;
        killed += 1;
    }
    Ok(killed)
}

/// Waits until no container of `namespace` is left on the node.
pub async fn no_containers(namespace: &str) -> Result<()> {
    wait::until(
        format!("no containers of {namespace} on {NODE}"),
        Duration::from_secs(120),
        || async {
            let ids = containers_of_namespace(namespace).await?;
            if ids.is_empty() {
                Ok::<_, crate::Error>(Some(()))
            } else {
                Err(format!("{} container(s) left", ids.len()).into())
            }
        },
    )
    .await
}
