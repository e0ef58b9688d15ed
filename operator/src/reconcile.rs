//! The I/O edge: resolve inputs, server-side apply what [`desired`] returns,
//! delete what is no longer wanted, write status, publish events, and the
//! error policy (per-object exponential backoff, Degraded condition, Warning
//! Event — never a crash).

use crate::children::{self, Applied, Child};
use crate::crd::PymService;
use crate::desired::{
    self, Desired, FIELD_MANAGER, Inputs, OperatorPods, REDIS_SECRET_PASSWORD_KEY,
    REPLICAS_FIELD_MANAGER, TASK_SECRET_KEY, names,
};
use crate::error::{Error, Result};
use crate::metrics::{ErrorLabels, Metrics};
use crate::status::{self, Counts, Failure, Observed};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Resync period when nothing happens (drift is repaired by the watches first).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Shared state of every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// What was applied to each child (skips no-op applies).
    pub applied: Applied,
    /// Consecutive failures per object, for the backoff.
    failures: Mutex<HashMap<(String, String), u32>>,
    /// The operator's own pods, admitted by every managed Redis
    /// NetworkPolicy (see [`Context::with_operator_pods`]).
    operator_pods: Option<OperatorPods>,
}

impl Context {
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            recorder,
            metrics,
            applied: Applied::default(),
            failures: Mutex::default(),
            operator_pods: None,
        }
    }

    /// Every managed Redis NetworkPolicy also admits these pods: the
    /// operator's own, where the autoscaler reads queue statistics. Leave
    /// unset when the operator runs outside the cluster.
    pub fn with_operator_pods(mut self, pods: Option<OperatorPods>) -> Self {
        self.operator_pods = pods;
        self
    }

    fn key(svc: &PymService) -> (String, String) {
        (svc.namespace().unwrap_or_default(), svc.name_any())
    }
}

/// Requeue delay after `n` consecutive failures: 1 s, 2 s, 4 s … capped at 5 min.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.min(9)).min(Duration::from_secs(300))
}

/// A fresh managed-Redis password: 32 URL-safe alphanumerics.
pub fn generate_password() -> String {
    random_alphanumerics(32)
}

/// A fresh task secret: 64 alphanumerics (~380 bits).
pub fn generate_task_secret() -> String {
    random_alphanumerics(64)
}

/// A value the operator generates once into a Secret it owns (`(secret
/// name, key)`): the one already there when `keep` accepts it, so pods that
/// roll keep the same value; else a new one from `generate`, logged as
/// "generating <what>".
async fn kept_or_generated(
    svc: &PymService,
    secrets: &Api<Secret>,
    (secret_name, key): (&str, &str),
    keep: impl Fn(&str) -> bool,
    (what, generate): (&str, fn() -> String),
) -> Result<String> {
    let existing = secrets.get_opt(secret_name).await?;
    if let Some(s) = &existing {
        ensure_ours(svc, s, "Secret")?;
    }
    Ok(existing
        .as_ref()
        .and_then(|s| secret_value(s, key))
        .filter(|v| keep(v))
        .unwrap_or_else(|| {
            info!(pymservice = %svc.name_any(), namespace = %svc.namespace().unwrap_or_default(), "generating {what}");
            generate()
        }))
}

fn random_alphanumerics(n: usize) -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Controller entry point.
pub async fn reconcile(svc: Arc<PymService>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_inner(&svc, &ctx).await;
    let elapsed = started.elapsed();
    ctx.metrics.duration.observe(elapsed.as_secs_f64());
    debug!(
        pymservice = %svc.name_any(), namespace = ?svc.namespace(),
        ms = elapsed.as_millis() as u64, ok = result.is_ok(), "reconciled"
    );
    match result {
        Ok(action) => {
            ctx.failures.lock().unwrap().remove(&Context::key(&svc));
            Ok(action)
        }
        Err(err) => {
            ctx.metrics
                .errors
                .get_or_create(&ErrorLabels {
                    error: err.metric_label().to_string(),
                })
                .inc();
            report_failure(&svc, &ctx, &err).await;
            Err(err)
        }
    }
}

