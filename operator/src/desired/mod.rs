//! Pure: `PymService` spec (+ a few resolved inputs) → the objects that
//! should exist. No I/O here; `reconcile` applies what this returns.
//!
//! Worker replicas: the worker Deployment is applied **without**
//! `spec.replicas` by the main field manager, so the autoscaler (issue #7,
//! writing the Deployment's `/scale` subresource under its own field manager)
//! owns the count. [`worker_replicas`] only decides when the operator itself
//! must set the count: at creation (to `minReplicas`) and to clamp it back
//! into `[minReplicas, maxReplicas]` when the spec bounds move. That write
//! goes through a second field manager ([`REPLICAS_FIELD_MANAGER`]) so that
//! the main apply never owns, and therefore never resets, `spec.replicas`.

use crate::crd::{
    DEFAULT_REDIS_IMAGE, ManagedRedis, PymService, PymServiceSpec, SecretKeyRef, WorkersSpec,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use pym_core::contract;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Field manager of every server-side apply the reconciler does.
pub const FIELD_MANAGER: &str = "pym-operator";
/// Field manager that sets worker replicas at creation / when out of bounds.
pub const REPLICAS_FIELD_MANAGER: &str = "pym-operator-replicas";

/// Label values and keys (`app.kubernetes.io/*`).
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/managed-by` value; the operator watches children by it.
pub const MANAGED_BY: &str = "pym-operator";

/// Pod template annotation: hash of the rendered pym-config (config change → rollout).
pub const ANNOTATION_CONFIG_HASH: &str = "pym.dev/config-hash";
/// Pod template annotation: hash of the versions of the Secrets the pods read
/// through env (secret change → rollout). Never the secret values.
pub const ANNOTATION_SECRETS_HASH: &str = "pym.dev/secrets-hash";

/// Redis port (managed Redis).
pub const REDIS_PORT: i32 = 6379;
/// Keys of the managed Redis Secret.
pub const REDIS_SECRET_PASSWORD_KEY: &str = "password";
pub const REDIS_SECRET_URL_KEY: &str = "url";
/// Env var of the Redis container that carries `requirepass`.
const REDIS_PASSWORD_ENV: &str = "REDIS_PASSWORD";
/// Non-root uid/gid of the official Redis images.
const REDIS_UID: i64 = 999;
/// Key of the generated task Secret ([`names::task_secret`]).
pub const TASK_SECRET_KEY: &str = "secret";
/// Non-root uid/gid the API and worker containers run as (the pym images'
/// `USER 65532:65532`, the distroless "nonroot" user).
pub const APP_UID: i64 = 65532;

/// Components, used in labels and names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Api,
    Worker,
    Redis,
    Config,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::Worker => "worker",
            Component::Redis => "redis",
            Component::Config => "config",
        }
    }
}

/// Child object names, one function per object, so deletes and applies agree.
pub mod names {
    pub fn config_map(svc: &str) -> String {
        format!("{svc}-config")
    }
    pub fn api_deployment(svc: &str) -> String {
        format!("{svc}-api")
    }
    /// The API Service is named after the PymService: clients call `http://<name>`.
    pub fn api_service(svc: &str) -> String {
        svc.to_string()
    }
    pub fn worker_deployment(svc: &str) -> String {
        format!("{svc}-worker")
    }
    pub fn redis(svc: &str) -> String {
        format!("{svc}-redis")
    }
    pub fn redis_pvc(svc: &str) -> String {
        format!("{svc}-redis-data")
    }
    /// The task secret the operator generates when `taskSecretRef` is unset.
    pub fn task_secret(svc: &str) -> String {
        format!("{svc}-pym-task")
    }
}

/// Label every namespace carries with its own name (set by the apiserver).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The operator's own pods. The autoscaler runs inside them and reads queue
/// statistics from each managed Redis through its Service, so the Redis
/// NetworkPolicy admits them next to the service's own pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPods {
    /// The operator's namespace (`$POD_NAMESPACE`).
    pub namespace: String,
    /// Labels that select the operator's pods (the chart's selector labels).
    pub labels: BTreeMap<String, String>,
}

impl OperatorPods {
    /// `None` when there is nothing to select: no labels (an empty selector
    /// would admit every pod of the namespace) or no namespace.
    pub fn new(namespace: &str, labels: BTreeMap<String, String>) -> Option<Self> {
        (!namespace.is_empty() && !labels.is_empty()).then(|| OperatorPods {
            namespace: namespace.to_string(),
            labels,
        })
    }
}

/// Parses `key=value,key=value` (e.g. `--operator-pod-labels`) into labels,
/// each key and value checked against the Kubernetes label syntax, so a typo
/// fails at start and not on every NetworkPolicy apply. Blank: no labels.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if !is_label_key(k) {
            return Err(format!(
                "{k:?} is not a label key ([prefix/]name, name 1-63 of [A-Za-z0-9_.-] \
                 starting and ending alphanumeric, prefix a DNS subdomain)"
            ));
        }
        if !(v.is_empty() || is_label_name(v)) {
            return Err(format!(
                "{v:?} (label {k}) is not a label value (0-63 of [A-Za-z0-9_.-] \
                 starting and ending alphanumeric)"
            ));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("label {k} is given twice"));
        }
    }
    Ok(out)
}

