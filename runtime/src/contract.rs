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
/// Port of the worker's health and metrics server.
pub const ENV_WORKER_PORT: &str = "PYM_WORKER_PORT";
/// Tasks in flight per worker process.
pub const ENV_WORKER_CONCURRENCY: &str = "PYM_WORKER_CONCURRENCY";
/// Comma-separated queues a worker consumes.
pub const ENV_WORKER_QUEUES: &str = "PYM_WORKER_QUEUES";
/// Stable consumer name of a worker (the operator sets the pod name).
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
    pub const TASK_DURATION_SECONDS: &str = "pym_task_duration_seconds";
    pub const TASKS_IN_FLIGHT: &str = "pym_tasks_in_flight";
    pub const HTTP_REQUESTS: &str = "pym_http_requests";
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "pym_http_request_duration_seconds";
}

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

// The queue-name rule, written once: the runtime checks names with
// [`validate_queue_name`], the operator's CRD carries [`QUEUE_NAME_PATTERN`],
// and both are built from these two pieces.
macro_rules! queue_name_punct {
    () => {
        "_.-"
    };
}
macro_rules! queue_name_max_len {
    () => {
        64
    };
}

/// Longest queue name, in bytes (the name is part of Redis keys).
pub const QUEUE_NAME_MAX_LEN: usize = queue_name_max_len!();
/// The characters a queue name may hold besides ASCII letters and digits.
pub const QUEUE_NAME_PUNCT: &str = queue_name_punct!();
/// The queue-name rule as a regular expression (RE2 and ECMA-262 alike), for
/// schemas: the `PymService` CRD's `spec.workers.queues[*]` pattern.
pub const QUEUE_NAME_PATTERN: &str = concat!(
    "^[A-Za-z0-9",
    queue_name_punct!(),
    "]{1,",
    queue_name_max_len!(),
    "}$"
);
macro_rules! queue_name_rule {
    () => {
        concat!(
            "1 to ",
            queue_name_max_len!(),
            " characters, each an ASCII letter, a digit or one of \"",
            queue_name_punct!(),
            "\""
        )
    };
}
/// The queue-name rule in words, for error messages.
pub const QUEUE_NAME_RULE: &str = queue_name_rule!();
/// The compile error of `#[asynctask(queue = "..")]` with an invalid name.
#[doc(hidden)]
pub const QUEUE_NAME_MACRO_ERROR: &str = concat!(
    "invalid queue name in #[asynctask(queue = ..)]: expected ",
    queue_name_rule!()
);

/// Whether `name` is a valid queue name ([`QUEUE_NAME_PATTERN`]). A `const fn`,
/// so `#[asynctask(queue = "..")]` checks its literal at compile time (a bad
/// name fails const evaluation with [`QUEUE_NAME_MACRO_ERROR`]).
pub const fn is_valid_queue_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > QUEUE_NAME_MAX_LEN {
        return false;
    }
    let punct = QUEUE_NAME_PUNCT.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let mut ok = c.is_ascii_alphanumeric();
        let mut j = 0;
        while !ok && j < punct.len() {
            ok = c == punct[j];
            j += 1;
        }
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Check a queue name: [`QUEUE_NAME_RULE`].
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    if is_valid_queue_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid queue name {name:?}: expected {QUEUE_NAME_RULE}"
        ))
    }
}

/// Full path of the mounted config file, as the operator sets [`ENV_CONFIG`].
pub fn config_mount_path() -> String {
    format!("{CONFIG_MOUNT_DIR}/{CONFIG_FILE_NAME}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        let long_ok = "q".repeat(QUEUE_NAME_MAX_LEN);
        let too_long = "q".repeat(QUEUE_NAME_MAX_LEN + 1);
        for ok in [
            "default",
            "emails.high-1_x",
            "_",
            "-a",
            "A9",
            long_ok.as_str(),
        ] {
            assert!(validate_queue_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "orders:v2",
            "a{b}",
            "has space",
            "tab\t",
            "é",
            "a/b",
            too_long.as_str(),
        ] {
            let e = validate_queue_name(bad).unwrap_err();
            assert!(e.contains(QUEUE_NAME_RULE), "{e}");
        }
    }

    #[test]
    fn queue_rule_text() {
        assert_eq!(QUEUE_NAME_PATTERN, "^[A-Za-z0-9_.-]{1,64}$");
        assert_eq!(
            QUEUE_NAME_RULE,
            "1 to 64 characters, each an ASCII letter, a digit or one of \"_.-\""
        );
    }
}
