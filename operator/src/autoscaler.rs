//! The autoscaler's I/O edge: for every PymService with `withAsync`, poll
//! the worker queues' statistics every `pollIntervalSeconds`, feed
//! [`scale::recommend`], and write the result:
//!
//! * worker Deployment `spec.replicas` through its `/scale` subresource
//!   (field manager [`FIELD_MANAGER`]; the reconciler never applies
//!   replicas except to clamp them into `[minReplicas, maxReplicas]`);
//! * PymService status `workers.desired`, `queueDepth`, `lastScaleTime`,
//!   `lastScaleReason` and the `Autoscaling` condition, by server-side apply
//!   under [`FIELD_MANAGER`], so the reconciler's status apply and this one
//!   never remove each other's fields;
//! * an Event on each scale (`ScaledUp`/`ScaledDown`, with the reason) and
//!   when Redis becomes unreachable (`RedisUnreachable`; replicas unchanged);
//! * gauges `pym_operator_workers_desired`, `pym_operator_workers_current`
//!   and `pym_operator_queue_depth` per service.
//!
//! Services are polled concurrently (one task each). Stats reads share one
//! multiplexed connection per Redis URL and at most
//! [`Config::max_concurrent_reads`] run at once. The Redis URL is read from
//! the Secret the worker pods use (managed: `<name>-redis`, key `url`;
//! external: `spec.redis.external.urlSecretRef`); an operator running
//! outside the cluster replaces only its `host:port` with
//! `--stats-redis-endpoint` ([`EndpointOverride`]), keeping the password
//! from the Secret. URLs are logged redacted only.

use crate::controller::Scope;
use crate::crd::PymService;
use crate::desired::{self, LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY, names};
use crate::error::{Error, Result};
use crate::metrics::{Metrics, ServiceLabels};
use crate::scale::{self, Decision, Policy, Sample, ScaleState, Workers};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use pym_broker::redact_url;
use pym_broker::stats::queue_stats;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Field manager of every write the autoscaler makes.
pub const FIELD_MANAGER: &str = "pym-autoscaler";
/// Condition type the autoscaler owns in `status.conditions`.
pub const CONDITION: &str = "Autoscaling";
/// Time limit of one connect or one stats read.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Queue depth alone (no scale) is written to status at most this often.
const DEPTH_STATUS_EVERY: Duration = Duration::from_secs(5);
/// A patched replica count is trusted over a lagging watch for this long.
const PATCH_TRUST: Duration = Duration::from_secs(5);
/// How often the Redis URL Secret is re-read (edits are picked up).
const URL_REFRESH: Duration = Duration::from_secs(60);
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

/// `--stats-redis-endpoint <namespace>/<name>=<host:port>`: the autoscaler
/// reaches that PymService's Redis at `host:port` instead of the host in its
/// URL Secret (password, db and scheme are kept). `<namespace>/*` matches
/// every service of a namespace and `*` every service; the most specific
/// match wins. For operators running outside the cluster (development, e2e).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointOverride {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub endpoint: String,
}

impl FromStr for EndpointOverride {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "{s:?}: expected <namespace>/<name>=<host:port>, <namespace>/*=<host:port> or *=<host:port>"
            )
        };
        let (target, endpoint) = s.split_once('=').ok_or_else(bad)?;
        if endpoint.is_empty() || endpoint.contains(['/', '@', '?', '#']) || !endpoint.contains(':')
        {
            return Err(bad());
        }
        let (namespace, name) = match target {
            "*" => (None, None),
            t => {
                let (ns, n) = t.split_once('/').ok_or_else(bad)?;
                if ns.is_empty() || n.is_empty() {
                    return Err(bad());
                }
                (Some(ns.to_string()), (n != "*").then(|| n.to_string()))
            }
        };
        Ok(EndpointOverride {
            namespace,
            name,
            endpoint: endpoint.to_string(),
        })
    }
}

/// The override for service `ns/name`, most specific first.
pub fn find_override<'a>(
    overrides: &'a [EndpointOverride],
    ns: &str,
    name: &str,
) -> Option<&'a str> {
    let rank = |o: &EndpointOverride| match (&o.namespace, &o.name) {
        (Some(n), Some(m)) if n == ns && m == name => Some(2),
        (Some(n), None) if n == ns => Some(1),
        (None, None) => Some(0),
        _ => None,
    };
    overrides
        .iter()
        .filter_map(|o| rank(o).map(|r| (r, o.endpoint.as_str())))
        .max_by_key(|(r, _)| *r)
        .map(|(_, e)| e)
}