/// The name part of a label key, or a non-empty label value.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        None => is_label_name(s),
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
    }
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated labels of
/// lowercase alphanumerics and '-', each starting and ending alphanumeric.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            (1..=63).contains(&b.len())
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Values the reconciler resolves (I/O) before calling [`desired`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    /// Managed Redis password: the one already in the Secret, or a new one.
    pub redis_password: Option<String>,
    /// Generated task secret (`withAsync` without `taskSecretRef`): the one
    /// already in the Secret, or a new one.
    pub task_secret: Option<String>,
    /// Hash over the versions of referenced Secrets (see [`secrets_hash`]).
    pub secrets_hash: String,
    /// The operator's pods, admitted to the managed Redis (the autoscaler's
    /// reads). None when the operator runs outside the cluster or without
    /// the autoscaler.
    pub operator_pods: Option<OperatorPods>,
}

/// The managed Redis objects.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedRedisObjects {
    pub secret: Secret,
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: NetworkPolicy,
    pub pvc: Option<PersistentVolumeClaim>,
}

/// Everything that should exist for one PymService.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub config_map: ConfigMap,
    pub api_deployment: Deployment,
    pub api_service: Service,
    /// Worker Deployment without `spec.replicas` (see the module doc).
    pub worker_deployment: Option<Deployment>,
    pub managed_redis: Option<ManagedRedisObjects>,
    /// The generated task Secret (`withAsync` without `taskSecretRef`). Never
    /// deleted by the operator: it goes with the PymService (owner reference),
    /// so turning `withAsync` off and on again keeps the key.
    pub task_secret: Option<Secret>,
    /// `host:port` of the Redis in use (managed only; external is parsed from the URL).
    pub redis_endpoint: Option<String>,
}

/// Errors of the pure step (a spec the schema let through but that cannot be built).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DesiredError {
    #[error("metadata.{0} is missing (the object was not read from the apiserver)")]
    MissingMetadata(&'static str),
    #[error("spec.config cannot be rendered as YAML: {0}")]
    Config(String),
    #[error("managed Redis needs a password input (reconciler bug)")]
    MissingRedisPassword,
    #[error("withAsync needs a task secret input (reconciler bug)")]
    MissingTaskSecret,
    #[error(
        "spec.config.{key} is {value}: the pods would read that variable and ignore {var}, \
         which the operator sets; remove {key} from spec.config"
    )]
    RenamesInjectedEnv {
        key: &'static str,
        value: String,
        var: &'static str,
    },
}

