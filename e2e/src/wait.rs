//! Waiting until the cluster reaches a state.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, ListParams};

use crate::Result;

/// Default patience: generous, because CI machines are slow and shared.
pub const TIMEOUT: Duration = Duration::from_secs(90);
/// How often conditions are re-checked.
pub const POLL: Duration = Duration::from_millis(250);

/// Polls `check` until it returns `Ok(Some(value))`. `Ok(None)` and errors mean
/// "not yet"; on timeout the error names `what` and the last error or state seen.
pub async fn until<T, E, F, Fut>(what: impl Display, timeout: Duration, mut check: F) -> Result<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(
                format!("timed out after {timeout:?} waiting for {what} (last: {last})").into(),
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until exactly `count` pods match `selector` (a label selector, e.g.
/// `app=x`), and all are Running, Ready, scheduled to a node and not being deleted.
/// Returns them.
pub async fn pods_running(
    client: &Client,
    namespace: &str,
    selector: &str,
    count: usize,
) -> Result<Vec<Pod>> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(selector);
    until(
        format!("{count} Running pod(s) `{selector}` in {namespace}"),
        TIMEOUT,
        || async {
            let pods = api.list(&lp).await.map_err(|e| e.to_string())?.items;
            let running = pods
                .iter()
                .filter(|p| {
                    phase(p) == "Running"
                        && is_ready(p)
                        && p.metadata.deletion_timestamp.is_none()
                        && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                })
                .count();
            if pods.len() == count && running == count {
                Ok(Some(pods))
            } else {
                let phases: Vec<&str> = pods.iter().map(phase).collect();
                Err(format!(
                    "{} pod(s), {running} running: {phases:?}",
                    pods.len()
                ))
            }
        },
    )
    .await
}

/// Waits until no pod matches `selector` any more (deleted pods are finalized by kwok).
pub async fn no_pods(client: &Client, namespace: &str, selector: &str) -> Result<()> {
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(selector);
    until(
        format!("no pods `{selector}` in {namespace}"),
        TIMEOUT,
        || async {
            let n = api.list(&lp).await.map_err(|e| e.to_string())?.items.len();
            if n == 0 {
                Ok(Some(()))
            } else {
                Err(format!("{n} pod(s) left"))
            }
        },
    )
    .await
}

/// Waits for the `default` ServiceAccount of a namespace (created by
/// kube-controller-manager); the ServiceAccount admission plugin rejects pods until then.
pub async fn default_service_account(client: &Client, namespace: &str) -> Result<()> {
    let api = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    until(
        format!("ServiceAccount default in {namespace}"),
        TIMEOUT,
        || async { Ok::<_, kube::Error>(api.get_opt("default").await?.map(|_| ())) },
    )
    .await
}

/// Waits until a Kubernetes object no longer exists (`get_opt` returns None).
pub async fn deleted<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    until(format!("{name} to be deleted"), TIMEOUT, || async {
        Ok::<_, kube::Error>(match api.get_opt(name).await? {
            None => Some(()),
            Some(_) => None,
        })
    })
    .await
}

/// Waits until a Deployment exists and `check` holds for it; `what` names
/// the state in the timeout message.
pub async fn deployment<F>(
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
    until(format!("Deployment {name}: {what}"), TIMEOUT, || {
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
