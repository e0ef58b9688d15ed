//! The I/O edge: resolve inputs, server-side apply what [`desired`] returns,
//! delete what is no longer wanted, write status, publish events, and the
//! error policy (per-object exponential backoff, Degraded condition, Warning
//! Event — never a crash).

mod apply;
#[cfg(test)]
mod fixtures;
mod inputs;
mod observe;
mod ownership;
#[cfg(test)]
mod scenarios;
mod secret;

use crate::children::Applied;
use crate::crd::PymService;
use crate::desired::{self, FIELD_MANAGER, OperatorPods, names};
use crate::error::{Error, Result};
use crate::metrics::{ErrorLabels, Metrics};
use crate::status::{self, Failure, Observed};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Resync period when nothing happens (drift is repaired by the watches first).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Without a Secret watch: how often referenced Secrets are re-read.
pub const DEFAULT_SECRET_POLL: Duration = Duration::from_secs(30);

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
    /// The operator's autoscaler runs and owns the worker replica count
    /// once the Deployment exists (see [`desired::worker_replicas`]).
    autoscaler: bool,
    /// How edits of referenced Secrets are noticed.
    pub secrets: SecretWatch,
}

/// How the operator notices that a Secret a PymService references changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretWatch {
    /// A metadata watch over Secrets (RBAC: `list` + `watch` on Secrets).
    Watch,
    /// No watch (RBAC: `get` only): PymServices that reference Secrets are
    /// reconciled this often.
    Poll(Duration),
}

impl SecretWatch {
    pub fn from_flags(watch: bool, poll_seconds: u64) -> Self {
        if watch {
            SecretWatch::Watch
        } else {
            SecretWatch::Poll(Duration::from_secs(poll_seconds))
        }
    }
}

/// Pure: when to reconcile a PymService again after a success: at the
/// resync, or sooner when its Secrets are polled, not watched.
pub fn requeue_after(svc: &PymService, secrets: SecretWatch) -> Duration {
    // Referenced Secrets (the user edits them) and the ones the operator
    // generates (a deleted one is written again): with async or managed
    // Redis there is always one of those.
    let spec = &svc.spec;
    let uses_secrets = spec.jwt_secret_ref.is_some()
        || spec.with_async
        || spec
            .redis
            .as_ref()
            .is_some_and(|r| r.external.is_some() || r.managed.is_some());
    match secrets {
        SecretWatch::Poll(every) if uses_secrets => every.min(RESYNC),
        _ => RESYNC,
    }
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
            autoscaler: false,
            secrets: SecretWatch::Poll(DEFAULT_SECRET_POLL),
        }
    }

    /// Every managed Redis NetworkPolicy also admits these pods: the
    /// operator's own, where the autoscaler reads queue statistics. Leave
    /// unset when the operator runs outside the cluster.
    pub fn with_operator_pods(mut self, pods: Option<OperatorPods>) -> Self {
        self.operator_pods = pods;
        self
    }

    /// The autoscaler runs (`--autoscale`): it alone moves the worker
    /// replicas of existing Deployments; without it, the reconciler keeps
    /// them inside `[minReplicas, maxReplicas]`.
    pub fn with_autoscaler(mut self, on: bool) -> Self {
        self.autoscaler = on;
        self
    }

    /// How edits of referenced Secrets are noticed (default: polled every
    /// [`DEFAULT_SECRET_POLL`]).
    pub fn with_secrets(mut self, secrets: SecretWatch) -> Self {
        self.secrets = secrets;
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

/// The steps: 1. read inputs, 2. the pure desired state (and refuse names
/// another owner holds), 3. apply it, 4. observe the Deployments and write
/// the status.
async fn reconcile_inner(svc: &PymService, ctx: &Context) -> Result<Action> {
    if svc.metadata.deletion_timestamp.is_some() {
        // Owner references: the garbage collector removes the children.
        return Ok(Action::await_change());
    }
    let ns = svc
        .namespace()
        .ok_or(desired::DesiredError::MissingMetadata("namespace"))?;
    let name = svc.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let resolved = inputs::resolve(svc, &secrets, &ns, ctx.operator_pods.clone()).await?;
    let d = desired::desired(svc, &resolved.inputs)?;
    ownership::ensure_free(svc, ctx, &ns, &d).await?;
    let applied = apply::apply(svc, ctx, &ns, &name, &d).await?;

    // Replica counts as of now, not as of each Deployment's apply: see [`observe::counts`].
    let client = &ctx.client;
    let (rn, an, wn) = (
        names::redis(&name),
        names::api_deployment(&name),
        names::worker_deployment(&name),
    );
    let (redis, api, workers) = futures::try_join!(
        observe::counts_if(client, &ns, &rn, applied.redis),
        observe::counts(client, &ns, &an, applied.api),
        observe::counts_if(client, &ns, &wn, applied.workers),
    )?;
    let obs = Observed {
        generation: svc.metadata.generation,
        redis_endpoint: d
            .redis_endpoint
            .clone()
            .or(resolved.external_redis_endpoint),
        api,
        workers,
        redis,
    };
    let st = status::after_apply(svc.status.as_ref(), &obs, &now());
    if !status::same(svc.status.as_ref(), &st) {
        write_status(svc, ctx, &st).await?;
    }
    Ok(Action::requeue(requeue_after(svc, ctx.secrets)))
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
    fn referenced_secrets_are_polled_without_a_watch() {
        use crate::reconcile::fixtures::mk_pymservice;
        let poll = SecretWatch::Poll(Duration::from_secs(30));
        let rows = [
            ("  image: x\n", poll, RESYNC),
            (
                "  image: x\n  jwtSecretRef: {name: j, key: k}\n",
                poll,
                Duration::from_secs(30),
            ),
            (
                "  image: x\n  jwtSecretRef: {name: j, key: k}\n",
                SecretWatch::Watch,
                RESYNC,
            ),
            (
                "  image: x\n  withAsync: true\n  taskSecretRef: {name: t, key: k}\n",
                poll,
                Duration::from_secs(30),
            ),
            (
                "  image: x\n  withAsync: true\n  redis: {external: {urlSecretRef: {name: u, key: k}}}\n",
                poll,
                Duration::from_secs(30),
            ),
            (
                "  image: x\n  withAsync: true\n  redis: {managed: {}}\n",
                poll,
                Duration::from_secs(30),
            ),
            (
                "  image: x\n  redis: {managed: {}}\n",
                SecretWatch::Watch,
                RESYNC,
            ),
        ];
        for (spec, watch, want) in rows {
            assert_eq!(
                requeue_after(&mk_pymservice("s", spec), watch),
                want,
                "{spec} {watch:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(20), Duration::from_secs(300));
    }
}