/// spec → desired objects.
pub fn desired(svc: &PymService, inputs: &Inputs) -> Result<Desired, DesiredError> {
    let name = svc
        .metadata
        .name
        .clone()
        .ok_or(DesiredError::MissingMetadata("name"))?;
    let ns = svc
        .metadata
        .namespace
        .clone()
        .ok_or(DesiredError::MissingMetadata("namespace"))?;
    let owner = owner_reference(svc)?;
    let spec = &svc.spec;
    let ctx = Ctx {
        name: &name,
        ns: &ns,
        owner: &owner,
    };

    let redis_url = redis_url_source(spec, &name);
    let task_secret = task_secret_source(spec, &name);
    let env = common_env(spec, redis_url.as_ref(), task_secret.as_ref());
    check_config(spec, &env)?;
    let config_yaml = render_config(spec)?;
    let config_hash = short_hash(config_yaml.as_bytes());
    let config_map = ConfigMap {
        metadata: ctx.meta(names::config_map(&name), Component::Config),
        data: Some(BTreeMap::from([(
            contract::CONFIG_FILE_NAME.to_string(),
            config_yaml,
        )])),
        ..Default::default()
    };

    let pod_annotations = BTreeMap::from([
        (ANNOTATION_CONFIG_HASH.to_string(), config_hash),
        (
            ANNOTATION_SECRETS_HASH.to_string(),
            inputs.secrets_hash.clone(),
        ),
    ]);

    let api_deployment = api_deployment(&ctx, spec, env.clone(), &pod_annotations);
    let api_service = Service {
        metadata: ctx.meta(names::api_service(&name), Component::Api),
        spec: Some(ServiceSpec {
            selector: Some(ctx.selector(Component::Api)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: spec.api.port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };

    let worker_deployment = spec
        .effective_workers()
        .map(|w| worker_deployment(&ctx, spec, &w, env, &pod_annotations));

    let task_secret = match (spec.with_async, &spec.task_secret_ref) {
        (true, None) => {
            let value = inputs
                .task_secret
                .as_deref()
                .ok_or(DesiredError::MissingTaskSecret)?;
            Some(Secret {
                metadata: ctx.meta(names::task_secret(&name), Component::Config),
                type_: Some("Opaque".into()),
                data: Some(BTreeMap::from([(
                    TASK_SECRET_KEY.to_string(),
                    ByteString(value.as_bytes().to_vec()),
                )])),
                ..Default::default()
            })
        }
        _ => None,
    };

    let managed = spec.redis.as_ref().and_then(|r| r.managed.as_ref());
    let (managed_redis, redis_endpoint) = match managed {
        Some(m) => {
            let password = inputs
                .redis_password
                .as_deref()
                .ok_or(DesiredError::MissingRedisPassword)?;
            (
                Some(managed_redis(
                    &ctx,
                    spec,
                    m,
                    password,
                    inputs.operator_pods.as_ref(),
                )),
                Some(managed_redis_endpoint(&name, &ns)),
            )
        }
        None => (None, None),
    };

    Ok(Desired {
        config_map,
        api_deployment,
        api_service,
        worker_deployment,
        managed_redis,
        task_secret,
        redis_endpoint,
    })
}

/// What the worker replica count should be set to by the operator, if anything.
///
/// `current` is the worker Deployment's `spec.replicas` (None: it does not exist yet).
/// Inside `[min, max]` the count belongs to the autoscaler and this returns None.
pub fn worker_replicas(current: Option<i32>, workers: &WorkersSpec) -> Option<i32> {
    let (min, max) = (
        workers.min_replicas,
        workers.max_replicas.max(workers.min_replicas),
    );
    match current {
        None => Some(min),
        Some(c) if c < min => Some(min),
        Some(c) if c > max => Some(max),
        Some(_) => None,
    }
}

/// Hash over the versions of the Secrets a pod reads through env, so a
/// Secret edit rolls the pods. Inputs are (what, resourceVersion) pairs and
/// the managed Redis password hash — never a secret value in clear.
pub fn secrets_hash(parts: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// First 16 hex chars of SHA-256.
pub fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// `host:port` of a Redis URL, without scheme, credentials, db or query.
pub fn redis_endpoint_of_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.is_empty() {
        return None;
    }
    Some(if host_port.contains(':') && !host_port.ends_with(']') {
        host_port.to_string()
    } else {
        format!("{host_port}:6379")
    })
}

/// The in-cluster URL of a managed Redis (with its password).
pub fn managed_redis_url(svc: &str, ns: &str, password: &str) -> String {
    format!("redis://:{password}@{}/0", managed_redis_endpoint(svc, ns))
}

fn managed_redis_endpoint(svc: &str, ns: &str) -> String {
    format!("{}.{ns}.svc:{REDIS_PORT}", names::redis(svc))
}

/// The pym-config rendered as YAML. `with_async` is filled in from
/// `spec.withAsync` when the config does not set it.
pub fn render_config(spec: &PymServiceSpec) -> Result<String, DesiredError> {
    let mut cfg = match &spec.config {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => return Err(DesiredError::Config("it must be an object".into())),
    };
    cfg.entry(contract::CONFIG_WITH_ASYNC)
        .or_insert(serde_json::Value::Bool(spec.with_async));
    yaml_serde::to_string(&cfg).map_err(|e| DesiredError::Config(e.to_string()))
}

/// Refuses a `spec.config` that renames a variable the operator sets in the
/// pods (`ours`: the operator's env), e.g. `jwt_secret_env: OTHER` while
/// `PYM_JWT_SECRET` comes from `jwtSecretRef`: the runtime would read
/// `$OTHER` and ignore ours. The keys are the runtime's
/// ([`contract::CONFIG_KEYS_RENAMING_ENV`]). Setting a key to the very
/// variable it defaults to, or renaming one the operator does not set, is fine.
pub fn check_config(spec: &PymServiceSpec, ours: &[EnvVar]) -> Result<(), DesiredError> {
    let Some(serde_json::Value::Object(cfg)) = &spec.config else {
        return Ok(());
    };
    for &(key, var) in contract::CONFIG_KEYS_RENAMING_ENV {
        let Some(v) = cfg.get(key) else { continue };
        if v.as_str() != Some(var) && ours.iter().any(|e| e.name == var) {
            return Err(DesiredError::RenamesInjectedEnv {
                key,
                value: v.to_string(),
                var,
            });
        }
    }
    Ok(())
}

fn owner_reference(svc: &PymService) -> Result<OwnerReference, DesiredError> {
    let mut o = svc
        .controller_owner_ref(&())
        .ok_or(DesiredError::MissingMetadata("uid"))?;
    o.block_owner_deletion = Some(true);
    Ok(o)
}

struct Ctx<'a> {
    name: &'a str,
    ns: &'a str,
    owner: &'a OwnerReference,
}

impl Ctx<'_> {
    fn labels(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_NAME.to_string(), self.name.to_string()),
            (LABEL_INSTANCE.to_string(), self.name.to_string()),
            (LABEL_COMPONENT.to_string(), component.as_str().to_string()),
            (LABEL_PART_OF.to_string(), "pym".to_string()),
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        ])
    }

    /// Selector labels: a subset of [`Ctx::labels`] that never changes
    /// (Deployment selectors are immutable).
    fn selector(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_INSTANCE.to_string(), self.name.to_string()),
            (LABEL_COMPONENT.to_string(), component.as_str().to_string()),
        ])
    }

    fn meta(&self, name: String, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.ns.to_string()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }
}

fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn plain_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// Where pods read `PYM_REDIS_URL` from: the managed Secret or the user's.
fn redis_url_source(spec: &PymServiceSpec, svc: &str) -> Option<SecretKeyRef> {
    let redis = spec.redis.as_ref()?;
    if redis.managed.is_some() {
        Some(SecretKeyRef {
            name: names::redis(svc),
            key: REDIS_SECRET_URL_KEY.to_string(),
        })
    } else {
        redis.external.as_ref().map(|e| e.url_secret_ref.clone())
    }
}

/// Where pods read `PYM_TASK_SECRET` from (`withAsync` only): the user's
/// `taskSecretRef`, else the Secret the operator generates.
fn task_secret_source(spec: &PymServiceSpec, svc: &str) -> Option<SecretKeyRef> {
    if !spec.with_async {
        return None;
    }
    Some(
        spec.task_secret_ref
            .clone()
            .unwrap_or_else(|| SecretKeyRef {
                name: names::task_secret(svc),
                key: TASK_SECRET_KEY.to_string(),
            }),
    )
}

/// The operator's env first, then the user's: a user entry with the same
/// name replaces ours in place (duplicate names would break server-side apply).
fn merge_env(ours: Vec<EnvVar>, user: &[&[EnvVar]]) -> Vec<EnvVar> {
    let mut out = ours;
    for list in user {
        for e in list.iter() {
            match out.iter_mut().find(|o| o.name == e.name) {
                Some(slot) => *slot = e.clone(),
                None => out.push(e.clone()),
            }
        }
    }
    out
}

