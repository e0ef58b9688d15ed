//! The managed Redis Deployment: one `Recreate` replica of the Redis image,
//! its `redis.conf` (the password) mounted from the Secret, `/data` on the
//! PVC (persistence, AOF) or an emptyDir.

use super::super::labels::Component;
use super::super::meta::Ctx;
use super::super::names;
use super::super::pod::{
    ANNOTATION_SECRETS_HASH, deployment, non_empty, restricted_container_security,
    restricted_pod_security,
};
use super::{REDIS_CONF_DIR, REDIS_PORT, REDIS_SECRET_CONF_KEY, REDIS_UID};
use crate::crd::{DEFAULT_REDIS_IMAGE, ManagedRedis, PymServiceSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, KeyToPath, PersistentVolumeClaimVolumeSource,
    PodSpec, Probe, SecretVolumeSource, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The Deployment of the Redis pod; `name` is [`names::redis`].
pub(super) fn redis_deployment(
    ctx: &Ctx,
    spec: &PymServiceSpec,
    m: &ManagedRedis,
    name: &str,
    password: &str,
) -> Deployment {
    let persistent = m.persistence.is_some();
    let container = redis_container(m, redis_args(persistent));
    let volumes = vec![data_volume(ctx, persistent), conf_volume(name)];
    let pod = redis_pod(spec, container, volumes);
    // The password is in the mounted redis.conf; roll Redis when it changes.
    let annotations = BTreeMap::from([(
        ANNOTATION_SECRETS_HASH.to_string(),
        super::super::short_hash(password.as_bytes()),
    )]);
    deployment(
        ctx,
        name.to_string(),
        Component::Redis,
        Some(1),
        pod,
        &annotations,
        true,
    )
}

/// `redis-server` arguments: the mounted `redis.conf` (the password), port,
/// `/data`, and append-only persistence or none at all.
fn redis_args(persistent: bool) -> Vec<String> {
    let mut args = vec![
        format!("{REDIS_CONF_DIR}/{REDIS_SECRET_CONF_KEY}"),
        "--port".to_string(),
        REDIS_PORT.to_string(),
        "--dir".to_string(),
        "/data".to_string(),
        "--protected-mode".to_string(),
        "yes".to_string(),
    ];
    if persistent {
        args.extend(["--appendonly", "yes"].map(String::from));
    } else {
        args.extend(["--appendonly", "no", "--save", ""].map(String::from));
    }
    args
}

/// The `conf` volume: `redis.conf` from the Secret `name`, readable by the
/// Redis group only (the pod's fsGroup).
fn conf_volume(name: &str) -> Volume {
    Volume {
        name: "conf".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(name.to_string()),
            items: Some(vec![KeyToPath {
                key: REDIS_SECRET_CONF_KEY.into(),
                path: REDIS_SECRET_CONF_KEY.into(),
                mode: None,
            }]),
            default_mode: Some(0o440),
            optional: None,
        }),
        ..Default::default()
    }
}

/// The `data` volume: the PVC with persistence, else an emptyDir.
fn data_volume(ctx: &Ctx, persistent: bool) -> Volume {
    Volume {
        name: "data".into(),
        persistent_volume_claim: persistent.then(|| PersistentVolumeClaimVolumeSource {
            claim_name: names::redis_pvc(ctx.name),
            ..Default::default()
        }),
        empty_dir: (!persistent).then(EmptyDirVolumeSource::default),
        ..Default::default()
    }
}

/// The Redis container: TCP probes on `redis`, restricted, `/data` and
/// its `redis.conf` mounted.
fn redis_container(m: &ManagedRedis, args: Vec<String>) -> Container {
    let tcp_probe = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("redis".into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    };
    Container {
        name: "redis".into(),
        image: Some(
            m.image
                .clone()
                .unwrap_or_else(|| DEFAULT_REDIS_IMAGE.into()),
        ),
        args: Some(args),
        ports: Some(vec![ContainerPort {
            name: Some("redis".into()),
            container_port: REDIS_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: m.resources.clone(),
        liveness_probe: Some(tcp_probe.clone()),
        readiness_probe: Some(tcp_probe),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "conf".into(),
                mount_path: REDIS_CONF_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        ..Default::default()
    }
}

/// The Redis pod: no service account token, non-root as the images' redis user.
fn redis_pod(spec: &PymServiceSpec, container: Container, volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        image_pull_secrets: non_empty(spec.image_pull_secrets.clone()),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: non_empty(spec.tolerations.clone()),
        automount_service_account_token: Some(false),
        security_context: Some(restricted_pod_security(REDIS_UID, Some(REDIS_UID))),
        ..Default::default()
    }
}
