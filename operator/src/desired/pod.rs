//! Pods and Deployments: the restricted pod and container security contexts,
//! the `/tmp` scratch volume, HTTP probes, the pod template annotations and
//! the Deployment wrapper every component shares.

use super::labels::Component;
use super::meta::Ctx;
use crate::crd::PymServiceSpec;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Pod template annotation: hash of the rendered pym-config (config change → rollout).
pub const ANNOTATION_CONFIG_HASH: &str = "pym.dev/config-hash";
/// Pod template annotation: hash of the versions of the Secrets the pods read
/// through env (secret change → rollout). Never the secret values.
pub const ANNOTATION_SECRETS_HASH: &str = "pym.dev/secrets-hash";

/// Non-root uid/gid the API and worker containers run as (the pym images'
/// `USER 65532:65532`, the distroless "nonroot" user).
pub const APP_UID: i64 = 65532;

/// Writable scratch space: the root filesystem is read-only.
const TMP_VOLUME: &str = "tmp";

/// Pod template annotations of the API and worker pods: the config hash and
/// the secrets hash.
pub(super) fn pod_annotations(config_hash: String, secrets_hash: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ANNOTATION_CONFIG_HASH.to_string(), config_hash),
        (
            ANNOTATION_SECRETS_HASH.to_string(),
            secrets_hash.to_string(),
        ),
    ])
}

/// Pod of an API or worker container: Pod Security Standards `restricted`
/// (see [`crate::psa`]) with the container's [`restricted_container_security`].
pub(super) fn pod_spec(
    spec: &PymServiceSpec,
    mut container: Container,
    mut volumes: Vec<Volume>,
) -> PodSpec {
    container.security_context = Some(restricted_container_security());
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: TMP_VOLUME.into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        });
    volumes.push(Volume {
        name: TMP_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        image_pull_secrets: non_empty(spec.image_pull_secrets.clone()),
        service_account_name: spec.service_account_name.clone(),
        // No API token in the pods unless the user gave them an identity.
        automount_service_account_token: spec.service_account_name.is_none().then_some(false),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: non_empty(spec.tolerations.clone()),
        security_context: Some(restricted_pod_security(APP_UID, None)),
        ..Default::default()
    }
}

/// Pod-level securityContext of every pod the operator writes: non-root as
/// `uid:uid`, the runtime's default seccomp profile.
pub(super) fn restricted_pod_security(uid: i64, fs_group: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group,
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container securityContext of every container the operator writes: no
/// privilege escalation, no capabilities, a read-only root filesystem. The
/// runtime reads its config from the mounted ConfigMap and writes no file;
/// API and worker pods get an emptyDir on `/tmp` for the service's own
/// scratch files, Redis its `/data` volume.
pub(super) fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

pub(super) fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(port.to_string()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    }
}

pub(super) fn deployment(
    ctx: &Ctx,
    name: String,
    component: Component,
    replicas: Option<i32>,
    pod: PodSpec,
    annotations: &BTreeMap<String, String>,
    recreate: bool,
) -> Deployment {
    Deployment {
        metadata: ctx.meta(name, component),
        spec: Some(DeploymentSpec {
            replicas,
            revision_history_limit: Some(3),
            selector: LabelSelector {
                match_labels: Some(ctx.selector(component)),
                ..Default::default()
            },
            strategy: recreate.then(|| DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(ctx.labels(component)),
                    annotations: (!annotations.is_empty()).then(|| annotations.clone()),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::APP_UID;
    use crate::desired::desired;
    use crate::desired::fixtures::{EXTERNAL, HELLO, MINIMAL, inputs, svc_from_yaml};

    /// Every pod the operator writes is admitted under Pod Security
    /// Admission `enforce=restricted`.
    #[test]
    fn every_pod_meets_the_restricted_profile() {
        for (fixture, yaml) in [
            ("minimal", MINIMAL),
            ("hello", HELLO),
            ("external", EXTERNAL),
        ] {
            let d = desired(&svc_from_yaml(yaml), &inputs()).unwrap();
            let deployments = [Some(&d.api_deployment), d.worker_deployment.as_ref()]
                .into_iter()
                .chain([d.managed_redis.as_ref().map(|r| &r.deployment)])
                .flatten();
            for dep in deployments {
                let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
                let v = crate::psa::restricted_violations(pod);
                let name = dep.metadata.name.as_deref().unwrap();
                assert!(v.is_empty(), "{fixture}: {name}: {v:?}");
            }
        }
    }

    #[test]
    fn api_and_worker_run_as_the_image_user_on_a_read_only_root() {
        let d = desired(&svc_from_yaml(HELLO), &inputs()).unwrap();
        for dep in [&d.api_deployment, d.worker_deployment.as_ref().unwrap()] {
            let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            let psc = pod.security_context.as_ref().unwrap();
            assert_eq!(psc.run_as_user, Some(APP_UID));
            assert_eq!(psc.run_as_group, Some(APP_UID));
            let c = &pod.containers[0];
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            let mounts = c.volume_mounts.as_ref().unwrap();
            assert!(mounts.iter().any(|m| m.mount_path == "/tmp"), "{mounts:?}");
        }
    }

    /// No ServiceAccount token is mounted into API and worker pods unless
    /// the PymService names a ServiceAccount (then the user decides, with
    /// the ServiceAccount's own `automountServiceAccountToken`).
    #[test]
    fn no_api_token_without_a_service_account() {
        // (fixture, serviceAccountName set)
        for (yaml, with_sa) in [(HELLO, false), (MINIMAL, false), (EXTERNAL, true)] {
            let d = desired(&svc_from_yaml(yaml), &inputs()).unwrap();
            let deps = [Some(&d.api_deployment), d.worker_deployment.as_ref()];
            for dep in deps.into_iter().flatten() {
                let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
                let want = (!with_sa).then_some(false);
                assert_eq!(pod.automount_service_account_token, want, "{yaml}");
                assert_eq!(pod.service_account_name.is_some(), with_sa, "{yaml}");
            }
        }
    }
}
