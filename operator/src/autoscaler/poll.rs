//! The I/O shell of one autoscaled service: every `pollIntervalSeconds`,
//! read the queue statistics, ask [`scale::recommend`], before a scale-down
//! mark the idle worker pods ([`deletion_cost`]), patch the worker
//! Deployment's `/scale`, and write what [`next_status`] returns (status by
//! server-side apply, then the Events, so a reader of an Event finds the
//! status up to date).

use super::deletion_cost::{self, WorkerPod};
use super::scale::{self, Decision, Policy, Sample, ScaleState, Workers};
use super::status::{CONDITION, Notice, Poll, next_status, should_write};
use super::{FIELD_MANAGER, Shared};
use crate::crd::{AutoscalerStatus, PymService};
use crate::desired::names;
use crate::error::{Error, Result};
use crate::metrics::ServiceLabels;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// A patched replica count is trusted over a lagging watch for this long.
const PATCH_TRUST: Duration = Duration::from_secs(5);

/// Per-service memory of the polling task.
struct ServiceState {
    scale: ScaleState,
    /// What the status should hold (kept across failed writes).
    wanted: AutoscalerStatus,
    /// What was last written successfully.
    written: AutoscalerStatus,
    last_status_write: Option<Instant>,
    /// Redis URL (from the Secret) and when it was read.
    url: super::redis::CachedUrl,
    /// Replicas this task patched, and when (the watch may lag behind).
    patched: Option<(u32, Instant)>,
}