/// Controller error policy: back off per object.
pub fn error_policy(svc: Arc<PymService>, err: &Error, ctx: Arc<Context>) -> Action {
    let n = {
        let mut f = ctx.failures.lock().unwrap();
        let n = f.entry(Context::key(&svc)).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(n - 1);
    warn!(
        pymservice = %svc.name_any(), namespace = ?svc.namespace(), error = %err,
        attempt = n, retry_in = ?delay, "reconcile failed"
    );
    Action::requeue(delay)
}

/// Degraded condition + Warning event. Best effort: failures here are logged only.
async fn report_failure(svc: &PymService, ctx: &Context, err: &Error) {
    let failure = Failure {
        reason: err.reason().to_string(),
        message: err.to_string(),
    };
    let st = status::after_failure(
        svc.status.as_ref(),
        svc.metadata.generation,
        &failure,
        &now(),
    );
    if !status::same(svc.status.as_ref(), &st)
        && let Err(e) = write_status(svc, ctx, &st).await
    {
        warn!(pymservice = %svc.name_any(), error = %e, "cannot write Degraded status");
    }
    let ev = Event {
        type_: EventType::Warning,
        reason: failure.reason,
        note: Some(failure.message),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &svc.object_ref(&())).await {
        warn!(pymservice = %svc.name_any(), error = %e, "cannot publish event");
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn reconcile_inner(svc: &PymService, ctx: &Context) -> Result<Action> {
    if svc.metadata.deletion_timestamp.is_some() {
        // Owner references: the garbage collector removes the children.
        return Ok(Action::await_change());
    }
    let ns = svc
        .namespace()
        .ok_or(desired::DesiredError::MissingMetadata("namespace"))?;
    let name = svc.name_any();
    let client = &ctx.client;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    // 1. Inputs that need reads: referenced Secrets and the managed password.
    let mut hash_parts: Vec<(&str, String)> = Vec::new();
    if let Some(r) = &svc.spec.jwt_secret_ref {
        let s = required_secret(&secrets, &ns, r, "spec.jwtSecretRef").await?;
        hash_parts.push(("jwt", s.resource_version().unwrap_or_default()));
    }
    let mut redis_endpoint = None;
    let redis = svc.spec.redis.as_ref();
    if let Some(ext) = redis.and_then(|r| r.external.as_ref()) {
        let field = "spec.redis.external.urlSecretRef";
        let r = &ext.url_secret_ref;
        let s = required_secret(&secrets, &ns, r, field).await?;
        let url = secret_value(&s, &r.key).unwrap_or_default();
        redis_endpoint =
            Some(
                desired::redis_endpoint_of_url(&url).ok_or_else(|| Error::BadRedisUrl {
                    field,
                    namespace: ns.clone(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                })?,
            );
        hash_parts.push(("redis-url", s.resource_version().unwrap_or_default()));
    }
    let managed = redis.is_some_and(|r| r.managed.is_some());
    let redis_password = if managed {
        let pw = kept_or_generated(
            svc,
            &secrets,
            (&names::redis(&name), REDIS_SECRET_PASSWORD_KEY),
            |p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()),
            ("managed Redis password", generate_password),
        )
        .await?;
        hash_parts.push(("redis-password", desired::short_hash(pw.as_bytes())));
        Some(pw)
    } else {
        None
    };
    // The task secret (withAsync): the user's, or the one the operator
    // generated before (kept, so pods that roll keep verifying queued tasks),
    // or a new one.
    let mut task_secret = None;
    if svc.spec.with_async {
        if let Some(r) = &svc.spec.task_secret_ref {
            let s = required_secret(&secrets, &ns, r, "spec.taskSecretRef").await?;
            hash_parts.push(("task", s.resource_version().unwrap_or_default()));
        } else {
            let value = kept_or_generated(
                svc,
                &secrets,
                (&names::task_secret(&name), TASK_SECRET_KEY),
                |v| !v.is_empty(),
                ("the task secret", generate_task_secret),
            )
            .await?;
            hash_parts.push(("task-secret", desired::short_hash(value.as_bytes())));
            task_secret = Some(value);
        }
    }
    let parts: Vec<(&str, &str)> = hash_parts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let inputs = Inputs {
        redis_password,
        task_secret,
        secrets_hash: desired::secrets_hash(&parts),
        operator_pods: ctx.operator_pods.clone(),
    };

    // 2. Pure step.
    let d: Desired = desired::desired(svc, &inputs)?;

    // 3. Apply what is wanted, delete what is not.
    let mut obs = Observed {
        generation: svc.metadata.generation,
        redis_endpoint: d.redis_endpoint.clone().or(redis_endpoint),
        ..Default::default()
    };
    let applied = &ctx.applied;
    // Redis, API and workers are independent: apply them concurrently.
    let redis_part = async {
        if let Some(r) = &d.managed_redis {
            children::apply(client, applied, &ns, &r.secret).await?;
            if let Some(pvc) = &r.pvc {
                children::apply(client, applied, &ns, pvc).await?;
            }
            let (dep, _, _) = futures::try_join!(
                children::apply(client, applied, &ns, &r.deployment),
                children::apply(client, applied, &ns, &r.service),
                children::apply(client, applied, &ns, &r.network_policy),
            )?;
            Ok::<_, Error>(Some(dep))
        } else {
            // Switched away from managed Redis (or never had it). The PVC is
            // deleted too: the operator does not keep data it no longer serves.
            {
                let rn = names::redis(&name);
                let pvc = names::redis_pvc(&name);
                futures::try_join!(
                    delete::<Deployment>(ctx, &ns, &rn),
                    delete::<Service>(ctx, &ns, &rn),
                    delete::<NetworkPolicy>(ctx, &ns, &rn),
                    delete::<Secret>(ctx, &ns, &rn),
                    delete::<PersistentVolumeClaim>(ctx, &ns, &pvc),
                )?;
            }
            Ok(None)
        }
    };
    let api_part = async {
        // The pods' ConfigMap and task Secret go with the Deployment: the
        // kubelet waits for both before it starts a container.
        let task_secret = async {
            match &d.task_secret {
                Some(s) => children::apply(client, applied, &ns, s).await.map(drop),
                None => Ok(()),
            }
        };
        let (_, dep, _, ()) = futures::try_join!(
            children::apply(client, applied, &ns, &d.config_map),
            children::apply(client, applied, &ns, &d.api_deployment),
            children::apply(client, applied, &ns, &d.api_service),
            task_secret,
        )?;
        Ok::<_, Error>(dep)
    };
    let worker_part = async {
        match (&d.worker_deployment, svc.spec.effective_workers()) {
            (Some(w), Some(wspec)) => {
                let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns);
                let wname = names::worker_deployment(&name);
                let live = deps.get_opt(&wname).await?;
                let current = live
                    .as_ref()
                    .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
                let set = desired::worker_replicas(current, &wspec);
                let mut obj = w.clone();
                if current.is_none() {
                    // Creation: the main manager sets replicas once (so the
                    // Deployment never starts at the default 1); the replicas
                    // manager below takes ownership so the next main apply,
                    // which omits replicas, does not reset them.
                    if let Some(s) = obj.spec.as_mut() {
                        s.replicas = set;
                    }
                }
                let mut dep = children::apply(client, applied, &ns, &obj).await?.or(live);
                if let Some(n) = set {
                    debug!(pymservice = %name, replicas = n, "setting worker replicas");
                    dep = Some(apply_replicas(&deps, &wname, n).await?);
                    applied.forget::<Deployment>(&ns, &wname);
                }
                Ok::<_, Error>(dep)
            }
            _ => {
                delete::<Deployment>(ctx, &ns, &names::worker_deployment(&name)).await?;
                Ok(None)
            }
        }
    };
    let (redis_dep, api_dep, worker_dep) = futures::try_join!(redis_part, api_part, worker_part)?;

    // Replica counts as of now, not as of each Deployment's apply: see [`counts`].
    let redis_counts = async {
        match redis_dep {
            Some(dep) => Ok(Some(counts(client, &ns, &names::redis(&name), dep).await?)),
            None => Ok::<_, Error>(None),
        }
    };
    let api_name = names::api_deployment(&name);
    let api_counts = counts(client, &ns, &api_name, api_dep);
    let worker_counts = async {
        match worker_dep {
            Some(dep) => {
                let wname = names::worker_deployment(&name);
                Ok(Some(counts(client, &ns, &wname, Some(dep)).await?))
            }
            None => Ok::<_, Error>(None),
        }
    };
    (obs.redis, obs.api, obs.workers) =
        futures::try_join!(redis_counts, api_counts, worker_counts)?;

    // 4. Status.
    let st = status::after_apply(svc.status.as_ref(), &obs, &now());
    if !status::same(svc.status.as_ref(), &st) {
        write_status(svc, ctx, &st).await?;
    }
    Ok(Action::requeue(RESYNC))
}

async fn required_secret(
    secrets: &Api<Secret>,
    ns: &str,
    r: &crate::crd::SecretKeyRef,
    field: &'static str,
) -> Result<Secret> {
    let s = secrets
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| Error::SecretNotFound {
            field,
            namespace: ns.to_string(),
            name: r.name.clone(),
        })?;
    if secret_bytes(&s, &r.key).is_none() {
        return Err(Error::SecretKeyMissing {
            field,
            namespace: ns.to_string(),
            name: r.name.clone(),
            key: r.key.clone(),
        });
    }
    Ok(s)
}

/// Refuses to take over an object this PymService did not create (a user
/// Secret that happens to have the managed name).
fn ensure_ours<K: Resource>(svc: &PymService, obj: &K, kind: &'static str) -> Result<()> {
    let ours = obj
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == svc.metadata.uid.as_ref());
    if ours {
        Ok(())
    } else {
        Err(Error::NotOwned {
            kind,
            namespace: svc.namespace().unwrap_or_default(),
            name: obj.meta().name.clone().unwrap_or_default(),
        })
    }
}

