//! The `PymService` custom resource (`pym.dev/v1alpha1`).
//!
//! The CRD in `crds/pymservice.yaml` is generated from these types by the
//! `crdgen` binary; every doc comment below becomes a schema `description`
//! (what `kubectl explain pymservice.spec...` prints), every `schemars`
//! range/length/pattern and `x_kube` CEL rule is enforced by the apiserver,
//! so a bad object is rejected at `kubectl apply` with a message that names
//! the field.

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, Probe, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use pym_core::contract;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// API group of the CRD.
pub const GROUP: &str = "pym.dev";
/// Served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Image of the managed Redis when `spec.redis.managed.image` is not set.
/// Pinned to a release with the 2025 Lua fixes (CVE-2025-49844 and its
/// siblings are fixed in 7.4.6). By tag: no registry is reachable where
/// this is built to resolve its digest; pin `spec.redis.managed.image` by
/// digest in production.
pub const DEFAULT_REDIS_IMAGE: &str = "redis:7.4.6-alpine";

/// A pym microservice: an HTTP API Deployment, optional task workers and the
/// Redis broker they share, all derived from this one object.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pym.dev",
    version = "v1alpha1",
    kind = "PymService",
    plural = "pymservices",
    shortname = "pym",
    namespaced,
    status = "PymServiceStatus",
    derive = "PartialEq",
    doc = "A pym microservice: HTTP API, optional async task workers and their Redis broker.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every part of the service is ready"
    ),
    printcolumn(
        name = "API",
        type_ = "string",
        json_path = ".status.api.summary",
        description = "API pods ready/desired"
    ),
    printcolumn(
        name = "Workers",
        type_ = "string",
        json_path = ".status.workers.summary",
        description = "Worker pods ready/current"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.workers.desired",
        description = "Worker replicas the autoscaler wants"
    ),
    printcolumn(
        name = "Queue",
        type_ = "integer",
        json_path = ".status.queueDepth",
        description = "Tasks ready + in flight + due, summed over the worker queues"
    ),
    printcolumn(
        name = "Scaled",
        type_ = "date",
        json_path = ".status.lastScaleTime",
        description = "When the autoscaler last changed the worker replicas"
    ),
    printcolumn(
        name = "Next-Tick",
        type_ = "date",
        json_path = ".status.nextTick",
        description = "The soonest next tick of the periodic tasks (autoscaler)"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = kube::core::Rule::new("size(self.metadata.name) <= 40").message("metadata.name must be at most 40 characters: child objects append suffixes such as -redis-data")
)]
#[x_kube(validation = kube::core::Rule::new("!has(self.workers) || self.withAsync").message("spec.workers is only allowed when spec.withAsync is true").field_path(".workers"))]
#[x_kube(validation = kube::core::Rule::new("!self.withAsync || has(self.redis)").message("spec.redis is required when spec.withAsync is true").field_path(".redis"))]
#[serde(rename_all = "camelCase")]
pub struct PymServiceSpec {
    /// Container image of the service binary (built with pym-runtime); it
    /// runs as `serve` in API pods and `worker` in worker pods.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Image pull policy of the API and worker containers (Kubernetes default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// The HTTP API Deployment and its Service.
    #[serde(default)]
    pub api: ApiSpec,

    /// The service's pym-config (the content of pym-config.yaml, as an
    /// object). Rendered into a ConfigMap, mounted in every API and worker
    /// pod; editing it rolls the pods. It may not rename a variable the
    /// operator sets (`jwt_secret_env` with `jwtSecretRef`, `redis_url_env`
    /// with `redis`): the PymService is then Degraded (InvalidSpec) and its
    /// workloads are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<serde_json::Value>,

    /// Secret key holding the JWT signing secret, exposed to API and worker
    /// pods as the runtime's JWT secret variable. Editing the Secret rolls the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_ref: Option<SecretKeyRef>,

    /// Run task workers (`worker` pods) next to the API. Requires `redis`;
    /// turning it off deletes the worker Deployment.
    #[serde(default)]
    pub with_async: bool,

