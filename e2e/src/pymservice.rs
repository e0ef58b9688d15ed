//! PymService objects: the API, their status conditions and Ready waits, and
//! the example service `examples/hello/pymservice.yaml` most tests apply.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

use crate::{Cluster, Result, wait, workspace_root};

/// `pym.dev/v1alpha1` `PymService` (plural `pymservices`).
pub fn pym_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("pym.dev", "v1alpha1", "PymService"),
        "pymservices",
    )
}

/// PymServices of namespace `ns`.
/// Creates PymService `name` with `spec` (JSON) through `api`.
pub async fn create_pym(
    api: &Api<DynamicObject>,
    name: &str,
    spec: Value,
) -> Result<DynamicObject> {
    let obj: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "pym.dev/v1alpha1", "kind": "PymService",
        "metadata": {"name": name},
        "spec": spec,
    }))?;
    Ok(api.create(&kube::api::PostParams::default(), &obj).await?)
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

/// Ready=True for the object's current generation.
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

/// `examples/hello/pymservice.yaml`: the example service. It ships no JWT
/// secret: [`apply_hello`] makes its Secret first.
pub fn hello_manifest() -> PathBuf {
    workspace_root().join("examples/hello/pymservice.yaml")
}

/// The Secret (key `secret`) the example's `jwtSecretRef` names.
pub const HELLO_JWT_SECRET: &str = "hello-jwt";

/// A random secret for a test Secret: 32 bytes of /dev/urandom, as 64 hex
/// characters (what `openssl rand -hex 32` prints).
pub fn random_secret() -> String {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Make the Secret `hello-jwt` in `ns` with a random value, unless it
/// exists (a second apply keeps it, so the pods do not roll). The value goes
/// through kubectl's stdin, never its arguments.
pub async fn ensure_hello_jwt_secret(cluster: &Cluster, ns: &str) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), ns);
    if secrets.get_opt(HELLO_JWT_SECRET).await?.is_some() {
        return Ok(());
    }
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {HELLO_JWT_SECRET}}}\ntype: Opaque\nstringData: {{secret: {}}}\n",
        random_secret()
    );
    cluster
        .kubectl()
        .args(["apply", "-n", ns, "-f", "-"])
        .stdin(manifest)
        .run()
        .await?;
    Ok(())
}

/// The Secret `hello-jwt` (see [`ensure_hello_jwt_secret`]), then
/// `kubectl apply -n <ns> -f examples/hello/pymservice.yaml`.
pub async fn apply_hello(cluster: &Cluster, ns: &str) -> Result<String> {
    ensure_hello_jwt_secret(cluster, ns).await?;
    cluster
        .kubectl()
        .args(["apply", "-n", ns, "-f"])
        .arg(hello_manifest())
        .run()
        .await
}

/// `kubectl get pym -n <ns>` (printed to stderr): the table of the CRD's
/// printer columns. Asserts that its header names each of `columns`.
pub async fn kubectl_get_pym(cluster: &Cluster, ns: &str, columns: &[&str]) -> Result<String> {
    let table = cluster
        .kubectl()
        .args(["get", "pym", "-n", ns])
        .run()
        .await?;
    eprintln!("kubectl get pym:\n{table}");
    let header = table.lines().next().unwrap_or_default();
    for col in columns {
        assert!(header.contains(col), "column {col} in {header:?}");
    }
    Ok(table)
}