/// `url` with its `host:port` replaced by `endpoint` (credentials, db and
/// query kept); `None` if `url` is not a `redis://`/`rediss://` URL.
pub fn with_endpoint(url: &str, endpoint: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let scheme = &url[..scheme_end];
    if scheme != "redis://" && scheme != "rediss://" {
        return None;
    }
    let rest = &url[scheme_end..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let creds = authority.rsplit_once('@').map(|(c, _)| c);
    Some(match creds {
        Some(c) => format!("{scheme}{c}@{endpoint}{tail}"),
        None => format!("{scheme}{endpoint}{tail}"),
    })
}

/// The autoscaler's own status fields, as last written.
#[derive(Clone, Debug, Default, PartialEq)]
struct Owned {
    desired: Option<i32>,
    queue_depth: Option<i64>,
    last_scale_time: Option<Time>,
    last_scale_reason: Option<String>,
    condition: Option<Condition>,
}

impl Owned {
    fn of(svc: &PymService) -> Owned {
        let st = svc.status.clone().unwrap_or_default();
        Owned {
            desired: st.workers.and_then(|w| w.desired),
            queue_depth: st.queue_depth,
            last_scale_time: st.last_scale_time,
            last_scale_reason: st.last_scale_reason,
            condition: st.conditions.into_iter().find(|c| c.type_ == CONDITION),
        }
    }

    /// The server-side apply body for these fields.
    fn patch(&self) -> serde_json::Value {
        let mut status = serde_json::Map::new();
        if let Some(d) = self.desired {
            status.insert("workers".into(), serde_json::json!({ "desired": d }));
        }
        if let Some(q) = self.queue_depth {
            status.insert("queueDepth".into(), q.into());
        }
        if let Some(t) = &self.last_scale_time {
            status.insert(
                "lastScaleTime".into(),
                serde_json::to_value(t).unwrap_or_default(),
            );
        }
        if let Some(r) = &self.last_scale_reason {
            status.insert("lastScaleReason".into(), r.clone().into());
        }
        if let Some(c) = &self.condition {
            status.insert(
                "conditions".into(),
                serde_json::json!([serde_json::to_value(c).unwrap_or_default()]),
            );
        }
        serde_json::json!({
            "apiVersion": PymService::api_version(&()),
            "kind": PymService::kind(&()),
            "status": status,
        })
    }
}

/// The `Autoscaling` condition; the transition time is kept while the status holds.
fn condition(
    prev: Option<&Condition>,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => now(),
    };
    Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.chars().take(1024).collect(),
        observed_generation: generation,
        last_transition_time,
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// One multiplexed connection per Redis URL, and a bound on reads in flight.
struct Pool {
    conns: Mutex<HashMap<String, ConnectionManager>>,
    permits: Semaphore,
}

impl Pool {
    async fn conn(&self, url: &str) -> Result<ConnectionManager> {
        if let Some(c) = self.conns.lock().await.get(url) {
            return Ok(c.clone());
        }
        let fail = |m: String| Error::QueueStats {
            endpoint: redact_url(url),
            message: m,
        };
        let client = redis::Client::open(url).map_err(|e| fail(format!("invalid URL: {e}")))?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            client.get_connection_manager_with_config(cfg),
        )
        .await
        .map_err(|_| fail("connect timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
        Ok(self
            .conns
            .lock()
            .await
            .entry(url.to_string())
            .or_insert(conn)
            .clone())
    }

    async fn forget(&self, url: &str) {
        self.conns.lock().await.remove(url);
    }
}

struct Shared {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    config: Config,
    services: Store<PymService>,
    deployments: Store<Deployment>,
    pool: Pool,
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
        client,
        recorder,
        metrics,
        pool: Pool {
            conns: Mutex::default(),
            permits: Semaphore::new(config.max_concurrent_reads.max(1)),
        },
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
                    if let Err(e) = write_status(&shared, &ns, &key.name, &Owned::default()).await {
                        debug!(pymservice = %key.name, namespace = %ns, error = %e, "cannot clear autoscaler status");
                    }
                });
            }
        }
        for key in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = tasks.0.entry(key) {
                let key = slot.key().clone();
                debug!(pymservice = %key.name, namespace = ?key.namespace, "autoscaling");
                slot.insert(tokio::spawn(poll_loop(shared.clone(), key)));
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

/// Per-service memory of the polling task.
struct ServiceState {
    scale: ScaleState,
    /// What the status should hold (kept across failed writes).
    wanted: Owned,
    /// What was last written successfully.
    written: Owned,
    last_status_write: Option<Instant>,
    /// Redis URL (from the Secret) and when it was read.
    url: Option<(String, Instant)>,
    /// Replicas this task patched, and when (the watch may lag behind).
    patched: Option<(u32, Instant)>,
}

async fn poll_loop(shared: Arc<Shared>, key: ObjectRef<PymService>) {
    let Some(first) = shared.services.get(&key) else {
        return;
    };
    let mut st = ServiceState {
        scale: ScaleState::default(),
        wanted: Owned::of(&first),
        written: Owned::of(&first),
        last_status_write: None,
        url: None,
        patched: None,
    };
    loop {
        let started = Instant::now();
        let Some(svc) = shared.services.get(&key) else {
            return;
        };
        let Some(wspec) = svc.spec.effective_workers() else {
            return;
        };
        let policy = Policy::from_spec(&wspec);
        poll(&shared, &svc, &policy, &wspec.queues, &mut st).await;
        let next = started + Duration::from_millis(policy.poll_interval_ms);
        tokio::time::sleep_until(next.into()).await;
    }
}

async fn poll(
    shared: &Shared,
    svc: &PymService,
    policy: &Policy,
    queues: &[String],
    st: &mut ServiceState,
) {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let wname = names::worker_deployment(&name);
    let Some(dep) = shared.deployments.get(&ObjectRef::new(&wname).within(&ns)) else {
        return; // the reconciler has not created it yet
    };
    let observed = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let mut current = u32::try_from(observed).unwrap_or(0);
    if let Some((n, at)) = st.patched {
        if n != current && at.elapsed() < PATCH_TRUST {
            current = n;
        } else {
            st.patched = None;
        }
    }
    let workers = Workers {
        current,
        ready: dep
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0),
    };

    let read_at = Instant::now();
    let stats = read_stats(shared, svc, queues, st).await;
    let read_ms = read_at.elapsed().as_millis() as u64;
    let decision = scale::recommend(policy, stats.as_ref().ok(), workers, &mut st.scale);
    let key = ServiceLabels {
        namespace: ns.clone(),
        name: name.clone(),
    };
    let m = &shared.metrics;
    m.workers_current
        .get_or_create(&key)
        .set(i64::from(current));
    let mut next = st.wanted.clone();
    let generation = svc.metadata.generation;
    match &stats {
        Ok(sample) => {
            let depth = i64::try_from(sample.work()).unwrap_or(i64::MAX);
            m.queue_depth.get_or_create(&key).set(depth);
            m.workers_desired
                .get_or_create(&key)
                .set(i64::from(decision.recommended));
            next.queue_depth = Some(depth);
            next.desired = Some(i32::try_from(decision.recommended).unwrap_or(i32::MAX));
            let was_down = st
                .wanted
                .condition
                .as_ref()
                .is_some_and(|c| c.status != "True");
            next.condition = Some(condition(
                st.wanted.condition.as_ref(),
                true,
                "QueueRead",
                &format!(
                    "queue statistics read every {}s",
                    policy.poll_interval_ms / 1000
                ),
                generation,
            ));
            if was_down {
                info!(pymservice = %name, namespace = %ns, "queue statistics readable again");
            }
        }
        Err(e) => {
            let was_up = st
                .wanted
                .condition
                .as_ref()
                .is_none_or(|c| c.status == "True");
            let msg = format!("{e}; keeping {current} workers");
            next.condition = Some(condition(
                st.wanted.condition.as_ref(),
                false,
                e.reason(),
                &msg,
                generation,
            ));
            if was_up {
                warn!(pymservice = %name, namespace = %ns, error = %e, "cannot read queue statistics");
                publish(
                    shared,
                    svc,
                    EventType::Warning,
                    e.reason(),
                    &msg,
                    "ReadQueue",
                )
                .await;
            }
        }
    }

    let mut scaled = None;
    if decision.changes(current) {
        scaled = scale_to(shared, svc, &ns, &wname, current, &decision, st, &mut next).await;
        debug!(
            pymservice = %name, namespace = %ns,
            read_ms, read_to_patched_ms = read_at.elapsed().as_millis() as u64,
            "scale latency inside the operator"
        );
    }

    let depth_only = next.queue_depth != st.written.queue_depth
        && Owned {
            queue_depth: st.written.queue_depth,
            ..next.clone()
        } == st.written;
    let due = st
        .last_status_write
        .is_none_or(|t| t.elapsed() >= DEPTH_STATUS_EVERY);
    st.wanted = next.clone();
    if next != st.written && (!depth_only || due) {
        match write_status(shared, &ns, &name, &next).await {
            Ok(()) => {
                st.written = next;
                st.last_status_write = Some(Instant::now());
            }
            Err(e) => {
                warn!(pymservice = %name, namespace = %ns, error = %e, "cannot write autoscaler status")
            }
        }
    }
    // After the status, so a reader of the Event finds the status up to date.
    if let Some(reason) = scaled {
        publish(
            shared,
            svc,
            EventType::Normal,
            reason,
            &decision.reason,
            "Scale",
        )
        .await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn scale_to(
    shared: &Shared,
    svc: &PymService,
    ns: &str,
    wname: &str,
    current: u32,
    decision: &Decision,
    st: &mut ServiceState,
    next: &mut Owned,
) -> Option<&'static str> {
    let deps: Api<Deployment> = Api::namespaced(shared.client.clone(), ns);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let patch = serde_json::json!({ "spec": { "replicas": decision.replicas } });
    match deps.patch_scale(wname, &pp, &Patch::Merge(&patch)).await {
        Ok(_) => {
            let up = decision.replicas > current;
            info!(
                pymservice = %svc.name_any(), namespace = %ns, from = current, to = decision.replicas,
                reason = %decision.reason, "scaled workers"
            );
            st.patched = Some((decision.replicas, Instant::now()));
            next.last_scale_time = Some(now());
            next.last_scale_reason = Some(decision.reason.clone());
            Some(if up { "ScaledUp" } else { "ScaledDown" })
        }
        Err(e) => {
            warn!(pymservice = %svc.name_any(), namespace = %ns, error = %e, "cannot scale the worker Deployment");
            None
        }
    }
}

async fn publish(
    shared: &Shared,
    svc: &PymService,
    type_: EventType,
    reason: &str,
    note: &str,
    action: &str,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1024).collect()),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = shared.recorder.publish(&ev, &svc.object_ref(&())).await {
        debug!(pymservice = %svc.name_any(), error = %e, "cannot publish event");
    }
}