/// The env the operator sets in API and worker containers (before the
/// per-component variables and the user's).
fn common_env(
    spec: &PymServiceSpec,
    redis_url: Option<&SecretKeyRef>,
    task_secret: Option<&SecretKeyRef>,
) -> Vec<EnvVar> {
    let mut env = vec![plain_env(
        contract::ENV_CONFIG,
        contract::config_mount_path(),
    )];
    if let Some(r) = redis_url {
        env.push(secret_env(contract::ENV_REDIS_URL, r));
    }
    if let Some(j) = &spec.jwt_secret_ref {
        env.push(secret_env(contract::ENV_JWT_SECRET, j));
    }
    if let Some(t) = task_secret {
        env.push(secret_env(contract::ENV_TASK_SECRET, t));
    }
    env.push(plain_env(contract::ENV_LOG_FORMAT, "json"));
    env
}

const CONFIG_VOLUME: &str = "pym-config";
/// Writable scratch space: the root filesystem is read-only.
const TMP_VOLUME: &str = "tmp";

/// Pod of an API or worker container: Pod Security Standards `restricted`
/// (see [`crate::psa`]) with the container's [`restricted_container_security`].
fn pod_spec(spec: &PymServiceSpec, mut container: Container, mut volumes: Vec<Volume>) -> PodSpec {
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
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: non_empty(spec.tolerations.clone()),
        security_context: Some(restricted_pod_security(APP_UID, None)),
        ..Default::default()
    }
}