/// Polls `key` until it is gone or no longer autoscaled.
pub(super) async fn poll_loop(shared: std::sync::Arc<Shared>, key: ObjectRef<PymService>) {
    let Some(first) = shared.services.get(&key) else {
        return;
    };
    let owned = AutoscalerStatus::of(&first.status.clone().unwrap_or_default(), CONDITION);
    let mut st = ServiceState {
        scale: ScaleState::default(),
        wanted: owned.clone(),
        written: owned,
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

/// The replica count to scale from: the watched `spec.replicas`, unless this
/// task patched another count less than [`PATCH_TRUST`] ago (the watch lags
/// behind the patch). Also says whether that patch is still trusted.
fn current_replicas(observed: u32, patched: Option<(u32, Duration)>) -> (u32, bool) {
    match patched {
        Some((n, age)) if n != observed && age < PATCH_TRUST => (n, true),
        _ => (observed, false),
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
    let (current, trusted) = current_replicas(
        u32::try_from(observed).unwrap_or(0),
        st.patched.map(|(n, at)| (n, at.elapsed())),
    );
    if !trusted {
        st.patched = None;
    }
    let ready = dep.status.as_ref().and_then(|s| s.ready_replicas);
    let workers = Workers {
        current,
        ready: ready.and_then(|r| u32::try_from(r).ok()).unwrap_or(0),
    };

    let read_at = Instant::now();
    let stats = shared.stats.read(svc, queues, &mut st.url).await;
    let read_ms = read_at.elapsed().as_millis() as u64;
    let decision = scale::recommend(policy, stats.as_ref().ok(), workers, &mut st.scale);
    record_metrics(shared, svc, current, stats.as_ref().ok(), &decision);
    let mut scaled = false;
    if decision.changes(current) {
        if decision.replicas < current
            && let Some((url, _)) = &st.url
        {
            mark_deletion_costs(shared, svc, &dep, url).await;
        }
        scaled = scale_to(shared, svc, &wname, current, &decision).await;
        if scaled {
            st.patched = Some((decision.replicas, Instant::now()));
        }
        debug!(
            pymservice = %name, namespace = %ns,
            read_ms, read_to_patched_ms = read_at.elapsed().as_millis() as u64,
            "scale latency inside the operator"
        );
    }
    let poll = Poll {
        current,
        stats: stats.as_ref(),
        decision: &decision,
        scaled,
        generation: svc.metadata.generation,
        poll_interval_ms: policy.poll_interval_ms,
    };
    let (next, notices) = next_status(&st.wanted, &poll, &now());
    log_readability(svc, &st.wanted, stats.as_ref().err(), &notices);
    st.wanted = next.clone();
    let since = st.last_status_write.map(|t| t.elapsed());
    if should_write(&st.written, &next, since) {
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
    for n in &notices {
        publish(shared, svc, n).await;
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn record_metrics(
    shared: &Shared,
    svc: &PymService,
    current: u32,
    sample: Option<&Sample>,
    decision: &Decision,
) {
    let key = ServiceLabels {
        namespace: svc.namespace().unwrap_or_default(),
        name: svc.name_any(),
    };
    let m = &shared.metrics;
    m.workers_current
        .get_or_create(&key)
        .set(i64::from(current));
    if let Some(s) = sample {
        let depth = i64::try_from(s.work()).unwrap_or(i64::MAX);
        m.queue_depth.get_or_create(&key).set(depth);
        m.workers_desired
            .get_or_create(&key)
            .set(i64::from(decision.recommended));
    }
}

/// Logs when the queue statistics become unreadable or readable again.
fn log_readability(
    svc: &PymService,
    prev: &AutoscalerStatus,
    error: Option<&Error>,
    notices: &[Notice],
) {
    let (name, ns) = (svc.name_any(), svc.namespace().unwrap_or_default());
    match error {
        Some(e) if notices.iter().any(|n| n.warning) => {
            warn!(pymservice = %name, namespace = %ns, error = %e, detail = e.detail().unwrap_or_default(), "cannot read queue statistics");
        }
        None if prev
            .condition(CONDITION)
            .is_some_and(|c| c.status != "True") =>
        {
            info!(pymservice = %name, namespace = %ns, "queue statistics readable again");
        }
        _ => {}
    }
}

/// Before a scale-down: each worker pod's deletion cost set to the tasks it
/// holds (see [`deletion_cost`]), so the ReplicaSet deletes idle pods
/// first. Best effort: on any failure the scale-down goes ahead as before.
async fn mark_deletion_costs(shared: &Shared, svc: &PymService, dep: &Deployment, url: &str) {
    let ns = svc.namespace().unwrap_or_default();
    let selector = dep
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        });
    let Some(selector) = selector else { return };
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let listed = match pods
        .list_metadata(&ListParams::default().labels(&selector))
        .await
    {
        Ok(l) => l,
        Err(e) => {
            warn!(pymservice = %svc.name_any(), namespace = %ns, error = %e, "cannot list worker pods to mark the idle ones");
            return;
        }
    };
    let live = match shared.stats.live_workers(url).await {
        Ok(l) => l,
        Err(e) => {
            warn!(pymservice = %svc.name_any(), namespace = %ns, error = %e, "cannot read the worker registry to mark the idle pods");
            return;
        }
    };
    let worker_pods: Vec<WorkerPod> = listed
        .items
        .iter()
        .map(|p| WorkerPod {
            name: p.name_any(),
            cost: p.annotations().get(deletion_cost::ANNOTATION).cloned(),
        })
        .collect();
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    for (pod, cost) in deletion_cost::changes(&worker_pods, &live) {
        let patch = serde_json::json!({
            "metadata": { "annotations": { deletion_cost::ANNOTATION: cost.to_string() } }
        });
        if let Err(e) = pods.patch_metadata(&pod, &pp, &Patch::Merge(&patch)).await {
            warn!(pymservice = %svc.name_any(), namespace = %ns, pod, error = %e, "cannot set the pod deletion cost");
        }
    }
}

/// Patches the worker Deployment's `/scale` to `decision.replicas`; true if it went through.
async fn scale_to(
    shared: &Shared,
    svc: &PymService,
    wname: &str,
    current: u32,
    decision: &Decision,
) -> bool {
    let ns = svc.namespace().unwrap_or_default();
    let deps: Api<Deployment> = Api::namespaced(shared.client.clone(), &ns);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let patch = serde_json::json!({ "spec": { "replicas": decision.replicas } });
    match deps.patch_scale(wname, &pp, &Patch::Merge(&patch)).await {
        Ok(_) => {
            info!(
                pymservice = %svc.name_any(), namespace = %ns, from = current, to = decision.replicas,
                reason = %decision.reason, "scaled workers"
            );
            true
        }
        Err(e) => {
            warn!(pymservice = %svc.name_any(), namespace = %ns, error = %e, "cannot scale the worker Deployment");
            false
        }
    }
}

async fn publish(shared: &Shared, svc: &PymService, n: &Notice) {
    let ev = Event {
        type_: if n.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: n.reason.clone(),
        note: Some(n.note.clone()),
        action: n.action.into(),
        secondary: None,
    };
    if let Err(e) = shared.recorder.publish(&ev, &svc.object_ref(&())).await {
        debug!(pymservice = %svc.name_any(), error = %e, "cannot publish event");
    }
}

/// Applies `status` as the autoscaler's part of the PymService status
/// (server-side apply under [`FIELD_MANAGER`]; an empty status releases
/// every field it owned).
pub(super) async fn write_status(
    shared: &Shared,
    ns: &str,
    name: &str,
    status: &AutoscalerStatus,
) -> Result<()> {
    let api: Api<PymService> = Api::namespaced(shared.client.clone(), ns);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &pp, &Patch::Apply(&apply_body(status)))
        .await?;
    Ok(())
}

/// The server-side apply body of the autoscaler's status.
fn apply_body(status: &AutoscalerStatus) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": PymService::api_version(&()),
        "kind": PymService::kind(&()),
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AutoscalerWorkers;

    #[test]
    fn current_replicas_trusts_a_fresh_patch_over_the_watch() {
        let s = Duration::from_secs;
        let rows = [
            ("nothing patched", 3, None, (3, false)),
            ("watch lags a fresh patch", 3, Some((5, s(1))), (5, true)),
            ("watch caught up", 5, Some((5, s(1))), (5, false)),
            (
                "patch too old: the watch wins",
                3,
                Some((5, s(5))),
                (3, false),
            ),
        ];
        for (name, observed, patched, want) in rows {
            assert_eq!(current_replicas(observed, patched), want, "{name}");
        }
    }

    #[test]
    fn apply_body_holds_only_autoscaler_fields() {
        let status = AutoscalerStatus {
            workers: Some(AutoscalerWorkers { desired: 6 }),
            queue_depth: Some(1240),
            ..AutoscalerStatus::default()
        };
        let p = apply_body(&status);
        assert_eq!(p["kind"], "PymService");
        assert_eq!(p["apiVersion"], "pym.dev/v1alpha1");
        assert_eq!(
            p["status"],
            serde_json::json!({"workers": {"desired": 6}, "queueDepth": 1240})
        );
        assert_eq!(
            apply_body(&AutoscalerStatus::default())["status"],
            serde_json::json!({})
        );
    }
}
