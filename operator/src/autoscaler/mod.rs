//! The autoscaler: for every PymService with `withAsync`, poll the worker
//! queues' statistics every `pollIntervalSeconds`, decide the worker
//! replicas, and write the result:
//!
//! * worker Deployment `spec.replicas` through its `/scale` subresource
//!   (field manager [`FIELD_MANAGER`]). While autoscaling is on, the
//!   autoscaler is the only writer of the count once the Deployment exists:
//!   it keeps it inside `[minReplicas, maxReplicas]` even when the queue
//!   statistics cannot be read;
//! * before a scale-down, each worker pod's `controller.kubernetes.io/pod-deletion-cost`
//!   annotation: the tasks it holds (worker registry), so idle pods go first;
//! * the autoscaler's part of the PymService status
//!   ([`crate::crd::AutoscalerStatus`]: `workers.desired`,
//!   `queueDepth`, `lastScaleTime`, `lastScaleReason` and the `Autoscaling`
//!   condition), by server-side apply under [`FIELD_MANAGER`], so the
//!   reconciler's status apply and this one never remove each other's fields;
//! * an Event on each scale (`ScaledUp`/`ScaledDown`, with the reason) and
//!   when Redis becomes unreachable (`RedisUnreachable`; replicas unchanged);
//! * gauges `pym_operator_workers_desired`, `pym_operator_workers_current`
//!   and `pym_operator_queue_depth` per service.
//!
//! | file | holds |
//! |---|---|
//! | [`scale`] | pure: queue stats + history → desired worker replicas |
//! | [`status`] | pure: one poll → the next status and its Events |
//! | [`endpoint`] | pure: `--stats-redis-endpoint` overrides |
//! | [`deletion_cost`] | pure: before a scale-down, each worker pod's `pod-deletion-cost` = the tasks it holds |
//! | `redis.rs` | reading queue statistics (URL from the Secret, connections) |
//! | `poll.rs` | the I/O shell of one service's polling task |
//! | this file | watches and one polling task per autoscaled service |
//!
//! Services are polled concurrently (one task each). Stats reads share one
//! multiplexed connection per Redis URL and at most
//! [`Config::max_concurrent_reads`] run at once. An operator running
//! outside the cluster replaces only the Redis `host:port` with
//! `--stats-redis-endpoint` ([`EndpointOverride`]), keeping the password
//! from the Secret.

pub mod deletion_cost;
pub mod endpoint;
mod poll;
mod redis;
pub mod scale;
pub mod status;
pub mod ticks;

pub use endpoint::{EndpointOverride, find_override};
pub use status::CONDITION;

use crate::controller::Scope;
use crate::crd::{AutoscalerStatus, PymService};
use crate::desired::{self, LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY};
use crate::metrics::{Metrics, ServiceLabels};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{debug, info};

/// Field manager of every write the autoscaler makes.
pub const FIELD_MANAGER: &str = "pym-autoscaler";
/// How often the set of autoscaled services is re-read.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

/// Settings of the autoscaler.
#[derive(Clone, Debug)]
pub struct Config {
    /// Stats reads (and connects) in flight at once, over all services.
    pub max_concurrent_reads: usize,
    /// Redis `host:port` replacements for operators outside the cluster.
    pub endpoint_overrides: Vec<EndpointOverride>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrent_reads: 32,
            endpoint_overrides: Vec::new(),
        }
    }
}

struct Shared {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    config: Config,
    services: Store<PymService>,
    deployments: Store<Deployment>,
    stats: redis::StatsReader,
}

/// Runs the autoscaler until `shutdown` resolves.
pub async fn run(
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    scope: Scope,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (services, svc_writer) = reflector::store::<PymService>();
    let (deployments, dep_writer) = reflector::store::<Deployment>();
    let (svc_api, dep_api): (Api<PymService>, Api<Deployment>) = match &scope {
        Scope::All => (Api::all(client.clone()), Api::all(client.clone())),
        Scope::Namespace(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
    };
    let svc_watch = watcher(svc_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|s| s.managed_fields_mut().clear())
        .reflect(svc_writer)
        .for_each(|_| async {});
    let worker_sel = format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={}",
        desired::Component::Worker.as_str()
    );
    let dep_watch = watcher(
        dep_api,
        watcher::Config::default()
            .labels(&worker_sel)
            .any_semantic(),
    )
    .default_backoff()
    .modify(|d| d.managed_fields_mut().clear())
    .reflect(dep_writer)
    .for_each(|_| async {});
    let shared = Arc::new(Shared {
        stats: redis::StatsReader::new(client.clone(), &config),
        client,
        recorder,
        metrics,
        config,
        services,
        deployments,
    });
    info!(
        max_concurrent_reads = shared.config.max_concurrent_reads,
        overrides = shared.config.endpoint_overrides.len(),
        "autoscaler started"
    );
    tokio::select! {
        _ = svc_watch => {},
        _ = dep_watch => {},
        _ = supervise(shared.clone()) => {},
        _ = shutdown => {},
    }
    info!("autoscaler stopped");
}

/// Keeps one polling task per autoscaled service.
async fn supervise(shared: Arc<Shared>) {
    let _ = shared.services.wait_until_ready().await;
    let _ = shared.deployments.wait_until_ready().await;
    let mut tasks = Tasks::default();
    loop {
        let wanted: Vec<ObjectRef<PymService>> = shared
            .services
            .state()
            .iter()
            .filter(|s| {
                s.metadata.deletion_timestamp.is_none() && s.spec.effective_workers().is_some()
            })
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect();
        let mut stopped = Vec::new();
        tasks.0.retain(|key, task| {
            let keep = wanted.contains(key) && !task.is_finished();
            if !keep {
                task.abort();
                forget_metrics(&shared.metrics, key);
                stopped.push(key.clone());
            }
            keep
        });
        // A service that is no longer autoscaled (withAsync turned off)
        // loses the autoscaler's status fields.
        for key in stopped {
            if !wanted.contains(&key) && shared.services.get(&key).is_some() {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let ns = key.namespace.clone().unwrap_or_default();
                    if let Err(e) =
                        poll::write_status(&shared, &ns, &key.name, &AutoscalerStatus::default())
                            .await
                    {
                        debug!(pymservice = %key.name, namespace = %ns, error = %e, "cannot clear autoscaler status");
                    }
                });
            }
        }
        for key in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = tasks.0.entry(key) {
                let key = slot.key().clone();
                debug!(pymservice = %key.name, namespace = ?key.namespace, "autoscaling");
                slot.insert(tokio::spawn(poll::poll_loop(shared.clone(), key)));
            }
        }
        tokio::time::sleep(SUPERVISE_EVERY).await;
    }
}

/// The polling tasks; aborted when the supervisor is dropped (shutdown, lost lease).
#[derive(Default)]
struct Tasks(HashMap<ObjectRef<PymService>, JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in self.0.values() {
            t.abort();
        }
    }
}

fn labels(key: &ObjectRef<PymService>) -> ServiceLabels {
    ServiceLabels {
        namespace: key.namespace.clone().unwrap_or_default(),
        name: key.name.clone(),
    }
}

fn forget_metrics(m: &Metrics, key: &ObjectRef<PymService>) {
    let l = labels(key);
    m.queue_depth.remove(&l);
    m.workers_desired.remove(&l);
    m.workers_current.remove(&l);
}