/// Pod-level securityContext of every pod the operator writes: non-root as
/// `uid:uid`, the runtime's default seccomp profile.
fn restricted_pod_security(uid: i64, fs_group: Option<i64>) -> PodSecurityContext {
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
fn restricted_container_security() -> SecurityContext {
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

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn config_volume(ctx: &Ctx) -> (Volume, VolumeMount) {
    (
        Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(ctx.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            name: CONFIG_VOLUME.into(),
            mount_path: contract::CONFIG_MOUNT_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    )
}

fn http_probe(path: &str, port: &str) -> Probe {
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

fn deployment(
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

fn api_deployment(
    ctx: &Ctx,
    spec: &PymServiceSpec,
    mut ours: Vec<EnvVar>,
    annotations: &BTreeMap<String, String>,
) -> Deployment {
    let api = &spec.api;
    ours.push(plain_env(contract::ENV_PORT, api.port.to_string()));
    let env = merge_env(ours, &[&spec.env, &api.env]);
    let (vol, mount) = config_volume(ctx);
    let probes = api.probes.clone().unwrap_or(crate::crd::ProbesSpec {
        liveness: None,
        readiness: None,
        startup: None,
    });
    let container = Container {
        name: Component::Api.as_str().into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(vec![contract::CMD_SERVE.to_string()]),
        env: Some(env),
        env_from: non_empty([spec.env_from.clone(), api.env_from.clone()].concat()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: api.port,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: api.resources.clone(),
        liveness_probe: Some(
            probes
                .liveness
                .unwrap_or_else(|| http_probe(contract::PATH_HEALTHZ, "http")),
        ),
        readiness_probe: Some(
            probes
                .readiness
                .unwrap_or_else(|| http_probe(contract::PATH_READYZ, "http")),
        ),
        startup_probe: probes.startup,
        volume_mounts: Some(vec![mount]),
        ..Default::default()
    };
    deployment(
        ctx,
        names::api_deployment(ctx.name),
        Component::Api,
        Some(api.replicas),
        pod_spec(spec, container, vec![vol]),
        annotations,
        false,
    )
}

fn worker_deployment(
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

fn managed_redis(
    ctx: &Ctx,
    spec: &PymServiceSpec,
    m: &ManagedRedis,
    password: &str,
    operator: Option<&OperatorPods>,
) -> ManagedRedisObjects {
    let name = names::redis(ctx.name);
    let secret = Secret {
        metadata: ctx.meta(name.clone(), Component::Redis),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                REDIS_SECRET_PASSWORD_KEY.to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
            (
                REDIS_SECRET_URL_KEY.to_string(),
                ByteString(managed_redis_url(ctx.name, ctx.ns, password).into_bytes()),
            ),
        ])),
        ..Default::default()
    };

    let persistent = m.persistence.is_some();
    let mut args = vec![
        "--port".to_string(),
        REDIS_PORT.to_string(),
        "--requirepass".to_string(),
        format!("$({REDIS_PASSWORD_ENV})"),
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
    let data_volume = Volume {
        name: "data".into(),
        persistent_volume_claim: persistent.then(|| PersistentVolumeClaimVolumeSource {
            claim_name: names::redis_pvc(ctx.name),
            ..Default::default()
        }),
        empty_dir: (!persistent).then(EmptyDirVolumeSource::default),
        ..Default::default()
    };
    let tcp_probe = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("redis".into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    };
    let container = Container {
        name: "redis".into(),
        image: Some(
            m.image
                .clone()
                .unwrap_or_else(|| DEFAULT_REDIS_IMAGE.into()),
        ),
        args: Some(args),
        env: Some(vec![secret_env(
            REDIS_PASSWORD_ENV,
            &SecretKeyRef {
                name: name.clone(),
                key: REDIS_SECRET_PASSWORD_KEY.into(),
            },
        )]),
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
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![data_volume]),
        image_pull_secrets: non_empty(spec.image_pull_secrets.clone()),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: non_empty(spec.tolerations.clone()),
        automount_service_account_token: Some(false),
        security_context: Some(restricted_pod_security(REDIS_UID, Some(REDIS_UID))),
        ..Default::default()
    };
    // The password is in the pod env via the Secret; roll Redis when it changes.
    let annotations = BTreeMap::from([(
        ANNOTATION_SECRETS_HASH.to_string(),
        short_hash(password.as_bytes()),
    )]);
    let deployment = deployment(
        ctx,
        name.clone(),
        Component::Redis,
        Some(1),
        pod,
        &annotations,
        true,
    );
    let service = Service {
        metadata: ctx.meta(name.clone(), Component::Redis),
        spec: Some(ServiceSpec {
            selector: Some(ctx.selector(Component::Redis)),
            ports: Some(vec![ServicePort {
                name: Some("redis".into()),
                port: REDIS_PORT,
                target_port: Some(IntOrString::String("redis".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let network_policy = redis_network_policy(ctx, operator);
    let pvc = m.persistence.as_ref().map(|p| PersistentVolumeClaim {
        metadata: ctx.meta(names::redis_pvc(ctx.name), Component::Redis),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: p.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), p.size.clone())])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    ManagedRedisObjects {
        secret,
        deployment,
        service,
        network_policy,
        pvc,
    }
}

/// The managed Redis admits, on its port only, this service's own API and
/// worker pods and, when it runs in the cluster, the operator's pods (the
/// autoscaler reads queue statistics from there).
fn redis_network_policy(ctx: &Ctx, operator: Option<&OperatorPods>) -> NetworkPolicy {
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                LABEL_INSTANCE.to_string(),
                ctx.name.to_string(),
            )])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: LABEL_COMPONENT.into(),
                operator: "In".into(),
                values: Some(vec![
                    Component::Api.as_str().into(),
                    Component::Worker.as_str().into(),
                ]),
            }]),
        }),
        ..Default::default()
    };
    let operator_pods = operator.map(|o| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                o.namespace.clone(),
            )])),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(o.labels.clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    NetworkPolicy {
        metadata: ctx.meta(names::redis(ctx.name), Component::Redis),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(ctx.selector(Component::Redis)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(
                    [Some(own_pods), operator_pods]
                        .into_iter()
                        .flatten()
                        .collect(),
                ),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(REDIS_PORT)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RedisSpec;

    fn svc_from_yaml(yaml: &str) -> PymService {
        let mut svc: PymService = yaml_serde::from_str(yaml).expect("fixture parses");
        svc.metadata
            .namespace
            .get_or_insert_with(|| "default".into());
        svc.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
        svc
    }

    fn inputs() -> Inputs {
        Inputs {
            redis_password: Some("test-password".into()),
            task_secret: Some("test-task-secret".into()),
            secrets_hash: "0011223344556677".into(),
            operator_pods: Some(operator_pods()),
        }
    }

    /// The chart's operator pods (release `pym` in `pym-system`).
    fn operator_pods() -> OperatorPods {
        OperatorPods {
            namespace: "pym-system".into(),
            labels: parse_labels(
                "app.kubernetes.io/name=pym-operator,app.kubernetes.io/instance=pym,\
                 app.kubernetes.io/component=operator",
            )
            .unwrap(),
        }
    }

    /// Renders every desired object as one multi-document YAML.
    fn render(d: &Desired) -> String {
        let mut docs: Vec<String> = Vec::new();
        let mut push = |v: serde_json::Value| docs.push(yaml_serde::to_string(&v).unwrap());
        push(serde_json::to_value(&d.config_map).unwrap());
        push(serde_json::to_value(&d.api_deployment).unwrap());
        push(serde_json::to_value(&d.api_service).unwrap());
        if let Some(w) = &d.worker_deployment {
            push(serde_json::to_value(w).unwrap());
        }
        if let Some(t) = &d.task_secret {
            push(serde_json::to_value(t).unwrap());
        }
        if let Some(r) = &d.managed_redis {
            push(serde_json::to_value(&r.secret).unwrap());
            push(serde_json::to_value(&r.deployment).unwrap());
            push(serde_json::to_value(&r.service).unwrap());
            push(serde_json::to_value(&r.network_policy).unwrap());
            if let Some(p) = &r.pvc {
                push(serde_json::to_value(p).unwrap());
            }
        }
        docs.join("---\n")
    }

    /// Compares with `operator/testdata/golden/<name>.yaml`;
    /// `UPDATE_GOLDEN=1 cargo test -p pym-operator` rewrites the files.
    fn golden(name: &str, input: &str) {
        let svc = svc_from_yaml(input);
        let got = render(&desired(&svc, &inputs()).expect("desired"));
        let path = format!("{}/testdata/golden/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{path} missing: run UPDATE_GOLDEN=1 cargo test"));
        assert_eq!(
            got, want,
            "golden {name} differs; UPDATE_GOLDEN=1 to accept"
        );
    }

    const MINIMAL: &str = "
apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {name: tiny}
spec:
  image: pym/tiny:1
";

    const HELLO: &str = "
apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {name: hello, namespace: demo}
spec:
  image: pym/hello:dev
  withAsync: true
  jwtSecretRef: {name: hello-jwt, key: secret}
  config:
    name: hello
    jwt_issuer: https://hello.example
  workers:
    minReplicas: 2
    maxReplicas: 5
    concurrency: 4
    queues: [default, emails]
  redis:
    managed:
      persistence: {size: 2Gi}
";

    const EXTERNAL: &str = "
apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {name: ext}
spec:
  image: pym/ext:1
  imagePullPolicy: IfNotPresent
  withAsync: true
  env: [{name: PYM_LOG_FORMAT, value: pretty}, {name: EXTRA, value: '1'}]
  api:
    replicas: 3
    port: 9000
    env: [{name: API_ONLY, value: x}]
  redis:
    external:
      urlSecretRef: {name: redis-url, key: url}
  imagePullSecrets: [{name: regcred}]
  serviceAccountName: ext-sa
  nodeSelector: {pool: general}
  tolerations: [{key: dedicated, operator: Equal, value: pym, effect: NoSchedule}]
";

    #[test]
    fn golden_minimal() {
        golden("minimal", MINIMAL);
    }

    #[test]
    fn golden_hello_managed_redis() {
        golden("hello-managed", HELLO);
    }

    #[test]
    fn golden_external_redis() {
        golden("external", EXTERNAL);
    }

    #[test]
    fn minimal_has_no_worker_and_no_redis() {
        let d = desired(&svc_from_yaml(MINIMAL), &Inputs::default()).unwrap();
        assert!(d.worker_deployment.is_none());
        assert!(d.managed_redis.is_none());
        assert_eq!(d.redis_endpoint, None);
        let c = &d
            .api_deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(
            c.args.as_deref(),
            Some(&[contract::CMD_SERVE.to_string()][..])
        );
        assert!(
            !c.env
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.name == contract::ENV_REDIS_URL),
            "no redis, no PYM_REDIS_URL"
        );
    }

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
    fn every_object_is_owned_and_labelled() {
        let d = desired(&svc_from_yaml(HELLO), &inputs()).unwrap();
        let r = d.managed_redis.clone().unwrap();
        let metas = [
            &d.config_map.metadata,
            &d.api_deployment.metadata,
            &d.api_service.metadata,
            &d.worker_deployment.as_ref().unwrap().metadata,
            &d.task_secret.as_ref().unwrap().metadata,
            &r.secret.metadata,
            &r.deployment.metadata,
            &r.service.metadata,
            &r.network_policy.metadata,
            &r.pvc.as_ref().unwrap().metadata,
        ];
        for m in metas {
            let o = &m.owner_references.as_ref().unwrap()[0];
            assert_eq!(o.kind, "PymService");
            assert_eq!(o.controller, Some(true));
            assert_eq!(m.namespace.as_deref(), Some("demo"));
            let l = m.labels.as_ref().unwrap();
            assert_eq!(l[LABEL_MANAGED_BY], MANAGED_BY);
            assert_eq!(l[LABEL_INSTANCE], "hello");
        }
    }

    #[test]
    fn config_change_changes_pod_template_hash() {
        let a = desired(&svc_from_yaml(HELLO), &inputs()).unwrap();
        let mut svc = svc_from_yaml(HELLO);
        svc.spec.config = Some(serde_json::json!({"name": "hello", "debug": true}));
        let b = desired(&svc, &inputs()).unwrap();
        let hash = |d: &Desired| {
            d.api_deployment
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[ANNOTATION_CONFIG_HASH]
                .clone()
        };
        assert_ne!(hash(&a), hash(&b));
        assert_ne!(a.config_map, b.config_map);
    }

    #[test]
    fn user_env_overrides_ours_without_duplicates() {
        let d = desired(&svc_from_yaml(EXTERNAL), &inputs()).unwrap();
        let env = d
            .api_deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap();
        let fmt: Vec<_> = env
            .iter()
            .filter(|e| e.name == contract::ENV_LOG_FORMAT)
            .collect();
        assert_eq!(fmt.len(), 1);
        assert_eq!(fmt[0].value.as_deref(), Some("pretty"));
        assert!(env.iter().any(|e| e.name == "API_ONLY"));
        let url = env
            .iter()
            .find(|e| e.name == contract::ENV_REDIS_URL)
            .unwrap();
        let sel = url
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((sel.name.as_str(), sel.key.as_str()), ("redis-url", "url"));
    }

    #[test]
    fn managed_redis_is_locked_down() {
        let d = desired(&svc_from_yaml(HELLO), &inputs()).unwrap();
        let r = d.managed_redis.unwrap();
        let pod = r.deployment.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        assert!(
            c.args
                .as_ref()
                .unwrap()
                .contains(&"--requirepass".to_string())
        );
        // The password only reaches the pod through the Secret.
        assert!(
            !c.args
                .as_ref()
                .unwrap()
                .iter()
                .any(|a| a.contains("test-password"))
        );
        let url =
            String::from_utf8(r.secret.data.unwrap()[REDIS_SECRET_URL_KEY].0.clone()).unwrap();
        assert_eq!(url, "redis://:test-password@hello-redis.demo.svc:6379/0");
        let np = r.network_policy.spec.unwrap();
        assert_eq!(np.policy_types.unwrap(), vec!["Ingress".to_string()]);
    }

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

    /// (name, key) of the Secret `var` comes from in the container, if any.
    fn secret_ref_of(d: &Deployment, var: &str) -> Option<(String, String)> {
        let c = &d.spec.as_ref()?.template.spec.as_ref()?.containers[0];
        let e = c.env.as_ref()?.iter().find(|e| e.name == var)?;
        let s = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
        Some((s.name.clone(), s.key.clone()))
    }

    #[test]
    fn with_async_pods_always_get_a_task_secret() {
        // (fixture, taskSecretRef, want Secret of PYM_TASK_SECRET, want a generated Secret)
        let user_ref = SecretKeyRef {
            name: "my-task".into(),
            key: "k".into(),
        };
        let cases = [
            (HELLO, None, ("hello-pym-task", TASK_SECRET_KEY), true),
            (EXTERNAL, None, ("ext-pym-task", TASK_SECRET_KEY), true),
            (HELLO, Some(user_ref.clone()), ("my-task", "k"), false),
        ];
        for (yaml, task_ref, (want_name, want_key), generated) in cases {
            let mut svc = svc_from_yaml(yaml);
            svc.spec.task_secret_ref = task_ref;
            let d = desired(&svc, &inputs()).unwrap();
            let want = Some((want_name.to_string(), want_key.to_string()));
            for dep in [&d.api_deployment, d.worker_deployment.as_ref().unwrap()] {
                assert_eq!(secret_ref_of(dep, contract::ENV_TASK_SECRET), want);
            }
            assert_eq!(d.task_secret.is_some(), generated);
            if let Some(s) = &d.task_secret {
                assert_eq!(s.metadata.name.as_deref(), Some(want_name));
                let v = &s.data.as_ref().unwrap()[TASK_SECRET_KEY];
                assert_eq!(v.0, b"test-task-secret");
            }
        }
        // Without withAsync: no task secret at all.
        let d = desired(&svc_from_yaml(MINIMAL), &Inputs::default()).unwrap();
        assert_eq!(
            secret_ref_of(&d.api_deployment, contract::ENV_TASK_SECRET),
            None
        );
        assert!(d.task_secret.is_none());
        // withAsync without the generated value is a reconciler bug, not a pod that exits.
        let no_task = Inputs {
            task_secret: None,
            ..inputs()
        };
        let err = desired(&svc_from_yaml(EXTERNAL), &no_task).unwrap_err();
        assert_eq!(err, DesiredError::MissingTaskSecret);
    }

    #[test]
    fn config_may_not_rename_injected_variables() {
        // (fixture, spec.config, Some(renamed key) when refused)
        let cases: &[(&str, &str, Option<&str>)] = &[
            (HELLO, "{jwt_secret_env: MY_JWT}", Some("jwt_secret_env")),
            (HELLO, "{redis_url_env: MY_REDIS}", Some("redis_url_env")),
            (EXTERNAL, "{redis_url_env: MY_REDIS}", Some("redis_url_env")),
            (HELLO, "{jwt_secret_env: 5}", Some("jwt_secret_env")),
            // the very variable the operator sets: fine
            (
                HELLO,
                "{jwt_secret_env: PYM_JWT_SECRET, redis_url_env: PYM_REDIS_URL}",
                None,
            ),
            // no jwtSecretRef: the operator sets no PYM_JWT_SECRET, the user may name theirs
            (EXTERNAL, "{jwt_secret_env: MY_JWT}", None),
            // no redis: no PYM_REDIS_URL from the operator
            (MINIMAL, "{redis_url_env: MY_REDIS}", None),
            // keys that name variables the operator never sets
            (HELLO, "{jwt_public_key_env: PEM, name: x}", None),
        ];
        for (yaml, config, refused) in cases {
            let mut svc = svc_from_yaml(yaml);
            svc.spec.config = Some(yaml_serde::from_str(config).unwrap());
            let got = desired(&svc, &inputs());
            match refused {
                None => assert!(got.is_ok(), "{config}: {got:?}"),
                Some(key) => {
                    let err = got.unwrap_err();
                    let msg = err.to_string();
                    assert!(
                        matches!(err, DesiredError::RenamesInjectedEnv { key: k, .. } if k == *key),
                        "{config}: {msg}"
                    );
                    assert!(msg.starts_with(&format!("spec.config.{key} is ")), "{msg}");
                    assert!(
                        msg.contains(&format!("remove {key} from spec.config")),
                        "{msg}"
                    );
                    let e = crate::Error::from(err);
                    assert_eq!(e.reason(), "InvalidSpec");
                }
            }
        }
        let mut svc = svc_from_yaml(HELLO);
        svc.spec.config = Some(serde_json::json!({"jwt_secret_env": "MY_JWT"}));
        assert_eq!(
            desired(&svc, &inputs()).unwrap_err().to_string(),
            "spec.config.jwt_secret_env is \"MY_JWT\": the pods would read that variable and \
             ignore PYM_JWT_SECRET, which the operator sets; remove jwt_secret_env from spec.config"
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn redis_network_policy_admits_own_pods_and_the_operator_on_6379_only() {
        let own = NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(&[(LABEL_INSTANCE, "hello")])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: LABEL_COMPONENT.into(),
                    operator: "In".into(),
                    values: Some(vec!["api".into(), "worker".into()]),
                }]),
            }),
            ..Default::default()
        };
        let operator = |ns: &str, l: &[(&str, &str)]| NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(labels(&[(NAMESPACE_NAME_LABEL, ns)])),
                ..Default::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(l)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let chart = [
            ("app.kubernetes.io/component", "operator"),
            ("app.kubernetes.io/instance", "pym"),
            ("app.kubernetes.io/name", "pym-operator"),
        ];
        // (operator pods, the peers the policy admits)
        let cases = [
            // outside the cluster (the e2e's local process): own pods only
            (None, vec![own.clone()]),
            (
                Some(operator_pods()),
                vec![own.clone(), operator("pym-system", &chart)],
            ),
            // the operator in the service's own namespace: still its labels only
            (
                OperatorPods::new("demo", labels(&[("app", "op")])),
                vec![own.clone(), operator("demo", &[("app", "op")])],
            ),
        ];
        for (op, want) in cases {
            let d = desired(
                &svc_from_yaml(HELLO),
                &Inputs {
                    operator_pods: op.clone(),
                    ..inputs()
                },
            )
            .unwrap();
            let np = d.managed_redis.unwrap().network_policy;
            assert_eq!(np.metadata.name.as_deref(), Some("hello-redis"));
            let spec = np.spec.unwrap();
            assert_eq!(
                spec.pod_selector.unwrap().match_labels,
                Some(labels(&[
                    (LABEL_INSTANCE, "hello"),
                    (LABEL_COMPONENT, "redis")
                ])),
                "{op:?}"
            );
            assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
            let rules = spec.ingress.unwrap();
            assert_eq!(rules.len(), 1, "{op:?}");
            assert_eq!(rules[0].from.as_ref(), Some(&want), "{op:?}");
            let ports = rules[0].ports.as_ref().unwrap();
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0].port, Some(IntOrString::Int(6379)));
            assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
            assert_eq!(ports[0].end_port, None);
        }
    }

    #[test]
    fn operator_pods_need_a_namespace_and_labels() {
        let l = labels(&[("app", "op")]);
        assert!(OperatorPods::new("ops", l.clone()).is_some());
        assert_eq!(OperatorPods::new("", l), None, "no namespace");
        assert_eq!(
            OperatorPods::new("ops", BTreeMap::new()),
            None,
            "an empty selector would admit the whole namespace"
        );
    }

    #[test]
    fn parse_labels_table() {
        // (input, Ok(pairs) or Err(part of the message))
        let ok = |p: &[(&str, &str)]| Ok::<_, &str>(labels(p));
        type Want = Result<BTreeMap<String, String>, &'static str>;
        let cases: &[(&str, Want)] = &[
            ("", ok(&[])),
            (" , ", ok(&[])),
            ("app=op", ok(&[("app", "op")])),
            (
                "app.kubernetes.io/name=pym-operator, app.kubernetes.io/instance=pym",
                ok(&[
                    ("app.kubernetes.io/instance", "pym"),
                    ("app.kubernetes.io/name", "pym-operator"),
                ]),
            ),
            ("tier=", ok(&[("tier", "")])),
            ("a=1,b=x_y.z-2", ok(&[("a", "1"), ("b", "x_y.z-2")])),
            ("app", Err("is not key=value")),
            ("=op", Err("is not a label key")),
            ("-app=op", Err("is not a label key")),
            ("Example.com/app=op", Err("is not a label key")),
            ("example.com/=op", Err("is not a label key")),
            ("a/b/c=op", Err("is not a label key")),
            ("app=op=x", Err("is not a label value")),
            ("app=has space", Err("is not a label value")),
            ("app=op-", Err("is not a label value")),
            ("app=op,app=other", Err("given twice")),
        ];
        for (input, want) in cases {
            let got = parse_labels(input);
            match want {
                Ok(w) => assert_eq!(got.as_ref(), Ok(w), "{input:?}"),
                Err(part) => {
                    let e = got.expect_err(input);
                    assert!(e.contains(part), "{input:?}: {e}");
                }
            }
        }
        let long_key = format!("{}=v", "k".repeat(64));
        assert!(parse_labels(&long_key).is_err());
        let long_value = format!("k={}", "v".repeat(64));
        assert!(parse_labels(&long_value).is_err());
        assert!(parse_labels(&format!("k={}", "v".repeat(63))).is_ok());
    }

    #[test]
    fn managed_redis_without_password_is_an_error() {
        let no_password = Inputs {
            redis_password: None,
            ..inputs()
        };
        let err = desired(&svc_from_yaml(HELLO), &no_password).unwrap_err();
        assert_eq!(err, DesiredError::MissingRedisPassword);
    }

    #[test]
    fn missing_uid_is_an_error() {
        let mut svc = svc_from_yaml(MINIMAL);
        svc.metadata.uid = None;
        assert!(desired(&svc, &Inputs::default()).is_err());
    }

    #[test]
    fn worker_replicas_policy() {
        let w = WorkersSpec {
            min_replicas: 2,
            max_replicas: 5,
            ..Default::default()
        };
        assert_eq!(worker_replicas(None, &w), Some(2), "creation: minReplicas");
        assert_eq!(worker_replicas(Some(0), &w), Some(2), "below bounds");
        assert_eq!(worker_replicas(Some(9), &w), Some(5), "above bounds");
        assert_eq!(worker_replicas(Some(3), &w), None, "autoscaler's range");
        assert_eq!(worker_replicas(Some(2), &w), None);
        assert_eq!(worker_replicas(Some(5), &w), None);
    }

    #[test]
    fn redis_endpoint_parsing_strips_credentials() {
        let e = |u| redis_endpoint_of_url(u);
        assert_eq!(
            e("redis://:pw@r.example:6380/0").as_deref(),
            Some("r.example:6380")
        );
        assert_eq!(e("rediss://user:p@ss@h/2?x=1").as_deref(), Some("h:6379"));
        assert_eq!(e("redis://h:1").as_deref(), Some("h:1"));
        assert_eq!(e("http://h"), None);
        assert_eq!(e("redis://"), None);
    }

    #[test]
    fn secrets_hash_is_stable_and_sensitive() {
        let a = secrets_hash(&[("jwt", "12"), ("redis", "7")]);
        assert_eq!(a, secrets_hash(&[("jwt", "12"), ("redis", "7")]));
        assert_ne!(a, secrets_hash(&[("jwt", "13"), ("redis", "7")]));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn persistence_adds_pvc_and_aof() {
        let mut svc = svc_from_yaml(HELLO);
        let d = desired(&svc, &inputs()).unwrap();
        assert!(d.managed_redis.as_ref().unwrap().pvc.is_some());
        svc.spec.redis = Some(RedisSpec {
            managed: Some(ManagedRedis {
                persistence: None,
                ..Default::default()
            }),
            external: None,
        });
        let d = desired(&svc, &inputs()).unwrap();
        let r = d.managed_redis.unwrap();
        assert!(r.pvc.is_none());
        let args = r.deployment.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.windows(2).any(|w| w == ["--appendonly", "no"]));
    }
}
