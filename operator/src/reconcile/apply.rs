//! Step 3 of a reconcile: server-side apply what [`desired`] returned and
//! delete what is no longer wanted. The managed Redis, the API and the
//! workers are independent and applied concurrently; each part returns its
//! Deployment as applied (`Some(None)`: wanted, apply skipped as up to
//! date; `None`: not wanted).

use super::{Context, ownership};
use crate::children::{self, Cached, Child};
use crate::crd::PymService;
use crate::desired::{self, Desired, ManagedRedisObjects, REPLICAS_FIELD_MANAGER, names};
use crate::error::{Error, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use tracing::{debug, info};

/// The Deployments of one reconcile, as applied.
pub(super) struct Applied {
    pub redis: Option<Option<Deployment>>,
    pub api: Option<Deployment>,
    pub workers: Option<Option<Deployment>>,
}

pub(super) async fn apply(
    svc: &PymService,
    ctx: &Context,
    ns: &str,
    name: &str,
    d: &Desired,
) -> Result<Applied> {
    let (redis, api, workers) = futures::try_join!(
        redis(svc, ctx, ns, name, d.managed_redis.as_ref()),
        api(ctx, ns, d),
        workers(svc, ctx, ns, name, d.worker_deployment.as_ref()),
    )?;
    Ok(Applied {
        redis,
        api,
        workers,
    })
}

/// The managed Redis: its Secret (and PVC) first, then the rest together.
/// Switched away from managed Redis (or never had it): its objects are
/// deleted, the PVC too (the operator does not keep data it no longer
/// serves), but not its Secret: the operator has no `delete` on Secrets
/// (least privilege); the Secret goes with the PymService through its owner
/// reference, and switching back to managed Redis reuses its password.
async fn redis(
    svc: &PymService,
    ctx: &Context,
    ns: &str,
    name: &str,
    wanted: Option<&ManagedRedisObjects>,
) -> Result<Option<Option<Deployment>>> {
    let (client, applied) = (&ctx.client, &ctx.applied);
    let Some(r) = wanted else {
        let (rn, pvc) = (names::redis(name), names::redis_pvc(name));
        futures::try_join!(
            delete::<Deployment>(svc, ctx, ns, &rn),
            delete::<Service>(svc, ctx, ns, &rn),
            delete::<NetworkPolicy>(svc, ctx, ns, &rn),
            delete::<PersistentVolumeClaim>(svc, ctx, ns, &pvc),
        )?;
        return Ok(None);
    };
    children::apply(client, applied, ns, &r.secret).await?;
    if let Some(pvc) = &r.pvc {
        children::apply(client, applied, ns, pvc).await?;
    }
    let (dep, _, _) = futures::try_join!(
        children::apply(client, applied, ns, &r.deployment),
        children::apply(client, applied, ns, &r.service),
        children::apply(client, applied, ns, &r.network_policy),
    )?;
    Ok(Some(dep))
}

/// The API Deployment and Service. The pods' ConfigMap and task Secret go
/// with the Deployment: the kubelet waits for both before it starts a
/// container.
async fn api(ctx: &Context, ns: &str, d: &Desired) -> Result<Option<Deployment>> {
    let (client, applied) = (&ctx.client, &ctx.applied);
    let task_secret = async {
        match &d.task_secret {
            Some(s) => children::apply(client, applied, ns, s).await.map(drop),
            None => Ok(()),
        }
    };
    let (_, dep, _, ()) = futures::try_join!(
        children::apply(client, applied, ns, &d.config_map),
        children::apply(client, applied, ns, &d.api_deployment),
        children::apply(client, applied, ns, &d.api_service),
        task_secret,
    )?;
    Ok(dep)
}

/// The worker Deployment, applied without `spec.replicas` (see
/// [`desired::worker_replicas`] for who sets the count, and when).
async fn workers(
    svc: &PymService,
    ctx: &Context,
    ns: &str,
    name: &str,
    wanted: Option<&Deployment>,
) -> Result<Option<Option<Deployment>>> {
    let wname = names::worker_deployment(name);
    let (Some(w), Some(wspec)) = (wanted, svc.spec.effective_workers()) else {
        delete::<Deployment>(svc, ctx, ns, &wname).await?;
        return Ok(None);
    };
    let deps: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let live = deps.get_opt(&wname).await?;
    let current = live
        .as_ref()
        .map(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
    let set = desired::worker_replicas(current, &wspec, ctx.autoscaler);
    let mut obj = w.clone();
    if current.is_none() {
        // Creation: the main manager sets replicas once (so the Deployment
        // never starts at the default 1); the replicas manager below takes
        // ownership so the next main apply, which omits replicas, does not
        // reset them.
        if let Some(s) = obj.spec.as_mut() {
            s.replicas = set;
        }
    }
    let mut dep = children::apply(&ctx.client, &ctx.applied, ns, &obj)
        .await?
        .or(live);
    if let Some(n) = set {
        debug!(pymservice = %name, replicas = n, "setting worker replicas");
        dep = Some(apply_replicas(&deps, &wname, n).await?);
        ctx.applied.forget::<Deployment>(ns, &wname);
    }
    Ok(Some(dep))
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

/// Deletes a child that is no longer wanted, if it is this PymService's.
/// The watch cache answers first, so a steady state costs no API call (a
/// child the cache has not seen yet triggers a reconcile of its own when it
/// appears); an object another owner controls is left alone.
async fn delete<K: Child>(svc: &PymService, ctx: &Context, ns: &str, name: &str) -> Result<()> {
    ctx.applied.forget::<K>(ns, name);
    let meta = match ctx.applied.lookup::<K>(ns, name) {
        Cached::Absent => return Ok(()),
        Cached::Present(meta) => Some(*meta),
        Cached::NoCache => ownership::live_meta::<K>(ctx, ns, name).await?,
    };
    let uid = svc.metadata.uid.as_deref().unwrap_or_default();
    match meta {
        Some(m) if ownership::controlled_by(&m, uid) => {}
        Some(m) => {
            let holder = ownership::holder(&m);
            debug!(kind = %K::kind(&()), namespace = %ns, name = %name, %holder, "not deleting: not ours");
            return Ok(());
        }
        None => return Ok(()),
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            info!(kind = %K::kind(&()), namespace = %ns, name = %name, "deleted");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(Error::from(e)),
    }
}