/// The raw value of `key` in a Secret as read from the API (`stringData`
/// is write-only, so only `data` is consulted).
fn secret_bytes<'a>(s: &'a Secret, key: &str) -> Option<&'a [u8]> {
    s.data.as_ref()?.get(key).map(|b| b.0.as_slice())
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    String::from_utf8(secret_bytes(s, key)?.to_vec()).ok()
}

/// Replica counts of a Deployment once every apply of the reconcile is done:
/// the apply response when it already shows the Deployment rolled out, else
/// a GET (the apply was skipped as up to date, or its response is stale).
///
/// The response is a snapshot from the moment of the apply, and the applies
/// run concurrently: a new Deployment's pods often become ready while a
/// slower sibling apply is still in flight (a Service waits for its ClusterIP,
/// which the apiserver allocates one Service at a time). Reading again here
/// lets this reconcile report Ready at once; with the snapshot, Ready waited
/// for the next reconcile, queued behind every other PymService's (seconds
/// when many are created together).
async fn counts(client: &Client, ns: &str, name: &str, seen: Option<Deployment>) -> Result<Counts> {
    if let Some(c) = seen.as_ref().map(Counts::of).filter(Counts::done) {
        return Ok(c);
    }
    let dep = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    Ok(Counts::of(&dep))
}