async fn write_status(shared: &Shared, ns: &str, name: &str, owned: &Owned) -> Result<()> {
    let api: Api<PymService> = Api::namespaced(shared.client.clone(), ns);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &pp, &Patch::Apply(&owned.patch()))
        .await?;
    Ok(())
}

/// The summed statistics of the worker queues.
async fn read_stats(
    shared: &Shared,
    svc: &PymService,
    queues: &[String],
    st: &mut ServiceState,
) -> Result<Sample> {
    let url = match &st.url {
        Some((u, at)) if at.elapsed() < URL_REFRESH => u.clone(),
        _ => {
            let u = resolve_url(shared, svc).await?;
            st.url = Some((u.clone(), Instant::now()));
            u
        }
    };
    let _permit = shared.pool.permits.acquire().await;
    let result = async {
        let mut conn = shared.pool.conn(&url).await?;
        let mut all = Vec::with_capacity(queues.len());
        for q in queues {
            let s = tokio::time::timeout(REDIS_TIMEOUT, queue_stats(&mut conn, q))
                .await
                .map_err(|_| Error::QueueStats {
                    endpoint: redact_url(&url),
                    message: "stats read timed out".into(),
                })?
                .map_err(|e| Error::QueueStats {
                    endpoint: redact_url(&url),
                    message: e.to_string(),
                })?;
            all.push(s);
        }
        Ok(Sample::of(&all))
    }
    .await;
    if result.is_err() {
        // Re-read the Secret and reconnect next time (password or host may have changed).
        shared.pool.forget(&url).await;
        st.url = None;
    }
    result
}