    /// Secret key holding the task secret: it signs the task messages and
    /// encrypts the tokens they carry, and must be the same in API and worker
    /// pods (exposed as the runtime's task secret variable). Used only with
    /// `withAsync`. When unset, the operator generates one, once, into the
    /// Secret `<name>-pym-task` (key `secret`) and keeps it as long as the
    /// PymService exists. Tasks queued under another key are dead-lettered
    /// (`bad_signature`) when the key changes: to keep signing with the JWT
    /// secret (what services did before the operator generated task
    /// secrets), set this to `jwtSecretRef`. Editing the Secret rolls the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_secret_ref: Option<SecretKeyRef>,

    /// The worker Deployment; only allowed when `withAsync` is true
    /// (defaults apply when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkersSpec>,

    /// The Redis broker: exactly one of `managed` or `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,

    /// Environment variables for every API and worker container (before the
    /// per-component `env`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Environment sources (ConfigMaps, Secrets) for every API and worker container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,

    /// Secrets used to pull `image` (and the managed Redis image).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// ServiceAccount of the API and worker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,

    /// Node labels every pod of the service must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of every pod of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// Container image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A key of a Secret in the PymService's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace as the PymService).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The HTTP API (`serve`) Deployment and Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiSpec {
    /// Number of API pods.
    #[serde(default = "default_api_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// Container port of the API; the Service exposes the same port.
    #[serde(default = "default_api_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// CPU/memory requests and limits of the API container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra environment variables of the API container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Extra environment sources of the API container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,

    /// Probe overrides. Defaults: liveness GET /healthz, readiness GET
    /// /readyz, both on `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<ProbesSpec>,
}

impl Default for ApiSpec {
    fn default() -> Self {
        Self {
            replicas: default_api_replicas(),
            port: default_api_port(),
            resources: None,
            env: Vec::new(),
            env_from: Vec::new(),
            probes: None,
        }
    }
}

fn default_api_replicas() -> i32 {
    1
}

fn default_api_port() -> i32 {
    i32::from(contract::DEFAULT_PORT)
}

/// Probe overrides; an unset probe keeps the pym default. A probe's
/// `httpGet.host` / `tcpSocket.host` are refused: the kubelet would send
/// requests to any host the author names, from the node's network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("!has(self.liveness) || !has(self.liveness.httpGet) || !has(self.liveness.httpGet.host)").message("liveness.httpGet.host is not allowed: probes target the pod itself (the kubelet would probe another host for you)").field_path(".liveness.httpGet.host"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.liveness) || !has(self.liveness.tcpSocket) || !has(self.liveness.tcpSocket.host)").message("liveness.tcpSocket.host is not allowed: probes target the pod itself (the kubelet would probe another host for you)").field_path(".liveness.tcpSocket.host"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.readiness) || !has(self.readiness.httpGet) || !has(self.readiness.httpGet.host)").message("readiness.httpGet.host is not allowed: probes target the pod itself (the kubelet would probe another host for you)").field_path(".readiness.httpGet.host"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.readiness) || !has(self.readiness.tcpSocket) || !has(self.readiness.tcpSocket.host)").message("readiness.tcpSocket.host is not allowed: probes target the pod itself (the kubelet would probe another host for you)").field_path(".readiness.tcpSocket.host"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.startup) || !has(self.startup.httpGet) || !has(self.startup.httpGet.host)").message("startup.httpGet.host is not allowed: probes target the pod itself (the kubelet would probe another host for you)").field_path(".startup.httpGet.host"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.startup) || !has(self.startup.tcpSocket) || !has(self.startup.tcpSocket.host)").message("startup.tcpSocket.host is not allowed: probes target the pod itself (the kubelet would probe another host for you)").field_path(".startup.tcpSocket.host"))]
#[serde(rename_all = "camelCase")]
pub struct ProbesSpec {
    /// Replaces the default liveness probe (GET /healthz).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
    /// Replaces the default readiness probe (GET /readyz).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    /// Optional startup probe (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Probe>,
}

