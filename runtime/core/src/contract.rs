//! The operator ↔ runtime contract, defined once.
//!
//! Everything the Kubernetes operator writes into a pod (command arguments,
//! environment variable names, ports, file paths) and everything it reads
//! back (health and metrics paths, metric names) is a constant here. The
//! operator imports this module; nothing below is ever spelled twice.

/// Subcommand that runs the HTTP API (`<binary> serve`).
pub const CMD_SERVE: &str = "serve";
/// Subcommand that runs the task worker (`<binary> worker`).
pub const CMD_WORKER: &str = "worker";
/// Subcommand that runs API and worker in one process (local development).
pub const CMD_UP: &str = "up";
/// Overrides of the worker's periodic tasks (`spec.workers.schedules`):
/// a JSON object of task name → `{"enabled": bool, "cron": "..", "tz": ".."}`
/// (see `pym_schedule::Override`).
pub const ENV_SCHEDULES: &str = "PYM_SCHEDULES";

/// Redis URL of the broker (`redis://`, `rediss://`, with password if any).
pub const ENV_REDIS_URL: &str = "PYM_REDIS_URL";
/// PEM file of the CA that signs the Redis server's TLS certificate
/// (`rediss://` URLs), when it is not in the system trust store.
pub const ENV_REDIS_CA_FILE: &str = "PYM_REDIS_CA_FILE";
/// Secret that signs and verifies JWTs (HS256); the operator sets it from
/// the PymService's `jwtSecretRef`.
pub const ENV_JWT_SECRET: &str = "PYM_JWT_SECRET";
/// Secret that signs task envelopes (HMAC) and encrypts the tokens they
/// carry. Falls back to the JWT secret; the operator always sets it when
/// `withAsync` is on (from `taskSecretRef`, or a Secret it generates).
pub const ENV_TASK_SECRET: &str = "PYM_TASK_SECRET";
/// Path of the service's `pym-config.yaml`.
pub const ENV_CONFIG: &str = "PYM_CONFIG";
/// Environment name (`dev`, `staging`, `prod`, ...), as pymacaron's PYM_ENV.
pub const ENV_ENV: &str = "PYM_ENV";
/// Port of the HTTP API (`serve`, `up`).
pub const ENV_PORT: &str = "PYM_PORT";
/// Port of the API's `/metrics` when it is not served on the API port
/// (config key [`CONFIG_METRICS_PORT`]; unset: `/metrics` on [`ENV_PORT`]).
pub const ENV_METRICS_PORT: &str = "PYM_METRICS_PORT";
/// Config key of the API's metrics port, see [`ENV_METRICS_PORT`].
pub const CONFIG_METRICS_PORT: &str = "metrics_port";
/// Port of the worker's health and metrics server.
pub const ENV_WORKER_PORT: &str = "PYM_WORKER_PORT";
/// Tasks in flight per worker process.
pub const ENV_WORKER_CONCURRENCY: &str = "PYM_WORKER_CONCURRENCY";
/// Comma-separated queues a worker consumes.
pub const ENV_WORKER_QUEUES: &str = "PYM_WORKER_QUEUES";
/// Sharded queues, `queue=N[,queue=N...]` (config key `shards`): producers
/// spread a queue's tasks over its N shards, workers read them all.
pub const ENV_QUEUE_SHARDS: &str = "PYM_QUEUE_SHARDS";
/// Base of a worker's consumer name (the operator sets the pod name); each
/// worker process adds `#<incarnation>`, so a container restarted in
/// place is a new consumer and its predecessor's tasks are taken over.
pub const ENV_WORKER_NAME: &str = "PYM_WORKER_NAME";
/// Log format: `json` or `pretty`.
pub const ENV_LOG_FORMAT: &str = "PYM_LOG_FORMAT";
/// Log filter, as `RUST_LOG`.
pub const ENV_LOG: &str = "PYM_LOG";

/// Default HTTP API port.
pub const DEFAULT_PORT: u16 = 8080;
/// Default worker health/metrics port.
pub const DEFAULT_WORKER_PORT: u16 = 9090;
/// Default queue name.
pub const DEFAULT_QUEUE: &str = "default";
/// Where the operator mounts the rendered `pym-config.yaml`.
pub const CONFIG_MOUNT_DIR: &str = "/etc/pym";
/// File name of the config inside [`CONFIG_MOUNT_DIR`].
pub const CONFIG_FILE_NAME: &str = "pym-config.yaml";

/// Liveness path (process is up).
pub const PATH_HEALTHZ: &str = "/healthz";
/// Readiness path (dependencies reachable).
pub const PATH_READYZ: &str = "/readyz";
/// Prometheus metrics path.
pub const PATH_METRICS: &str = "/metrics";

