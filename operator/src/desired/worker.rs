//! The worker Deployment (without `spec.replicas`) and the worker replica
//! policy: when the operator itself sets the count (see the module doc of
//! [`super`]).

use super::config_map::config_volume;
use super::env::{merge_env, plain_env};
use super::labels::Component;
use super::meta::Ctx;
use super::names;
use super::pod::{deployment, http_probe, non_empty, pod_spec};
use crate::crd::{PymServiceSpec, WorkersSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector,
};
use pym_core::contract;
use std::collections::BTreeMap;

pub(super) fn worker_deployment(
    ctx: &Ctx,
    spec: &PymServiceSpec,
    w: &WorkersSpec,
    mut ours: Vec<EnvVar>,
    annotations: &BTreeMap<String, String>,
) -> Deployment {
    ours.extend([
        plain_env(
            contract::ENV_WORKER_PORT,
            contract::DEFAULT_WORKER_PORT.to_string(),
        ),
        plain_env(contract::ENV_WORKER_CONCURRENCY, w.concurrency.to_string()),
        plain_env(contract::ENV_WORKER_QUEUES, w.queues.join(",")),
        EnvVar {
            name: contract::ENV_WORKER_NAME.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]);
    ours.extend(super::schedules::schedules_env(w));
    let env = merge_env(ours, &[&spec.env, &w.env]);
    let (vol, mount) = config_volume(ctx);
    let container = Container {
        name: Component::Worker.as_str().into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(vec![contract::CMD_WORKER.to_string()]),
        env: Some(env),
        env_from: non_empty([spec.env_from.clone(), w.env_from.clone()].concat()),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: i32::from(contract::DEFAULT_WORKER_PORT),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: w.resources.clone(),
        liveness_probe: Some(http_probe(contract::PATH_HEALTHZ, "metrics")),
        readiness_probe: Some(http_probe(contract::PATH_READYZ, "metrics")),
        volume_mounts: Some(vec![mount]),
        ..Default::default()
    };
    let mut pod = pod_spec(spec, container, vec![vol]);
    // Leave time for in-flight tasks to finish on scale-down / rollout.
    pod.termination_grace_period_seconds = Some(60);
    deployment(
        ctx,
        names::worker_deployment(ctx.name),
        Component::Worker,
        None,
        pod,
        annotations,
        false,
    )
}

/// What the worker replica count should be set to by the operator, if anything.
///
/// `current` is the worker Deployment's `spec.replicas` (None: it does not
/// exist yet). At creation the count is `minReplicas`. Afterwards the count
/// has one owner: with the autoscaler running (`autoscaler`), the autoscaler
/// alone, which keeps it inside `[min, max]` itself, so this returns None;
/// without it, this moves the count back inside `[min, max]` when the spec
/// bounds move, and leaves it alone inside them (a user's `kubectl scale`).
pub fn worker_replicas(
    current: Option<i32>,
    workers: &WorkersSpec,
    autoscaler: bool,
) -> Option<i32> {
    let (min, max) = (
        workers.min_replicas,
        workers.max_replicas.max(workers.min_replicas),
    );
    match current {
        None => Some(min),
        Some(_) if autoscaler => None,
        Some(c) if c < min => Some(min),
        Some(c) if c > max => Some(max),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::worker_replicas;
    use crate::crd::WorkersSpec;
    use crate::desired::desired;
    use crate::desired::fixtures::{HELLO, inputs, svc_from_yaml};

    #[test]
    fn with_async_off_drops_worker_even_if_workers_given() {
        let mut svc = svc_from_yaml(HELLO);
        svc.spec.with_async = false;
        let d = desired(&svc, &inputs()).unwrap();
        assert!(d.worker_deployment.is_none());
    }

    #[test]
    fn worker_deployment_never_sets_replicas() {
        let d = desired(&svc_from_yaml(HELLO), &inputs()).unwrap();
        let w = d.worker_deployment.unwrap();
        assert_eq!(w.spec.unwrap().replicas, None);
    }

    #[test]
    fn worker_replicas_policy() {
        let w = WorkersSpec {
            min_replicas: 2,
            max_replicas: 5,
            ..Default::default()
        };
        // (current replicas, autoscaler running, what the operator sets)
        let rows = [
            (None, false, Some(2)),    // creation: minReplicas
            (None, true, Some(2)),     // creation, even with the autoscaler
            (Some(0), false, Some(2)), // below the bounds
            (Some(9), false, Some(5)), // above the bounds
            (Some(3), false, None),    // inside: a user's scale stays
            (Some(2), false, None),
            (Some(5), false, None),
            (Some(0), true, None), // the autoscaler's count, whatever it is
            (Some(9), true, None),
            (Some(3), true, None),
        ];
        for (current, autoscaler, want) in rows {
            assert_eq!(
                worker_replicas(current, &w, autoscaler),
                want,
                "current {current:?}, autoscaler {autoscaler}"
            );
        }
    }
}