/// The task worker (`worker`) Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("self.minReplicas <= self.maxReplicas").message("workers.minReplicas must be less than or equal to workers.maxReplicas").field_path(".minReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct WorkersSpec {
    /// Fewest worker pods; the Deployment is created with this many, and the
    /// autoscaler never goes below it.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,

    /// Most worker pods the autoscaler may run.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,

    /// Tasks in flight per worker pod.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 10000))]
    pub concurrency: i32,

    /// Queues the workers consume, in priority order. Names follow the
    /// runtime's rule (`pym_core::contract::QUEUE_NAME_PATTERN`); the
    /// schema's description spells it out ([`queues_description`]).
    #[serde(default = "default_queues")]
    #[schemars(
        length(min = 1, max = 32),
        inner(regex(pattern = contract::QUEUE_NAME_PATTERN)),
        description = queues_description()
    )]
    pub queues: Vec<String>,

    /// CPU/memory requests and limits of the worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra environment variables of the worker container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Extra environment sources of the worker container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,

    /// Queue-driven autoscaling between minReplicas and maxReplicas.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,

    /// Changes to the periodic tasks declared in code
    /// (`#[asynctask(cron = "..")]`), by task name: disable one, or change
    /// its cron expression or time zone. Passed to the workers as
    /// `PYM_SCHEDULES`; a worker refuses to start on an unknown name or a
    /// bad expression or zone, naming it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schedules: BTreeMap<String, ScheduleOverride>,
}

/// The change of one periodic task's schedule; an absent field keeps the
/// value declared in code.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleOverride {
    /// `false` stops the ticks of this task (true when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Cron expression: 5 fields (minute hour day-of-month month
    /// day-of-week) or 6 (second first), e.g. `0 0 3 * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub cron: Option<String>,
    /// IANA time zone of the expression, e.g. `Europe/Paris` (UTC when
    /// neither this nor the code names one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub tz: Option<String>,
}

impl Default for WorkersSpec {
    fn default() -> Self {
        Self {
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            concurrency: default_concurrency(),
            queues: default_queues(),
            resources: None,
            env: Vec::new(),
            env_from: Vec::new(),
            autoscaling: AutoscalingSpec::default(),
            schedules: BTreeMap::new(),
        }
    }
}

fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    10
}
fn default_concurrency() -> i32 {
    10
}
fn default_queues() -> Vec<String> {
    vec![contract::DEFAULT_QUEUE.to_string()]
}
fn queues_description() -> String {
    format!(
        "Queues the workers consume, in priority order. Queue names are {}.",
        contract::QUEUE_NAME_RULE
    )
}

/// How the autoscaler turns queue depth into worker replicas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Tasks (ready + in flight + due) one worker should carry; desired
    /// workers = ceil(depth / targetPerWorker). Defaults to `concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub target_per_worker: Option<i32>,

    /// With zero workers, work (ready + in flight + due) must exceed this
    /// to start one (default 0: the first task does). Scaling to zero
    /// always needs ready, in flight and due all at 0 for the whole
    /// scale-down window.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000000))]
    pub activation_threshold: i32,

    /// Scale-down stabilization: the workers only go down to the highest
    /// recommendation of this many seconds (scale-up is immediate).
    #[serde(default = "default_scale_down_window")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_window_seconds: i32,

    /// How often the queue depth is polled.
    #[serde(default = "default_poll_interval")]
    #[schemars(range(min = 1, max = 300))]
    pub poll_interval_seconds: i32,

    /// Optional latency goal: scale so queued tasks wait at most this long,
    /// from the measured per-worker service rate μ and arrival rate λ
    /// (Little's law): workers = ceil((λ + ready / target) / μ), never
    /// fewer than the in-flight tasks need. Replaces targetPerWorker once μ
    /// is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub target_latency_seconds: Option<i32>,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            target_per_worker: None,
            activation_threshold: 0,
            scale_down_window_seconds: default_scale_down_window(),
            poll_interval_seconds: default_poll_interval(),
            target_latency_seconds: None,
        }
    }
}