/// Sets only `spec.replicas` of the worker Deployment, under [`REPLICAS_FIELD_MANAGER`].
async fn apply_replicas(deps: &Api<Deployment>, name: &str, replicas: i32) -> Result<Deployment> {
    let patch = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    });
    let pp = PatchParams::apply(REPLICAS_FIELD_MANAGER).force();
    Ok(deps.patch(name, &pp, &Patch::Apply(&patch)).await?)
}

/// Deletes a child that is no longer wanted, if the watch cache has it
/// (so a steady state costs no API call; a child the cache has not seen
/// yet triggers a reconcile of its own when it appears).
async fn delete<K: Child>(ctx: &Context, ns: &str, name: &str) -> Result<()> {
    ctx.applied.forget::<K>(ns, name);
    if !ctx.applied.exists::<K>(ns, name) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            info!(kind = %K::kind(&()), namespace = %ns, name = %name, "deleted");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn write_status(
    svc: &PymService,
    ctx: &Context,
    st: &crate::crd::PymServiceStatus,
) -> Result<()> {
    let api: Api<PymService> =
        Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": PymService::api_version(&()),
        "kind": PymService::kind(&()),
        "status": st,
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&svc.name_any(), &pp, &Patch::Apply(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(20), Duration::from_secs(300));
    }

    #[test]
    fn secret_values_come_from_data_only() {
        use k8s_openapi::ByteString;
        let s = Secret {
            data: Some(
                [
                    ("url".to_string(), ByteString(b"redis://r".to_vec())),
                    ("bin".to_string(), ByteString(vec![0xff, 0xfe])),
                ]
                .into(),
            ),
            string_data: Some([("plain".to_string(), "x".to_string())].into()),
            ..Secret::default()
        };
        // (key, raw bytes, UTF-8 text)
        type Case<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);
        let cases: &[Case] = &[
            ("url", Some(b"redis://r"), Some("redis://r")),
            ("bin", Some(&[0xff, 0xfe]), None),
            ("plain", None, None),
            ("missing", None, None),
        ];
        for (key, bytes, text) in cases {
            assert_eq!(secret_bytes(&s, key), *bytes, "{key}");
            assert_eq!(secret_value(&s, key).as_deref(), *text, "{key}");
        }
        assert_eq!(secret_bytes(&Secret::default(), "url"), None);
    }

    use http::{Request, Response};
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use kube::api::ObjectMeta;
    use kube::client::Body;

    /// A Deployment of generation 1 that wants 1 replica and has `ready` ready.
    fn deployment(ready: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("svc-api".into()),
                namespace: Some("ns".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(1),
                ready_replicas: Some(ready),
                updated_replicas: Some(1),
                ..Default::default()
            }),
        }
    }

    /// A client whose apiserver answers every request with `answer` and
    /// records "METHOD path" of each request.
    fn recording_client(answer: Deployment) -> (Client, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let svc = tower::service_fn(move |req: Request<Body>| {
            log.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
            let body = serde_json::to_vec(&answer).unwrap();
            async move { Ok::<_, std::convert::Infallible>(Response::new(Body::from(body))) }
        });
        (Client::new(svc, "default"), seen)
    }

    const GET_API: &str = "GET /apis/apps/v1/namespaces/ns/deployments/svc-api";

    #[tokio::test]
    async fn counts_trusts_a_rolled_out_snapshot() {
        let (client, seen) = recording_client(deployment(0));
        let c = counts(&client, "ns", "svc-api", Some(deployment(1)))
            .await
            .unwrap();
        assert!(c.done());
        assert!(seen.lock().unwrap().is_empty(), "no API call");
    }

    #[tokio::test]
    async fn counts_reads_again_when_the_snapshot_is_not_rolled_out() {
        // The apply response (0 ready) is older than the live object (1 ready).
        let (client, seen) = recording_client(deployment(1));
        let c = counts(&client, "ns", "svc-api", Some(deployment(0)))
            .await
            .unwrap();
        assert_eq!(c.ready, 1);
        assert!(c.done());
        assert_eq!(*seen.lock().unwrap(), vec![GET_API.to_string()]);
    }

    #[tokio::test]
    async fn counts_reads_when_the_apply_was_skipped() {
        let (client, seen) = recording_client(deployment(0));
        let c = counts(&client, "ns", "svc-api", None).await.unwrap();
        assert_eq!(c.ready, 0);
        assert!(!c.done());
        assert_eq!(*seen.lock().unwrap(), vec![GET_API.to_string()]);
    }

    #[test]
    fn passwords_are_long_and_url_safe() {
        let p = generate_password();
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(p, generate_password());
        let t = generate_task_secret();
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(t, generate_task_secret());
    }
}