/// Prometheus metric names exported by workers and producers.
pub mod metrics {
    pub const TASKS_ENQUEUED: &str = "pym_tasks_enqueued";
    pub const TASKS_STARTED: &str = "pym_tasks_started";
    pub const TASKS_SUCCEEDED: &str = "pym_tasks_succeeded";
    pub const TASKS_FAILED: &str = "pym_tasks_failed";
    pub const TASKS_RETRIED: &str = "pym_tasks_retried";
    pub const TASKS_DEAD_LETTERED: &str = "pym_tasks_dead_lettered";
    pub const TASKS_REPLAY_SKIPPED: &str = "pym_tasks_replay_skipped";
    pub const TASKS_EXPIRED: &str = "pym_tasks_expired";
    pub const TASKS_DEFERRED: &str = "pym_tasks_deferred";
    pub const TASKS_PARKED: &str = "pym_tasks_parked";
    pub const TASK_DURATION_SECONDS: &str = "pym_task_duration_seconds";
    pub const TASKS_IN_FLIGHT: &str = "pym_tasks_in_flight";
    pub const HTTP_REQUESTS: &str = "pym_http_requests";
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "pym_http_request_duration_seconds";
}

/// Longest PymService name (`metadata.name`): its child objects append
/// suffixes such as `-redis-data` and must stay valid Kubernetes names.
/// The CRD enforces it; `pym new` refuses longer service names.
pub const SERVICE_NAME_MAX_LEN: usize = 40;

/// Config key (`pym-config.yaml`) that turns the task queue on; the operator
/// sets it from `spec.withAsync`.
pub const CONFIG_WITH_ASYNC: &str = "with_async";

/// Content type of `/metrics` (OpenMetrics text), from the API, the worker
/// and the operator alike.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The queue-name rule is part of the contract: the CRD carries its pattern.
pub use crate::queue_name::{
    QUEUE_NAME_MACRO_ERROR, QUEUE_NAME_MAX_LEN, QUEUE_NAME_PATTERN, QUEUE_NAME_PUNCT,
    QUEUE_NAME_RULE, is_valid_queue_name, validate_queue_name,
};

/// Keys of `pym-config.yaml` that rename a variable the operator injects,
/// each with the variable it renames: with `jwt_secret_env: OTHER`, the
/// runtime reads the JWT secret from `$OTHER` and ignores [`ENV_JWT_SECRET`].
/// The operator refuses a `spec.config` that sets one of them to another
/// name while it injects that variable.
pub const CONFIG_KEYS_RENAMING_ENV: &[(&str, &str)] = &[
    (CONFIG_JWT_SECRET_ENV, ENV_JWT_SECRET),
    (CONFIG_REDIS_URL_ENV, ENV_REDIS_URL),
];
/// Config key naming the env var of the JWT HMAC secret (default [`ENV_JWT_SECRET`]).
pub const CONFIG_JWT_SECRET_ENV: &str = "jwt_secret_env";
/// Config key naming the env var of the broker URL (default [`ENV_REDIS_URL`]).
pub const CONFIG_REDIS_URL_ENV: &str = "redis_url_env";

/// Turns the admin API (`/_pym/admin/`) and the dashboard (`/_pym/`) on:
/// `true`/`false` (config `admin: {enabled: ..}`; off by default).
pub const ENV_ADMIN_ENABLED: &str = "PYM_ADMIN_ENABLED";
/// Serve the admin API and the dashboard on this port instead of the API
/// port (config `admin: {port: ..}`).
pub const ENV_ADMIN_PORT: &str = "PYM_ADMIN_PORT";
/// Config key of the admin settings (`enabled`, `port`).
pub const CONFIG_ADMIN: &str = "admin";
/// Path prefix of the admin API.
pub const PATH_ADMIN: &str = "/_pym/admin";
/// Path of the dashboard page.
pub const PATH_DASHBOARD: &str = "/_pym/";
/// JWT claim holding the caller's admin role: `read` or `operate`.
pub const CLAIM_ADMIN: &str = "pym_admin";

/// Environment variable holding the base URL of the API `title` (the
/// `info.title` of its spec) for the client `api!` generates from it:
/// `greeter` → `PYM_API_GREETER_URL`, `pet store` → `PYM_API_PET_STORE_URL`.
pub fn env_api_url(title: &str) -> String {
    use heck::ToShoutySnakeCase;
    format!("PYM_API_{}_URL", title.to_shouty_snake_case())
}

#[cfg(test)]
#[test]
fn env_api_url_of_titles() {
    let cases = [
        ("greeter", "PYM_API_GREETER_URL"),
        ("pet store", "PYM_API_PET_STORE_URL"),
        ("PetStore", "PYM_API_PET_STORE_URL"),
        ("hello-world 2", "PYM_API_HELLO_WORLD_2_URL"),
    ];
    for (title, want) in cases {
        assert_eq!(env_api_url(title), want, "{title}");
    }
}

/// Full path of the mounted config file, as the operator sets [`ENV_CONFIG`].
pub fn config_mount_path() -> String {
    format!("{CONFIG_MOUNT_DIR}/{CONFIG_FILE_NAME}")
}