fn default_scale_down_window() -> i32 {
    60
}
fn default_poll_interval() -> i32 {
    1
}

/// The Redis broker of the service: exactly one of `managed` or `external`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("has(self.managed) != has(self.external)").message("spec.redis must set exactly one of managed or external"))]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// A Redis Deployment run by the operator: password-protected (generated
    /// Secret), reachable only from this service's pods and the operator's
    /// (NetworkPolicy), non-root with a read-only root filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedRedis>,

    /// A Redis you run elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedis>,
}

/// A Redis run by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRedis {
    /// Redis image (default redis:7.4.6-alpine, which has the 2025 Lua
    /// fixes; pin it by digest in production). Redis 7+ is required; it
    /// is started as `redis-server /etc/redis/redis.conf --port 6379 ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// CPU/memory requests and limits of the Redis container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Keep the data on a PersistentVolumeClaim (append-only file). Without
    /// it Redis keeps data in memory only and loses queued tasks on restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<RedisPersistence>,
}

/// The managed Redis volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisPersistence {
    /// Requested size of the claim (e.g. 1Gi).
    #[serde(default = "default_persistence_size")]
    pub size: Quantity,
    /// StorageClass of the claim (cluster default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

fn default_persistence_size() -> Quantity {
    Quantity("1Gi".to_string())
}

/// A Redis you run elsewhere.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRedis {
    /// Secret key holding the full Redis URL, with the password, in one of
    /// four forms:
    /// `redis://` (e.g. `redis://:pw@redis.example:6379/0`),
    /// `rediss://` for TLS (e.g. `rediss://user:pw@redis.example:6380/0`),
    /// Redis Sentinel (e.g.
    /// `redis-sentinel://:pw@s1:26379,s2:26379,s3:26379/0#mymaster`, or
    /// `rediss-sentinel://` for TLS) or Redis Cluster (e.g.
    /// `redis-cluster://:pw@n1:6379,n2:6379,n3:6379`). The status shows
    /// where it points (`host:port`, `sentinel h:26379,... master
    /// mymaster` or `cluster h:6379,...`), never the password. Editing the
    /// Secret rolls the pods.
    pub url_secret_ref: SecretKeyRef,
}

/// Observed state, written by the operator (and, for the scaling fields, by
/// the autoscaler under its own field manager).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PymServiceStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Progressing and Degraded, with reason and message (operator),
    /// and Autoscaling (autoscaler). A map keyed by `type`, so each field
    /// manager owns its own conditions under server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// API pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ReplicaStatus>,

    /// Worker pods and the autoscaler's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<WorkerStatus>,

    /// Redis in use: `host:port`, or `sentinel h1:26379,... master <name>`
    /// or `cluster h1:6379,...` (never the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_endpoint: Option<String>,

    /// Tasks ready + in flight + due over the worker queues (autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<i64>,

    /// When the autoscaler last changed the worker replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,

    /// Why the autoscaler last changed the worker replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_reason: Option<String>,

    /// The soonest next tick of the worker queues' periodic tasks, as the
    /// workers recorded it (autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tick: Option<Time>,
}

/// Replica counts of one Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Replicas asked for.
    pub desired: i32,
    /// Replicas ready.
    pub ready: i32,
    /// `ready/desired`, for `kubectl get pym`.
    pub summary: String,
}

/// Worker replica counts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// `spec.replicas` of the worker Deployment now.
    #[serde(default)]
    pub current: i32,
    /// Worker pods ready.
    #[serde(default)]
    pub ready: i32,
    /// What the autoscaler wants (written by the autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<i32>,
    /// `ready/current`, for `kubectl get pym`.
    #[serde(default)]
    pub summary: String,
}