/// The Redis URL the worker pods use, with the endpoint override applied.
async fn resolve_url(shared: &Shared, svc: &PymService) -> Result<String> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let redis = svc.spec.redis.as_ref();
    let (field, secret, key) = match (
        redis.and_then(|r| r.managed.as_ref()),
        redis.and_then(|r| r.external.as_ref()),
    ) {
        (Some(_), _) => (
            "spec.redis.managed",
            names::redis(&name),
            desired::REDIS_SECRET_URL_KEY.to_string(),
        ),
        (None, Some(e)) => (
            "spec.redis.external.urlSecretRef",
            e.url_secret_ref.name.clone(),
            e.url_secret_ref.key.clone(),
        ),
        (None, None) => {
            return Err(Error::QueueStats {
                endpoint: String::new(),
                message: "spec.redis is not set".into(),
            });
        }
    };
    let secrets: Api<Secret> = Api::namespaced(shared.client.clone(), &ns);
    let s = secrets
        .get_opt(&secret)
        .await?
        .ok_or_else(|| Error::SecretNotFound {
            field,
            namespace: ns.clone(),
            name: secret.clone(),
        })?;
    let url = s
        .data
        .as_ref()
        .and_then(|d| d.get(&key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .ok_or_else(|| Error::SecretKeyMissing {
            field,
            namespace: ns.clone(),
            name: secret.clone(),
            key: key.clone(),
        })?;
    let bad = || Error::BadRedisUrl {
        field,
        namespace: ns.clone(),
        name: secret.clone(),
        key: key.clone(),
    };
    match find_override(&shared.config.endpoint_overrides, &ns, &name) {
        Some(ep) => with_endpoint(url.trim(), ep).ok_or_else(bad),
        None => {
            desired::redis_endpoint_of_url(url.trim()).ok_or_else(bad)?;
            Ok(url.trim().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_the_most_specific_wins() {
        let o: Vec<EndpointOverride> = [
            "*=10.0.0.1:6379",
            "shop/*=127.0.0.1:7000",
            "shop/cart=127.0.0.1:7001",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(find_override(&o, "shop", "cart"), Some("127.0.0.1:7001"));
        assert_eq!(find_override(&o, "shop", "pay"), Some("127.0.0.1:7000"));
        assert_eq!(find_override(&o, "blog", "web"), Some("10.0.0.1:6379"));
        assert_eq!(find_override(&o[1..], "blog", "web"), None);
        for bad in [
            "shop/cart",
            "shop/cart=",
            "/x=h:1",
            "shop/=h:1",
            "a/b=redis://h:1",
            "a/b=host",
        ] {
            assert!(bad.parse::<EndpointOverride>().is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_replaces_only_host_and_port() {
        assert_eq!(
            with_endpoint(
                "redis://:pw@hello-redis.default.svc:6379/0",
                "127.0.0.1:7000"
            )
            .as_deref(),
            Some("redis://:pw@127.0.0.1:7000/0")
        );
        assert_eq!(
            with_endpoint("rediss://u:p@r.example:6380", "127.0.0.1:7000").as_deref(),
            Some("rediss://u:p@127.0.0.1:7000")
        );
        assert_eq!(
            with_endpoint("redis://r:6379/2?protocol=resp3", "h:1").as_deref(),
            Some("redis://h:1/2?protocol=resp3")
        );
        assert_eq!(with_endpoint("http://r:6379", "h:1"), None);
    }

    #[test]
    fn status_patch_holds_only_autoscaler_fields() {
        let owned = Owned {
            desired: Some(6),
            queue_depth: Some(1240),
            last_scale_time: None,
            last_scale_reason: Some("queue 1200 ready, 40 in flight, 0 due → 6 workers".into()),
            condition: Some(condition(None, true, "QueueRead", "ok", Some(2))),
        };
        let p = owned.patch();
        let st = &p["status"];
        assert_eq!(st["workers"], serde_json::json!({"desired": 6}));
        assert_eq!(st["queueDepth"], 1240);
        assert_eq!(st["conditions"][0]["type"], CONDITION);
        assert!(st.get("api").is_none() && st.get("observedGeneration").is_none());
        assert_eq!(p["kind"], "PymService");
        // Round-trips through the typed status (what the CRD schema accepts).
        let typed: crate::crd::PymServiceStatus = serde_json::from_value(st.clone()).unwrap();
        assert_eq!(typed.workers.unwrap().desired, Some(6));
        // Releasing (withAsync off) applies an empty status: SSA drops every
        // field this manager owned.
        assert_eq!(Owned::default().patch()["status"], serde_json::json!({}));
    }

    #[test]
    fn condition_keeps_transition_time_while_status_holds() {
        let a = condition(None, false, "RedisUnreachable", "down", None);
        let b = condition(Some(&a), false, "RedisUnreachable", "still down", None);
        assert_eq!(a.last_transition_time, b.last_transition_time);
        let c = condition(Some(&b), true, "QueueRead", "ok", None);
        assert_eq!(c.status, "True");
    }
}
