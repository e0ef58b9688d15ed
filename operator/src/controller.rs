//! The kube-rs `Controller`: what it watches and how events map to PymServices.
//!
//! * PymServices: full objects (managedFields stripped), filtered by
//!   `predicates::generation` so status writes never re-trigger a reconcile.
//! * Children (Deployments, Services, ConfigMaps, Secrets, NetworkPolicies,
//!   PVCs with `app.kubernetes.io/managed-by=pym-operator`): metadata-only
//!   watches, mapped through owner references. Every change, including
//!   Deployment status and deletion, triggers a reconcile: drift repair and
//!   the ready counts in status both need it. Our own no-op applies don't
//!   change resourceVersion, so this does not loop.
//! * Secrets, only with `--watch-secrets` (RBAC `list` + `watch` on
//!   Secrets): the operator's own (a child watch, as above) and those a
//!   PymService references (`jwtSecretRef`, `taskSecretRef`, external
//!   `urlSecretRef`: a metadata-only watch over all Secrets, mapped by
//!   name). Without it (the default) the operator only `get`s Secrets, and
//!   a PymService that references Secrets is reconciled every
//!   `--secret-poll-seconds` to notice their edits (see
//!   [`reconcile::requeue_after`]).

use crate::children::Stores;
use crate::crd::PymService;
use crate::desired::{LABEL_MANAGED_BY, MANAGED_BY};
use crate::reconcile::{self, Context, SecretWatch};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

/// Which namespace(s) to watch.
#[derive(Clone, Debug)]
pub enum Scope {
    All,
    Namespace(String),
}

impl Scope {
    fn api<K>(&self, client: Client) -> Api<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match self {
            Scope::All => Api::all(client),
            Scope::Namespace(ns) => Api::namespaced(client, ns),
        }
    }
}

fn children<K>(
    scope: &Scope,
    client: Client,
    writer: reflector::store::Writer<PartialObjectMeta<K>>,
) -> impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let cfg = watcher::Config::default()
        .labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"))
        .any_semantic();
    watcher(scope.api::<PartialObjectMeta<K>>(client), cfg)
        .default_backoff()
        .modify(|m| m.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
}

/// PymServices in `store` that reference Secret `name` in namespace `ns`.
fn referencing(store: &Store<PymService>, ns: &str, name: &str) -> Vec<ObjectRef<PymService>> {
    store
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns))
        .filter(|s| {
            let jwt = s.spec.jwt_secret_ref.as_ref().map(|r| r.name.as_str());
            let task = s.spec.task_secret_ref.as_ref().map(|r| r.name.as_str());
            let url = s
                .spec
                .redis
                .as_ref()
                .and_then(|r| r.external.as_ref())
                .map(|e| e.url_secret_ref.name.as_str());
            [jwt, task, url].contains(&Some(name))
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Runs the controller until `shutdown` resolves (then finishes in-flight reconciles).
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (reader, writer) = reflector::store::<PymService>();
    let services = watcher(
        scope.api::<PymService>(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(|s| s.managed_fields_mut().clear())
    .reflect(writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());

    let watch_secrets = ctx.secrets == SecretWatch::Watch;
    let secret_store = reader.clone();
    let secrets = watch_secrets.then(|| {
        watcher(
            scope.api::<PartialObjectMeta<Secret>>(client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .default_backoff()
        .touched_objects()
    });

    let (deployments, dw) = reflector::store();
    let (services_r, sw) = reflector::store();
    let (config_maps, cw) = reflector::store();
    let (secrets_r, xw) = reflector::store();
    let secrets_r = watch_secrets.then_some(secrets_r);
    let (network_policies, nw) = reflector::store();
    let (pvcs, pw) = reflector::store();
    ctx.applied.reset(Stores {
        deployments: Some(deployments),
        services: Some(services_r),
        config_maps: Some(config_maps),
        secrets: secrets_r,
        network_policies: Some(network_policies),
        pvcs: Some(pvcs),
    });

    let mut controller = Controller::for_stream(services, reader)
        .with_config(Config::default().concurrency(concurrency))
        .owns_stream(children::<Deployment>(&scope, client.clone(), dw))
        .owns_stream(children::<Service>(&scope, client.clone(), sw))
        .owns_stream(children::<ConfigMap>(&scope, client.clone(), cw))
        .owns_stream(children::<NetworkPolicy>(&scope, client.clone(), nw))
        .owns_stream(children::<PersistentVolumeClaim>(
            &scope,
            client.clone(),
            pw,
        ));
    if let Some(secrets) = secrets {
        controller = controller
            .owns_stream(children::<Secret>(&scope, client.clone(), xw))
            .watches_stream(secrets, move |s: PartialObjectMeta<Secret>| {
                let ns = s.namespace().unwrap_or_default();
                referencing(&secret_store, &ns, &s.name_any())
            });
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                // Reconcile errors are already logged by the error policy;
                // these are watch/queue errors.
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}