/// The part of [`PymServiceStatus`] the autoscaler owns: the body of its
/// server-side apply under its own field manager, so the reconciler's status
/// apply and this one never remove each other's fields. Every field maps to
/// the field of the same JSON path in [`PymServiceStatus`] (a test checks
/// it); an empty value releases them all (autoscaling turned off).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// `workers.desired`: the replica count the autoscaler recommends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<AutoscalerWorkers>,

    /// `queueDepth`: tasks ready + in flight + due over the worker queues,
    /// as last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<i64>,

    /// `lastScaleTime`: when the autoscaler last changed the worker replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,

    /// `lastScaleReason`: why it last changed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_reason: Option<String>,

    /// `nextTick`: the soonest next tick of the periodic tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tick: Option<Time>,

    /// `conditions`: only the `Autoscaling` condition (True while the queue
    /// statistics are readable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The autoscaler's part of [`WorkerStatus`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerWorkers {
    /// Worker replicas the autoscaler recommends this poll (before the
    /// scale-down window holds them).
    pub desired: i32,
}

impl AutoscalerStatus {
    /// The autoscaler's fields of a full status; `condition` names the one
    /// condition it owns.
    pub fn of(status: &PymServiceStatus, condition: &str) -> AutoscalerStatus {
        AutoscalerStatus {
            workers: status
                .workers
                .as_ref()
                .and_then(|w| w.desired)
                .map(|desired| AutoscalerWorkers { desired }),
            queue_depth: status.queue_depth,
            last_scale_time: status.last_scale_time.clone(),
            last_scale_reason: status.last_scale_reason.clone(),
            next_tick: status.next_tick.clone(),
            conditions: status
                .conditions
                .iter()
                .filter(|c| c.type_ == condition)
                .cloned()
                .collect(),
        }
    }

    /// The condition of type `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

impl PymServiceSpec {
    /// Worker settings in effect: `Some` only when `withAsync` is on.
    pub fn effective_workers(&self) -> Option<WorkersSpec> {
        self.with_async
            .then(|| self.workers.clone().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    /// The schema of `spec.workers.queues` in the generated CRD.
    fn queues_schema() -> serde_json::Value {
        let crd = serde_json::to_value(PymService::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["workers"]["properties"]["queues"]
            .clone()
    }

    /// The CRD's name limit is the contract's (`pym new` checks it too).
    #[test]
    fn crd_name_limit_is_the_contracts() {
        let crd = serde_json::to_string(&PymService::crd()).unwrap();
        let rule = format!(
            "size(self.metadata.name) <= {}",
            contract::SERVICE_NAME_MAX_LEN
        );
        assert!(crd.contains(&rule), "the CRD has no rule {rule:?}");
    }

    /// The CRD refuses exactly the queue names the runtime refuses: the
    /// apiserver (RE2, like the `regex` crate) checks the CRD's pattern, the
    /// worker checks `contract::validate_queue_name`.
    #[test]
    fn crd_queue_pattern_agrees_with_the_runtime() {
        let queues = queues_schema();
        let pattern = queues["items"]["pattern"]
            .as_str()
            .expect("queues[*] has a pattern");
        assert_eq!(pattern, contract::QUEUE_NAME_PATTERN);
        let re = regex::Regex::new(pattern).unwrap();
        let max = contract::QUEUE_NAME_MAX_LEN;
        let longest = "q".repeat(max);
        let too_long = "q".repeat(max + 1);
        let valid = [
            "default",
            "emails",
            "orders.v2",
            "orders-v2",
            "orders_v2",
            "A9",
            "_",
            "-leading-dash",
            ".dot",
            longest.as_str(),
        ];
        let invalid = [
            "",
            "orders:v2",
            "has space",
            " lead",
            "trail ",
            "a/b",
            "a{b}",
            "a*",
            "é",
            "new\nline",
            too_long.as_str(),
        ];
        for n in valid {
            assert!(
                contract::validate_queue_name(n).is_ok(),
                "runtime refuses {n:?}"
            );
            assert!(re.is_match(n), "CRD refuses {n:?}");
        }
        for n in invalid {
            assert!(
                contract::validate_queue_name(n).is_err(),
                "runtime accepts {n:?}"
            );
            assert!(!re.is_match(n), "CRD accepts {n:?}");
        }
        // Every one-character name (all of ASCII and a few others) and every
        // length around the limit: the two always agree.
        let singles = (0u8..=127).map(|b| (b as char).to_string());
        let others = ["é", "\u{0}", "\u{200b}", "ü"].map(String::from);
        let lengths = (0..=max + 2).map(|n| "a".repeat(n));
        for n in singles.chain(others).chain(lengths) {
            assert_eq!(
                contract::is_valid_queue_name(&n),
                re.is_match(&n),
                "runtime and CRD disagree on {n:?}"
            );
        }
        let d = queues["description"].as_str().unwrap_or_default();
        assert!(d.contains(contract::QUEUE_NAME_RULE), "{queues}");
    }

    /// The `status` schema of the generated CRD.
    fn status_schema() -> serde_json::Value {
        let crd = serde_json::to_value(PymService::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"].clone()
    }

    /// Every property path (`a.b`) of a schema with its `type`.
    fn property_types(schema: &serde_json::Value, prefix: &str, out: &mut Vec<(String, String)>) {
        let Some(props) = schema["properties"].as_object() else {
            return;
        };
        for (k, v) in props {
            let path = format!("{prefix}{k}");
            out.push((path.clone(), v["type"].as_str().unwrap_or("").to_string()));
            property_types(v, &format!("{path}."), out);
        }
    }

    #[test]
    fn autoscaler_status_is_a_part_of_the_status_schema() {
        let settings = schemars::generate::SchemaSettings::openapi3().with(|s| {
            s.inline_subschemas = true;
        });
        let own = serde_json::to_value(
            settings
                .into_generator()
                .into_root_schema_for::<AutoscalerStatus>(),
        )
        .unwrap();
        let (mut own_props, mut crd_props) = (Vec::new(), Vec::new());
        property_types(&own, "", &mut own_props);
        property_types(&status_schema(), "", &mut crd_props);
        assert!(own_props.len() >= 6, "{own_props:?}");
        for p in &own_props {
            assert!(crd_props.contains(p), "{p:?} is not in the CRD status");
        }
    }

    #[test]
    fn autoscaler_status_round_trips_through_the_status() {
        let cond = Condition {
            type_: "Autoscaling".into(),
            status: "True".into(),
            reason: "QueueRead".into(),
            message: "ok".into(),
            observed_generation: Some(2),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        };
        let own = AutoscalerStatus {
            workers: Some(AutoscalerWorkers { desired: 6 }),
            queue_depth: Some(1240),
            last_scale_time: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
            last_scale_reason: Some("queue 1240 → 6 workers".into()),
            next_tick: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
            conditions: vec![cond.clone()],
        };
        let json = serde_json::to_value(&own).unwrap();
        let mut full: PymServiceStatus = serde_json::from_value(json).unwrap();
        assert_eq!(AutoscalerStatus::of(&full, "Autoscaling"), own);
        // Fields of the reconciler are not the autoscaler's.
        full.conditions.push(Condition {
            type_: "Ready".into(),
            ..cond
        });
        full.observed_generation = Some(3);
        assert_eq!(AutoscalerStatus::of(&full, "Autoscaling"), own);
        // Empty: releases every field (server-side apply of `{}`).
        assert_eq!(
            serde_json::to_value(AutoscalerStatus::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn printer_columns_point_at_status_fields() {
        let crd = serde_json::to_value(PymService::crd()).unwrap();
        let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .clone();
        let mut props = Vec::new();
        property_types(&status_schema(), ".status.", &mut props);
        let paths: Vec<&str> = props.iter().map(|(p, _)| p.as_str()).collect();
        for c in &columns {
            let path = c["jsonPath"].as_str().unwrap();
            let field = path.split('[').next().unwrap_or(path);
            if field.starts_with(".status") {
                assert!(
                    paths.contains(&field),
                    "column {c} reads {field}: not in the status schema"
                );
            }
        }
        let names: Vec<&str> = columns.iter().filter_map(|c| c["name"].as_str()).collect();
        for n in ["Desired", "Queue", "Scaled"] {
            assert!(names.contains(&n), "{names:?}");
        }
    }
}
