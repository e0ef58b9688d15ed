//! `pym-config.yaml` loading with `PYM_*` environment overrides.
//!
//! The file (all keys optional):
//!
//! ```yaml
//! name: hello                     # service name (logs, /version)
//! version: 0.1.0                  # service version (/version)
//! port: 8080                      # HTTP port (env PYM_PORT)
//! jwt_issuer: https://hello.example   # required `iss` (env PYM_JWT_ISSUER)
//! jwt_audience: hello             # required `aud` (env PYM_JWT_AUDIENCE)
//! jwt_algorithm: HS256            # HS256 | HS384 | HS512 | RS256 | ES256 ... (env PYM_JWT_ALGORITHM)
//! jwt_secret_env: HELLO_JWT_SECRET    # env var holding the HMAC secret (default PYM_JWT_SECRET)
//! jwt_public_key_env: HELLO_JWT_PUBLIC_KEY   # env var holding a PEM public key (RS*/ES*)
//! jwt_private_key_env: HELLO_JWT_PRIVATE_KEY # env var holding a PEM private key (to mint RS*/ES*)
//! jwt_token_timeout: 86400        # lifetime in seconds of minted tokens
//! jwt_leeway: 5                   # clock skew tolerated on exp/nbf, seconds (at most 300)
//! jwt_kid: 2026-12                # key id of the current key (env PYM_JWT_KID): minted tokens carry it
//! jwt_previous_secrets_env: PYM_JWT_PREVIOUS_SECRETS  # env var holding `kid=secret,...`:
//!                                 # rotated-out HMAC secrets that still verify tokens of their kid
//! jwt_cookie: token               # also accept the token in this cookie when there is no
//!                                 # Authorization header (off by default; see README § Security)
//! with_async: true                # the service runs tasks
//! worker_concurrency: 8           # tasks in flight per worker (env PYM_WORKER_CONCURRENCY)
//! worker_port: 9090               # worker health/metrics port (env PYM_WORKER_PORT)
//! queues: [default]               # queues a worker consumes (env PYM_WORKER_QUEUES, comma-separated;
//!                                 # default: every queue of the tasks linked into the binary)
//! shards: {images: 3}             # sharded queues: each spread over N shards (producers) and
//!                                 # all read (workers); env PYM_QUEUE_SHARDS=images=3,mail=2
//! redis_url_env: PYM_REDIS_URL    # env var holding the broker URL
//! validate_responses: false       # check responses against the spec (default: on in debug builds)
//! body_limit: 2097152             # max request body, bytes; a larger Content-Length gets 413 at once
//! header_read_timeout_secs: 10    # headers must arrive within this; idle keep-alive connections
//!                                 # are closed after it too (env PYM_HEADER_READ_TIMEOUT_SECS)
//! body_timeout_secs: 30           # an operation's body must arrive within this, else 408
//!                                 # (env PYM_BODY_TIMEOUT_SECS)
//! request_timeout_secs: 60        # no answer within this: 503 (env PYM_REQUEST_TIMEOUT_SECS)
//! max_in_flight: 1024             # requests handled at once; more get 503 + Retry-After at once,
//!                                 # /healthz and /metrics excepted (env PYM_MAX_IN_FLIGHT)
//! max_connections: 10000          # open connections; when full, accepting waits for one to close
//!                                 # (env PYM_MAX_CONNECTIONS)
//! metrics_port: 9100              # serve /metrics on this port (API host) and not on `port`
//!                                 # (env PYM_METRICS_PORT; default: unset, /metrics on `port`)
//! admin: {enabled: true, port: 9200}  # the admin API (/_pym/admin/) and dashboard (/_pym/);
//!                                 # off by default (env PYM_ADMIN_ENABLED, PYM_ADMIN_PORT;
//!                                 # default port: the API's)
//! ```
//!
//! Timeouts are whole seconds from 1 to 86400; `max_in_flight` and
//! `max_connections` are from 1 to 10,000,000.
//!
//! The file is found at `--config`, else `$PYM_CONFIG`, else
//! `./pym-config.yaml`, else the defaults the service embeds. Keys starting
//! with `x-`/`x_` and pymacaron's deployment keys are ignored; any other
//! unknown key is an error naming the key and its line, as are bad values.
//! Secrets (JWT secret and keys, task secret, Redis URL) are read from the
//! environment only, once, and never printed: [`Secret`] (`secrecy::SecretString`) redacts itself.
//! `PYM_ENV` names the environment (`production` when unset): outside `dev`
//! the JWT HMAC secret and the task secret must be at least 32 bytes, and a
//! secret set but empty is an error in every mode ([`check_secret`]).

use pym_core::contract;
use pym_http::config::HttpLimits;
use pym_http::jsonwebtoken::Algorithm;
use pym_http::{HttpConfig, JwtConfig};
pub use secrecy::{ExposeSecret, SecretString as Secret};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Env overrides that are not part of the operator contract.
pub mod env {
    pub const NAME: &str = "PYM_NAME";
    pub const VERSION: &str = "PYM_VERSION";
    pub const JWT_ISSUER: &str = "PYM_JWT_ISSUER";
    pub const JWT_AUDIENCE: &str = "PYM_JWT_AUDIENCE";
    pub const JWT_ALGORITHM: &str = "PYM_JWT_ALGORITHM";
    pub const JWT_TOKEN_TIMEOUT: &str = "PYM_JWT_TOKEN_TIMEOUT";
    pub const JWT_KID: &str = "PYM_JWT_KID";
    /// Default variable of the previous HMAC secrets (`kid=secret,...`).
    pub const JWT_PREVIOUS_SECRETS: &str = "PYM_JWT_PREVIOUS_SECRETS";
    pub const WITH_ASYNC: &str = "PYM_WITH_ASYNC";
    pub const HEADER_READ_TIMEOUT_SECS: &str = "PYM_HEADER_READ_TIMEOUT_SECS";
    pub const BODY_TIMEOUT_SECS: &str = "PYM_BODY_TIMEOUT_SECS";
    pub const REQUEST_TIMEOUT_SECS: &str = "PYM_REQUEST_TIMEOUT_SECS";
    pub const MAX_IN_FLIGHT: &str = "PYM_MAX_IN_FLIGHT";
    pub const MAX_CONNECTIONS: &str = "PYM_MAX_CONNECTIONS";
}

/// The `PYM_ENV` value of development mode, where short secrets are allowed.
pub const DEV_ENV: &str = "dev";

/// `PYM_ENV` when it is not set: production rules apply unless a developer
/// says otherwise.
pub const DEFAULT_ENV: &str = "production";

/// The shortest HMAC JWT secret and task secret accepted outside
/// `PYM_ENV=dev`, in bytes (the output size of HMAC-SHA256).
pub const MIN_SECRET_BYTES: usize = 32;

/// The rule for a secret read from the variable `var`: empty or
/// whitespace-only is always refused (never a silent fallback); outside
/// development mode (`dev` false) it must be at least [`MIN_SECRET_BYTES`]
/// long. The error names the variable and what is expected, never the value.
pub fn check_secret(var: &str, value: &str, dev: bool) -> Result<(), ConfigError> {
    let make = "e.g. `openssl rand -hex 32`";
    if value.trim().is_empty() {
        return Err(env_err(
            var,
            &format!(
                "is set but empty; set it to a random secret of at least {MIN_SECRET_BYTES} bytes \
                 ({make}), or unset it"
            ),
        ));
    }
    if !dev && value.len() < MIN_SECRET_BYTES {
        return Err(env_err(
            var,
            &format!(
                "is {} bytes long; outside {}={DEV_ENV} a secret must be at least \
                 {MIN_SECRET_BYTES} bytes ({make})",
                value.len(),
                contract::ENV_ENV
            ),
        ));
    }
    Ok(())
}

mod admin;
mod custom;
pub use admin::AdminConfig;
pub use custom::{Custom, current, custom, custom_all, custom_name, install};

/// Keys of pymacaron's config that pym replaces, and what to write instead.
const PYMACARON_KEYS: &[(&str, &str)] = &[
    (
        "jwt_secret",
        "pym never reads a secret from the config file: put it in the environment variable \
         that jwt_secret_env names (default PYM_JWT_SECRET), and remove this key",
    ),
    (
        "env_jwt_secret",
        "pymacaron's env_jwt_secret is jwt_secret_env in pym: write `jwt_secret_env: <VARIABLE>`",
    ),
    (
        "env_secrets",
        "pym does not pass environment variables by list: export them locally; on Kubernetes \
         set them in the PymService's spec.env or spec.envFrom (the operator sets PYM_JWT_SECRET \
         and PYM_REDIS_URL itself)",
    ),
    (
        "worker_count",
        "use worker_concurrency (tasks at once per worker process); on Kubernetes the \
         PymService's spec.workers sets the number of worker pods",
    ),
];

/// Keys of pymacaron's config that concern deployment, accepted and ignored.
const IGNORED_KEYS: &[&str] = &[
    "live_host",
    "deploy_target",
    "docker_repo",
    "docker_bucket",
    "default_user_id",
    "ignore_error_codes",
];

/// A configuration error that says where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{file}: cannot read: {source}; set --config or {} to an existing file",
        contract::ENV_CONFIG
    )]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}:{line}: key '{key}': {message}")]
    Key {
        file: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("env {var}: {message}")]
    Env { var: String, message: String },
}

/// The loaded service configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub version: String,
    /// `PYM_ENV` ([`DEFAULT_ENV`], `production`, when unset); `dev`
    /// ([`DEV_ENV`]) allows short secrets.
    pub env: String,
    pub port: u16,
    pub jwt: JwtConfig,
    pub with_async: bool,
    pub worker_concurrency: usize,
    pub worker_port: u16,
    pub worker_name: Option<String>,
    /// Queues a worker consumes; empty = every queue of the linked tasks.
    pub queues: Vec<String>,
    /// Sharded queues (`shards`, env `PYM_QUEUE_SHARDS`), see
    /// [`pym_broker::shards`].
    pub shards: pym_broker::shards::Declared,
    pub redis_url_env: String,
    pub redis_url: Option<Secret>,
    /// `PYM_TASK_SECRET`; see [`Config::task_secret`].
    pub task_secret: Option<Secret>,
    pub validate_responses: bool,
    pub body_limit: usize,
    /// Timeouts and caps of the HTTP server.
    pub http_limits: HttpLimits,
    /// `/metrics` on its own port (`None`: on `port`).
    pub metrics_port: Option<u16>,
    /// The admin API and the dashboard (`admin:`).
    pub admin: AdminConfig,
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
    /// The service's own keys (`x-...`), see [`custom`].
    pub custom: Custom,
}

#[derive(Deserialize, Default)]
struct RawConfig {
    name: Option<String>,
    version: Option<String>,
    port: Option<u16>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    jwt_algorithm: Option<String>,
    jwt_secret_env: Option<String>,
    jwt_public_key_env: Option<String>,
    jwt_private_key_env: Option<String>,
    jwt_token_timeout: Option<u64>,
    jwt_leeway: Option<u64>,
    jwt_kid: Option<String>,
    jwt_previous_secrets_env: Option<String>,
    jwt_cookie: Option<String>,
    with_async: Option<bool>,
    worker_concurrency: Option<usize>,
    worker_port: Option<u16>,
    queues: Option<Vec<String>>,
    shards: Option<BTreeMap<String, u16>>,
    redis_url_env: Option<String>,
    validate_responses: Option<bool>,
    body_limit: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_in_flight: Option<u64>,
    max_connections: Option<u64>,
    metrics_port: Option<u16>,
    admin: Option<admin::RawAdmin>,
    #[serde(flatten)]
    rest: BTreeMap<String, yaml_serde::Value>,
}

/// Where a config comes from.
pub enum Source<'a> {
    /// A file that must exist.
    File(&'a Path),
    /// Text with a name used in errors (e.g. an embedded default).
    Text { name: &'a str, text: &'a str },
    /// No file: defaults and env only.
    None,
}

impl Config {
    /// Load the way the binary does: `explicit` (from `--config`), else
    /// `$PYM_CONFIG`, else `./pym-config.yaml` if present, else `embedded`
    /// (the service's default config text), then apply `PYM_*` overrides
    /// from the process environment.
    pub fn load(explicit: Option<&Path>, embedded: Option<&str>) -> Result<Self, ConfigError> {
        let from_env = std::env::var_os(contract::ENV_CONFIG).map(PathBuf::from);
        let local = PathBuf::from(contract::CONFIG_FILE_NAME);
        let env = |k: &str| std::env::var(k).ok();
        if let Some(p) = explicit.map(Path::to_path_buf).or(from_env) {
            Self::from_source(Source::File(&p), &env)
        } else if local.exists() {
            Self::from_source(Source::File(&local), &env)
        } else if let Some(text) = embedded {
            Self::from_source(
                Source::Text {
                    name: "<embedded pym-config.yaml>",
                    text,
                },
                &env,
            )
        } else {
            Self::from_source(Source::None, &env)
        }
    }

    /// Parse YAML text (file name `name` in errors), with env overrides from `env`.
    pub fn from_yaml(
        name: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_source(Source::Text { name, text }, env)
    }

    /// Load from `source`, with env overrides looked up with `env`.
    pub fn from_source(
        source: Source<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let (file, text, path) = read_source(source)?;
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            yaml_serde::from_str(&text).map_err(|e| ConfigError::Syntax {
                file: file.clone(),
                message: e.to_string(),
            })?
        };
        let r = Resolve {
            file: &file,
            text: &text,
            env,
        };
        r.refuse_unknown_keys(&raw)?;
        let port = r
            .parsed(contract::ENV_PORT, "set a port number", PORT_ERROR)?
            .or(raw.port)
            .unwrap_or(contract::DEFAULT_PORT);
        let worker_port = r.parsed(contract::ENV_WORKER_PORT, "set a port number", PORT_ERROR)?;
        let with_async = match r.var(env::WITH_ASYNC, "true or false")? {
            Some(v) => {
                parse_bool(&v).ok_or_else(|| env_err(env::WITH_ASYNC, "expected true or false"))?
            }
            None => raw.with_async.unwrap_or(true),
        };
        let body_limit = match raw.body_limit {
            Some(0) => return Err(r.key_err("body_limit", "must be at least 1 byte".into())),
            Some(n) => n,
            None => 2 * 1024 * 1024,
        };
        let env_name = r
            .var(contract::ENV_ENV, "set dev, staging, production, ...")?
            .map_or_else(|| DEFAULT_ENV.to_string(), |v| v.trim().to_string());
        let dev = env_name == DEV_ENV;
        let redis_url_env = r.env_name(
            contract::CONFIG_REDIS_URL_ENV,
            raw.redis_url_env.clone(),
            contract::ENV_REDIS_URL,
        )?;
        Ok(Config {
            name: r
                .var(env::NAME, "set a service name")?
                .or(raw.name.clone())
                .unwrap_or_else(|| "pym-service".into()),
            version: r
                .var(env::VERSION, "set a version")?
                .or(raw.version.clone())
                .unwrap_or_else(|| "0.0.0".into()),
            env: env_name,
            port,
            jwt: r.jwt(&raw, dev)?,
            with_async,
            worker_concurrency: r.worker_concurrency(raw.worker_concurrency)?,
            worker_port: worker_port
                .or(raw.worker_port)
                .unwrap_or(contract::DEFAULT_WORKER_PORT),
            worker_name: env(contract::ENV_WORKER_NAME).filter(|s| !s.is_empty()),
            queues: r.queues(raw.queues.as_deref())?,
            shards: r.shards(raw.shards.as_ref())?,
            redis_url: r.secret(Some(&redis_url_env)),
            redis_url_env,
            task_secret: r.checked_secret(contract::ENV_TASK_SECRET, dev)?,
            validate_responses: raw.validate_responses.unwrap_or(cfg!(debug_assertions)),
            body_limit,
            http_limits: r.http_limits(&raw)?,
            metrics_port: r.metrics_port(raw.metrics_port, port)?,
            admin: r.admin(raw.admin, port)?,
            source: path,
            custom: Custom::of(&file, &raw.rest, |k| line_of(&text, k)),
        })
    }

    /// Development mode (`PYM_ENV=dev`): short secrets allowed.
    pub fn is_dev(&self) -> bool {
        self.env == DEV_ENV
    }

    /// The secret that signs task envelopes: `PYM_TASK_SECRET`, else the JWT
    /// HMAC secret.
    pub fn task_secret(&self) -> Option<&Secret> {
        self.task_secret.as_ref().or(self.jwt.secret.as_ref())
    }
}

impl From<&Config> for HttpConfig {
    fn from(c: &Config) -> Self {
        HttpConfig {
            name: c.name.clone(),
            version: c.version.clone(),
            env: c.env.clone(),
            jwt: c.jwt.clone(),
            validate_responses: c.validate_responses,
            body_limit: c.body_limit,
            limits: c.http_limits,
            metrics_port: c.metrics_port,
        }
    }
}

impl From<Config> for HttpConfig {
    fn from(c: Config) -> Self {
        HttpConfig::from(&c)
    }
}

const PORT_ERROR: &str = "not a port number (1-65535)";

/// The file name (for errors), the text and the path of a config source.
fn read_source(source: Source<'_>) -> Result<(String, String, Option<PathBuf>), ConfigError> {
    Ok(match source {
        Source::File(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                file: p.display().to_string(),
                source: e,
            })?;
            (p.display().to_string(), text, Some(p.to_path_buf()))
        }
        Source::Text { name, text } => (name.to_string(), text.to_string(), None),
        Source::None => ("<defaults>".to_string(), String::new(), None),
    })
}

fn env_err(var: &str, message: &str) -> ConfigError {
    ConfigError::Env {
        var: var.to_string(),
        message: message.to_string(),
    }
}

/// Resolves each setting from the environment, else the file, else its
/// default, with errors that name the variable or the file, line and key.
struct Resolve<'a> {
    file: &'a str,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolve<'_> {
    fn key_err(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Key {
            file: self.file.to_string(),
            line: line_of(self.text, key),
            key: key.to_string(),
            message,
        }
    }

    fn refuse_unknown_keys(&self, raw: &RawConfig) -> Result<(), ConfigError> {
        for k in raw.rest.keys() {
            if let Some((_, instead)) = PYMACARON_KEYS.iter().find(|(p, _)| p == k) {
                return Err(self.key_err(k, (*instead).to_string()));
            }
        }
        match raw
            .rest
            .keys()
            .find(|k| custom_name(k).is_none() && !IGNORED_KEYS.contains(&k.as_str()))
        {
            Some(k) => Err(self.key_err(
                k,
                "unknown key; see the pym-config.yaml reference (pym_runtime::config); \
                 prefix custom keys with 'x-'"
                    .into(),
            )),
            None => Ok(()),
        }
    }

    /// The variable `var`, if set; set but empty is an error (`what` to do).
    fn var(&self, var: &str, what: &str) -> Result<Option<String>, ConfigError> {
        match (self.env)(var) {
            Some(v) if v.trim().is_empty() => Err(env_err(var, &format!("is empty; {what}"))),
            other => Ok(other),
        }
    }

    /// The variable `var` parsed as a `T`, if set (`bad`: why a value is refused).
    fn parsed<T: FromStr>(
        &self,
        var: &str,
        what: &str,
        bad: &str,
    ) -> Result<Option<T>, ConfigError> {
        self.var(var, what)?
            .map(|v| v.trim().parse::<T>().map_err(|_| env_err(var, bad)))
            .transpose()
    }

    /// The non-empty value of the variable named `var`, as a secret.
    fn secret(&self, var: Option<&str>) -> Option<Secret> {
        var.and_then(self.env)
            .filter(|s| !s.is_empty())
            .map(Secret::from)
    }

    /// The variable `var` as a secret that follows [`check_secret`], if set.
    fn checked_secret(&self, var: &str, dev: bool) -> Result<Option<Secret>, ConfigError> {
        (self.env)(var)
            .map(|v| check_secret(var, &v, dev).map(|()| Secret::from(v)))
            .transpose()
    }

    /// A `*_env` key: the name of a variable (default `default`).
    fn env_name(&self, key: &str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
        let v = v.unwrap_or_else(|| default.into());
        if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(self.key_err(
                key,
                format!(
                    "'{v}' is not an environment variable name (name the variable, not its value)"
                ),
            ));
        }
        Ok(v)
    }

    fn optional_env_name(
        &self,
        key: &str,
        v: &Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        v.as_ref()
            .map(|v| self.env_name(key, Some(v.clone()), ""))
            .transpose()
    }

    fn worker_concurrency(&self, raw: Option<usize>) -> Result<usize, ConfigError> {
        let bad = "not a positive whole number";
        match self.parsed::<usize>(contract::ENV_WORKER_CONCURRENCY, "set a number", bad)? {
            Some(0) => Err(env_err(contract::ENV_WORKER_CONCURRENCY, bad)),
            Some(n) => Ok(n),
            None => match raw {
                Some(0) => Err(self.key_err("worker_concurrency", "must be at least 1".into())),
                Some(n) => Ok(n),
                None => Ok(2 * std::thread::available_parallelism().map_or(1, |n| n.get())),
            },
        }
    }

    /// A whole number from 1 to `max`: the variable `var`, else the file's
    /// `key`, else `default`.
    fn bounded(
        &self,
        var: &str,
        key: &str,
        raw: Option<u64>,
        default: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let range = format!("a whole number from 1 to {max}");
        let bad = format!("not {range}");
        if let Some(n) = self.parsed::<u64>(var, &format!("set {range}"), &bad)? {
            return match n {
                0 => Err(env_err(var, &bad)),
                n if n > max => Err(env_err(var, &bad)),
                n => Ok(n),
            };
        }
        match raw {
            Some(n) if n == 0 || n > max => {
                Err(self.key_err(key, format!("is {n}; expected {range}")))
            }
            Some(n) => Ok(n),
            None => Ok(default),
        }
    }

    fn http_limits(&self, raw: &RawConfig) -> Result<HttpLimits, ConfigError> {
        let d = HttpLimits::DEFAULT;
        let max_secs = HttpLimits::MAX_TIMEOUT_SECS;
        let secs = |var: &str, key: &str, raw: Option<u64>, default: Duration| {
            self.bounded(var, key, raw, default.as_secs(), max_secs)
                .map(Duration::from_secs)
        };
        let max_count = HttpLimits::MAX_COUNT as u64;
        let count = |var: &str, key: &str, raw: Option<u64>, default: usize| {
            self.bounded(var, key, raw, default as u64, max_count)
                .map(|n| n as usize)
        };
        Ok(HttpLimits {
            header_read_timeout: secs(
                env::HEADER_READ_TIMEOUT_SECS,
                "header_read_timeout_secs",
                raw.header_read_timeout_secs,
                d.header_read_timeout,
            )?,
            body_timeout: secs(
                env::BODY_TIMEOUT_SECS,
                "body_timeout_secs",
                raw.body_timeout_secs,
                d.body_timeout,
            )?,
            request_timeout: secs(
                env::REQUEST_TIMEOUT_SECS,
                "request_timeout_secs",
                raw.request_timeout_secs,
                d.request_timeout,
            )?,
            max_in_flight: count(
                env::MAX_IN_FLIGHT,
                "max_in_flight",
                raw.max_in_flight,
                d.max_in_flight,
            )?,
            max_connections: count(
                env::MAX_CONNECTIONS,
                "max_connections",
                raw.max_connections,
                d.max_connections,
            )?,
        })
    }

    /// `metrics_port`: a port other than the API's, or none.
    fn metrics_port(&self, raw: Option<u16>, port: u16) -> Result<Option<u16>, ConfigError> {
        let var = contract::ENV_METRICS_PORT;
        let what = format!("a port number (1-65535) other than the API port {port}");
        let check = |p: u16| p != 0 && p != port;
        if let Some(p) = self.parsed::<u16>(var, "set a port number", PORT_ERROR)? {
            return if check(p) {
                Ok(Some(p))
            } else {
                Err(env_err(var, &format!("is {p}; expected {what}")))
            };
        }
        match raw {
            Some(p) if !check(p) => Err(self.key_err(
                contract::CONFIG_METRICS_PORT,
                format!("is {p}; expected {what}"),
            )),
            other => Ok(other),
        }
    }

    fn queues(&self, raw: Option<&[String]>) -> Result<Vec<String>, ConfigError> {
        if let Some(v) = self.var(contract::ENV_WORKER_QUEUES, "list queue names")? {
            return split_queues(&v).map_err(|m| env_err(contract::ENV_WORKER_QUEUES, &m));
        }
        let Some(q) = raw else {
            return Ok(Vec::new());
        };
        let q = split_queues(&q.join(",")).map_err(|m| self.key_err("queues", m))?;
        if q.is_empty() {
            return Err(self.key_err("queues", "list at least one queue".into()));
        }
        Ok(q)
    }

    fn shards(
        &self,
        raw: Option<&BTreeMap<String, u16>>,
    ) -> Result<pym_broker::shards::Declared, ConfigError> {
        use pym_broker::shards;
        if let Some(v) = self.var(contract::ENV_QUEUE_SHARDS, "e.g. images=3,mail=2")? {
            return shards::parse(&v).map_err(|m| env_err(contract::ENV_QUEUE_SHARDS, &m));
        }
        let mut out = shards::Declared::new();
        for (queue, n) in raw.into_iter().flatten() {
            shards::declare(&mut out, queue, *n).map_err(|m| self.key_err("shards", m))?;
        }
        Ok(out)
    }

    fn algorithm(&self, raw: Option<&str>) -> Result<Algorithm, ConfigError> {
        if let Some(v) = self.var(env::JWT_ALGORITHM, "e.g. HS256")? {
            return Algorithm::from_str(v.trim()).map_err(|_| {
                env_err(
                    env::JWT_ALGORITHM,
                    "unknown algorithm; use HS256, RS256, ES256, ...",
                )
            });
        }
        match raw {
            Some(a) => Algorithm::from_str(a.trim()).map_err(|_| {
                self.key_err(
                    "jwt_algorithm",
                    format!("unknown algorithm '{a}'; use HS256, HS384, HS512, RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA"),
                )
            }),
            None => Ok(Algorithm::HS256),
        }
    }

    fn jwt(&self, raw: &RawConfig, dev: bool) -> Result<JwtConfig, ConfigError> {
        let algorithm = self.algorithm(raw.jwt_algorithm.as_deref())?;
        let token_timeout = self
            .parsed(env::JWT_TOKEN_TIMEOUT, "seconds", "not a number of seconds")?
            .or(raw.jwt_token_timeout)
            .unwrap_or(86_400);
        let secret_env = self.env_name(
            contract::CONFIG_JWT_SECRET_ENV,
            raw.jwt_secret_env.clone(),
            contract::ENV_JWT_SECRET,
        )?;
        let public_key_env =
            self.optional_env_name("jwt_public_key_env", &raw.jwt_public_key_env)?;
        let private_key_env =
            self.optional_env_name("jwt_private_key_env", &raw.jwt_private_key_env)?;
        let leeway = JwtConfig::check_leeway(raw.jwt_leeway.unwrap_or(5))
            .map_err(|m| self.key_err("jwt_leeway", m))?;
        let kid = self.kid(raw.jwt_kid.as_deref())?;
        let previous_secrets_env = self.env_name(
            "jwt_previous_secrets_env",
            raw.jwt_previous_secrets_env.clone(),
            env::JWT_PREVIOUS_SECRETS,
        )?;
        let previous_secrets = match (self.env)(&previous_secrets_env) {
            Some(v) => parse_previous_secrets(&previous_secrets_env, &v, kid.as_deref(), dev)?,
            None => Vec::new(),
        };
        Ok(JwtConfig {
            issuer: self
                .var(env::JWT_ISSUER, "set the issuer")?
                .or(raw.jwt_issuer.clone()),
            audience: self
                .var(env::JWT_AUDIENCE, "set the audience")?
                .or(raw.jwt_audience.clone()),
            algorithm,
            secret: self.checked_secret(&secret_env, dev)?,
            secret_env,
            public_key: self.secret(public_key_env.as_deref()),
            public_key_env,
            private_key: self.secret(private_key_env.as_deref()),
            private_key_env,
            token_timeout,
            leeway,
            kid,
            previous_secrets_env,
            previous_secrets,
            cookie: match raw.jwt_cookie.as_deref() {
                Some(name) => Some(
                    JwtConfig::check_cookie(name)
                        .map(|()| name.to_string())
                        .map_err(|m| self.key_err("jwt_cookie", m))?,
                ),
                None => None,
            },
        })
    }

    /// `PYM_JWT_KID`, else `jwt_kid`, following [`JwtConfig::check_kid`].
    fn kid(&self, raw: Option<&str>) -> Result<Option<String>, ConfigError> {
        if let Some(v) = self.var(env::JWT_KID, "name the current JWT key")? {
            let v = v.trim().to_string();
            JwtConfig::check_kid(&v).map_err(|m| env_err(env::JWT_KID, &m))?;
            return Ok(Some(v));
        }
        raw.map(|k| {
            JwtConfig::check_kid(k)
                .map(|()| k.to_string())
                .map_err(|m| self.key_err("jwt_kid", m))
        })
        .transpose()
    }
}

/// The previous HMAC secrets in `value` (read from `var`): `kid=secret`
/// entries separated by commas. Each kid follows [`JwtConfig::check_kid`],
/// is unique and is not the current key's `current`; each secret follows
/// [`check_secret`]. Errors name the variable and the entry, never a secret.
pub fn parse_previous_secrets(
    var: &str,
    value: &str,
    current: Option<&str>,
    dev: bool,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    if value.trim().is_empty() {
        return Err(env_err(
            var,
            "is set but empty; list kid=secret pairs, or unset it",
        ));
    }
    let mut out: Vec<(String, Secret)> = Vec::new();
    for (i, entry) in value.split(',').map(str::trim).enumerate() {
        let n = i + 1;
        let Some((kid, secret)) = entry.split_once('=') else {
            return Err(env_err(
                var,
                &format!("entry {n} is not kid=secret (entries are separated by commas)"),
            ));
        };
        let kid = kid.trim();
        JwtConfig::check_kid(kid).map_err(|m| env_err(var, &format!("entry {n}: {m}")))?;
        if current == Some(kid) || out.iter().any(|(k, _)| k == kid) {
            return Err(env_err(
                var,
                &format!("entry {n}: kid '{kid}' is already used (by jwt_kid or another entry)"),
            ));
        }
        check_secret(&format!("{var} (kid {kid})"), secret, dev)?;
        out.push((kid.to_string(), Secret::from(secret.to_string())));
    }
    Ok(out)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn split_queues(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for q in v.split(',').map(str::trim).filter(|q| !q.is_empty()) {
        contract::validate_queue_name(q)?;
        if !out.iter().any(|x| x == q) {
            out.push(q.to_string());
        }
    }
    Ok(out)
}

/// 1-based line of top-level `key:` in `text` (0 if not found).
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
                || l.strip_prefix(&format!("\"{key}\""))
                    .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let c = Config::from_source(Source::None, &env_of(&[])).unwrap();
        assert_eq!(c.port, contract::DEFAULT_PORT);
        assert!(
            c.queues.is_empty(),
            "empty = every queue of the linked tasks"
        );
        assert_eq!(c.jwt.algorithm, Algorithm::HS256);
        assert!(c.jwt.secret.is_none());
    }

    #[test]
    fn file_and_env_overrides() {
        let y = "name: hello\nport: 8000\njwt_secret_env: HELLO_SECRET\nqueues: [default, mail]\n";
        let c = Config::from_yaml(
            "pym-config.yaml",
            y,
            &env_of(&[
                ("PYM_PORT", "9000"),
                ("PYM_ENV", "dev"),
                ("HELLO_SECRET", "s3cr3t"),
                ("PYM_WORKER_QUEUES", "a,b"),
            ]),
        )
        .unwrap();
        assert_eq!(c.name, "hello");
        assert_eq!(c.port, 9000);
        assert_eq!(c.queues, vec!["a", "b"]);
        assert_eq!(c.jwt.secret.as_ref().unwrap().expose_secret(), "s3cr3t");
        assert_eq!(c.task_secret().unwrap().expose_secret(), "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    /// Every key of `contract::CONFIG_KEYS_RENAMING_ENV` is a config key that
    /// makes the runtime read another variable than the one it renames.
    #[test]
    fn renaming_keys_rename() {
        let read = |c: &Config, var: &str| match var {
            contract::ENV_JWT_SECRET => {
                c.jwt.secret.as_ref().map(|s| s.expose_secret().to_string())
            }
            contract::ENV_REDIS_URL => c.redis_url.as_ref().map(|s| s.expose_secret().to_string()),
            other => panic!("no test reader for {other}: add one"),
        };
        for &(key, var) in contract::CONFIG_KEYS_RENAMING_ENV {
            let pairs = [
                (var, "injected"),
                ("OTHER_VAR", "renamed"),
                ("PYM_ENV", "dev"),
            ];
            let env = env_of(&pairs);
            let c = Config::from_yaml("c", "", &env).unwrap();
            assert_eq!(read(&c, var).as_deref(), Some("injected"), "{key}");
            let c = Config::from_yaml("c", &format!("{key}: OTHER_VAR\n"), &env).unwrap();
            assert_eq!(read(&c, var).as_deref(), Some("renamed"), "{key}");
        }
    }

    #[test]
    fn queue_names_follow_the_contract() {
        let too_long = "x".repeat(contract::QUEUE_NAME_MAX_LEN + 1);
        for (yaml, env) in [
            ("queues: ['orders:v2']\n", vec![]),
            ("", vec![("PYM_WORKER_QUEUES", "default,orders:v2")]),
            ("", vec![("PYM_WORKER_QUEUES", too_long.as_str())]),
        ] {
            let e = Config::from_yaml("c.yaml", yaml, &env_of(&env))
                .unwrap_err()
                .to_string();
            assert!(e.contains(contract::QUEUE_NAME_RULE), "{e}");
        }
        let c = Config::from_yaml("c", "queues: [a.b, c-d, e_f, a.b]\n", &env_of(&[])).unwrap();
        assert_eq!(c.queues, vec!["a.b", "c-d", "e_f"]);
    }

    #[test]
    fn shards_are_declared_in_the_file_or_the_environment() {
        type Env<'a> = &'a [(&'a str, &'a str)];
        type Want<'a> = Result<&'a [(&'a str, u16)], &'a str>;
        let table: [(&str, Env, Want); 6] = [
            ("shards: {images: 3, mail: 1}\n", &[], Ok(&[("images", 3)])),
            (
                "",
                &[("PYM_QUEUE_SHARDS", "a=2,b=4")],
                Ok(&[("a", 2), ("b", 4)]),
            ),
            (
                "shards: {images: 3}\n",
                &[("PYM_QUEUE_SHARDS", "")],
                Err("env PYM_QUEUE_SHARDS: is empty"),
            ),
            (
                "shards: {images: 0}\n",
                &[],
                Err("key 'shards': queue `images`: 0 shards; expected a number from 1 to 256"),
            ),
            ("shards: {'a:b': 2}\n", &[], Err(contract::QUEUE_NAME_RULE)),
            (
                "",
                &[("PYM_QUEUE_SHARDS", "images")],
                Err("PYM_QUEUE_SHARDS"),
            ),
        ];
        for (yaml, env, want) in table {
            let got = Config::from_yaml("c.yaml", yaml, &env_of(env));
            match (got, want) {
                (Ok(c), Ok(want)) => {
                    let want: Vec<(String, u16)> =
                        want.iter().map(|(q, n)| (q.to_string(), *n)).collect();
                    assert_eq!(c.shards.into_iter().collect::<Vec<_>>(), want, "{yaml}");
                }
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{yaml}: {e}"),
                (got, want) => panic!("{yaml} {env:?}: {:?} vs {want:?}", got.map(|c| c.shards)),
            }
        }
    }

    #[test]
    fn task_secret_preferred() {
        let c = Config::from_yaml(
            "f",
            "",
            &env_of(&[
                ("PYM_JWT_SECRET", "a"),
                ("PYM_TASK_SECRET", "b"),
                ("PYM_ENV", "dev"),
            ]),
        )
        .unwrap();
        assert_eq!(c.task_secret().unwrap().expose_secret(), "b");
    }

    /// A row of the secret rule table: name, value, dev mode, and Ok or
    /// the words the error has.
    type SecretRow<'a> = (&'a str, &'a str, bool, Result<(), &'a [&'a str]>);

    /// The secret rule: (value, dev mode) → accepted, or the words the error has.
    #[test]
    fn secret_rule_table() {
        let long = "x".repeat(MIN_SECRET_BYTES);
        let short = "x".repeat(MIN_SECRET_BYTES - 1);
        let rows: [SecretRow<'_>; 10] = [
            ("32 bytes, production", &long, false, Ok(())),
            ("32 bytes, dev", &long, true, Ok(())),
            ("31 bytes, dev", &short, true, Ok(())),
            ("1 byte, dev", "s", true, Ok(())),
            (
                "31 bytes, production",
                &short,
                false,
                Err(&["V", "31 bytes", "at least 32", "PYM_ENV=dev"]),
            ),
            (
                "10 bytes, production",
                "0123456789",
                false,
                Err(&["V", "10 bytes", "at least 32"]),
            ),
            (
                "empty, production",
                "",
                false,
                Err(&["V", "empty", "at least 32"]),
            ),
            ("empty, dev", "", true, Err(&["V", "empty"])),
            ("whitespace, dev", "  \t ", true, Err(&["V", "empty"])),
            (
                "whitespace, production",
                &" ".repeat(40),
                false,
                Err(&["V", "empty"]),
            ),
        ];
        for (name, value, dev, want) in rows {
            match (check_secret("V", value, dev), want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(words)) => {
                    let e = e.to_string();
                    for w in words {
                        assert!(e.contains(w), "{name}: {e:?} lacks {w:?}");
                    }
                    assert!(
                        value.trim().is_empty() || !e.contains(value),
                        "{name}: leaks the value"
                    );
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// Outside dev mode (the default), short or empty secrets stop loading,
    /// naming the variable; `PYM_ENV=dev` allows short ones.
    #[test]
    fn secrets_checked_at_load() {
        let c = Config::from_yaml("c", "", &env_of(&[])).unwrap();
        assert_eq!(c.env, DEFAULT_ENV);
        assert!(!c.is_dev());
        for (var, yaml) in [
            ("PYM_JWT_SECRET", ""),
            ("HELLO_SECRET", "jwt_secret_env: HELLO_SECRET\n"),
            ("PYM_TASK_SECRET", ""),
        ] {
            let e = Config::from_yaml("c", yaml, &env_of(&[(var, "0123456789")]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(var) && e.contains("at least 32"), "{e}");
            let e = Config::from_yaml("c", yaml, &env_of(&[(var, " "), ("PYM_ENV", "dev")]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(var) && e.contains("empty"), "{e}");
            let c = Config::from_yaml(
                "c",
                yaml,
                &env_of(&[(var, "0123456789"), ("PYM_ENV", "dev")]),
            )
            .unwrap();
            assert!(c.is_dev() && c.task_secret().is_some(), "{var}");
        }
        let e = Config::from_yaml("c", "", &env_of(&[("PYM_ENV", " ")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PYM_ENV"), "{e}");
    }

    /// `jwt_leeway` above 300 s stops loading, naming the file, line and key.
    #[test]
    fn leeway_is_bounded() {
        let c = Config::from_yaml("c", "", &env_of(&[])).unwrap();
        assert_eq!(c.jwt.leeway, 5);
        let c = Config::from_yaml("c", "jwt_leeway: 300\n", &env_of(&[])).unwrap();
        assert_eq!(c.jwt.leeway, 300);
        let e = Config::from_yaml("c.yaml", "name: a\njwt_leeway: 3600\n", &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.yaml:2") && e.contains("jwt_leeway") && e.contains("300 s"),
            "{e}"
        );
    }

    /// value, current kid, dev mode → the kids, or the words the error has.
    type PreviousRow<'a> = (
        String,
        Option<&'a str>,
        bool,
        Result<Vec<&'a str>, Vec<&'a str>>,
    );

    /// `PYM_JWT_PREVIOUS_SECRETS`: value, current kid, dev → kids, or the
    /// words the error has (never the secret).
    #[test]
    fn previous_secrets_table() {
        let a = "a".repeat(MIN_SECRET_BYTES);
        let b = "b".repeat(MIN_SECRET_BYTES);
        let v = "PYM_JWT_PREVIOUS_SECRETS";
        let rows: Vec<PreviousRow<'_>> = vec![
            (format!("k1={a}"), Some("k2"), false, Ok(vec!["k1"])),
            (
                format!("k1={a}, k0={b}"),
                Some("k2"),
                false,
                Ok(vec!["k1", "k0"]),
            ),
            (format!("k1={a}=="), Some("k2"), false, Ok(vec!["k1"])),
            ("k1=short".into(), Some("k2"), true, Ok(vec!["k1"])),
            (
                "k1=short".into(),
                Some("k2"),
                false,
                Err(vec![v, "kid k1", "at least 32"]),
            ),
            (
                a.clone(),
                Some("k2"),
                false,
                Err(vec![v, "entry 1", "kid=secret"]),
            ),
            (
                format!("k1={a},"),
                Some("k2"),
                false,
                Err(vec![v, "entry 2"]),
            ),
            (
                format!("k2={a}"),
                Some("k2"),
                false,
                Err(vec![v, "'k2'", "already used"]),
            ),
            (
                format!("k1={a},k1={b}"),
                Some("k2"),
                false,
                Err(vec!["entry 2", "'k1'"]),
            ),
            (
                format!("bad kid={a}"),
                Some("k2"),
                false,
                Err(vec![v, "entry 1", "kid"]),
            ),
            (
                format!("k1= {}", " ".repeat(40)),
                Some("k2"),
                false,
                Err(vec!["kid k1", "empty"]),
            ),
            (" ".into(), Some("k2"), false, Err(vec![v, "empty"])),
        ];
        for (value, current, dev, want) in rows {
            match (parse_previous_secrets(v, &value, current, dev), want) {
                (Ok(got), Ok(kids)) => {
                    let got: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
                    assert_eq!(got, kids, "{value}");
                }
                (Err(e), Err(words)) => {
                    let e = e.to_string();
                    for w in words {
                        assert!(e.contains(w), "{value}: {e:?} lacks {w:?}");
                    }
                    assert!(
                        !e.contains(&a) && !e.contains(&b) && !e.contains("short"),
                        "{e}"
                    );
                }
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// `jwt_kid` / `PYM_JWT_KID` and the previous secrets reach `JwtConfig`.
    #[test]
    fn kid_and_previous_secrets_load() {
        let old = "o".repeat(MIN_SECRET_BYTES);
        let prev = format!("k1={old}");
        let pairs = [("PYM_JWT_PREVIOUS_SECRETS", prev.as_str())];
        let c = Config::from_yaml("c", "jwt_kid: k2\n", &env_of(&pairs)).unwrap();
        assert_eq!(c.jwt.kid.as_deref(), Some("k2"));
        assert_eq!(c.jwt.previous_secrets.len(), 1);
        assert_eq!(c.jwt.previous_secrets[0].0, "k1");
        assert!(!format!("{c:?}").contains(&old));
        let c = Config::from_yaml("c", "jwt_kid: k2\n", &env_of(&[("PYM_JWT_KID", "k3")])).unwrap();
        assert_eq!(c.jwt.kid.as_deref(), Some("k3"));
        let yaml = "jwt_kid: k2\njwt_previous_secrets_env: OLD_KEYS\n";
        let c = Config::from_yaml("c", yaml, &env_of(&[("OLD_KEYS", prev.as_str())])).unwrap();
        assert_eq!(c.jwt.previous_secrets_env, "OLD_KEYS");
        assert_eq!(c.jwt.previous_secrets.len(), 1);
        let e = Config::from_yaml("c.yaml", "jwt_kid: 'a b'\n", &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml:1") && e.contains("jwt_kid"), "{e}");
        let e = Config::from_yaml("c", "", &env_of(&[("PYM_JWT_KID", "a=b")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PYM_JWT_KID"), "{e}");
    }

    #[test]
    fn unknown_key_names_line() {
        let e = Config::from_yaml("cfg.yaml", "name: a\n\nprot: 80\n", &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cfg.yaml:3"), "{e}");
        assert!(e.contains("prot"), "{e}");
        // x- keys and pymacaron deployment keys are fine
        Config::from_yaml("c", "x-team: a\nlive_host: h\n", &env_of(&[])).unwrap();
    }

    #[test]
    fn pymacaron_keys_say_what_to_write_instead() {
        let cases = [
            (
                "jwt_secret: s3cret\n",
                "jwt_secret",
                "put it in the environment variable that jwt_secret_env names",
            ),
            (
                "env_jwt_secret: JWT\n",
                "env_jwt_secret",
                "write `jwt_secret_env: <VARIABLE>`",
            ),
            (
                "env_secrets: [A, B]\n",
                "env_secrets",
                "spec.env or spec.envFrom",
            ),
            (
                "worker_count: 4\n",
                "worker_count",
                "use worker_concurrency",
            ),
        ];
        for (yaml, key, hint) in cases {
            let e = Config::from_yaml("cfg.yaml", &format!("name: a\n{yaml}"), &env_of(&[]))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("cfg.yaml:2: key '{key}': ")), "{e}");
            assert!(e.contains(hint), "{key}: {e}");
            assert!(!e.contains("s3cret"), "the value is not echoed: {e}");
        }
    }

    #[test]
    fn custom_keys_read_typed() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Limits {
            per_day: u32,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Mine {
            welcome_text: String,
            limits: Limits,
        }
        let yaml = "name: a\nx-welcome_text: Hi\nx_limits: {per_day: 10}\nx-count: many\n";
        let c = Config::from_yaml("cfg.yaml", yaml, &env_of(&[])).unwrap();
        let custom = &c.custom;
        assert_eq!(
            custom.names().collect::<Vec<_>>(),
            ["count", "limits", "welcome_text"]
        );
        assert_eq!(
            custom.get::<String>("welcome_text").unwrap().as_deref(),
            Some("Hi")
        );
        assert_eq!(
            custom.get::<Limits>("limits").unwrap(),
            Some(Limits { per_day: 10 })
        );
        assert_eq!(custom.get::<String>("absent").unwrap(), None);
        let e = custom.get::<u32>("count").unwrap_err().to_string();
        assert!(
            e.starts_with("cfg.yaml:4: key 'x-count': expected u32: "),
            "{e}"
        );
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Two {
            welcome_text: String,
            limits: Limits,
            count: String,
        }
        let two: Two = custom.all().unwrap();
        assert_eq!(two.limits.per_day, 10);
        let mine: Mine = custom.all().unwrap();
        assert_eq!(mine.welcome_text, "Hi");
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Wrong {
            count: u32,
        }
        let e = custom.all::<Wrong>().unwrap_err().to_string();
        assert!(
            e.starts_with("cfg.yaml: custom keys (x-...): expected "),
            "{e}"
        );
    }

    #[test]
    fn bad_type_names_line() {
        let e = Config::from_yaml("cfg.yaml", "name: a\nport: lots\n", &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn http_limits_defaults_file_and_env() {
        let c = Config::from_source(Source::None, &env_of(&[])).unwrap();
        assert_eq!(c.http_limits, HttpLimits::DEFAULT);
        assert_eq!(c.metrics_port, None);
        let y = "header_read_timeout_secs: 2\nbody_timeout_secs: 3\nrequest_timeout_secs: 4\n\
                 max_in_flight: 5\nmax_connections: 6\nmetrics_port: 9100\n";
        let c = Config::from_yaml("c", y, &env_of(&[])).unwrap();
        let l = c.http_limits;
        assert_eq!(l.header_read_timeout, Duration::from_secs(2));
        assert_eq!(l.body_timeout, Duration::from_secs(3));
        assert_eq!(l.request_timeout, Duration::from_secs(4));
        assert_eq!((l.max_in_flight, l.max_connections), (5, 6));
        assert_eq!(c.metrics_port, Some(9100));
        let h = HttpConfig::from(&c);
        assert_eq!((h.limits, h.metrics_port), (l, Some(9100)));
        let c = Config::from_yaml(
            "c",
            y,
            &env_of(&[
                (env::HEADER_READ_TIMEOUT_SECS, "20"),
                (env::BODY_TIMEOUT_SECS, "30"),
                (env::REQUEST_TIMEOUT_SECS, "40"),
                (env::MAX_IN_FLIGHT, "50"),
                (env::MAX_CONNECTIONS, "60"),
                (contract::ENV_METRICS_PORT, "9101"),
            ]),
        )
        .unwrap();
        let l = c.http_limits;
        assert_eq!(l.header_read_timeout, Duration::from_secs(20));
        assert_eq!(l.body_timeout, Duration::from_secs(30));
        assert_eq!(l.request_timeout, Duration::from_secs(40));
        assert_eq!((l.max_in_flight, l.max_connections), (50, 60));
        assert_eq!(c.metrics_port, Some(9101));
    }

    #[test]
    fn bad_http_limits_name_the_key() {
        for (yaml, words) in [
            (
                "name: a\nbody_timeout_secs: 0\n",
                &["c.yaml:2", "body_timeout_secs", "from 1 to 86400"][..],
            ),
            (
                "request_timeout_secs: 86401\n",
                &["c.yaml:1", "request_timeout_secs", "86400"],
            ),
            ("max_in_flight: 0\n", &["max_in_flight", "from 1 to"]),
            ("max_connections: -1\n", &["max_connections"]),
            (
                "header_read_timeout_secs: 10s\n",
                &["header_read_timeout_secs"],
            ),
            (
                "metrics_port: 8080\n",
                &["metrics_port", "other than the API port 8080"],
            ),
            (
                "port: 9000\nmetrics_port: 9000\n",
                &["c.yaml:2", "metrics_port"],
            ),
            ("metrics_port: 0\n", &["metrics_port"]),
        ] {
            let e = Config::from_yaml("c.yaml", yaml, &env_of(&[]))
                .unwrap_err()
                .to_string();
            for w in words {
                assert!(e.contains(w), "{yaml:?}: {e:?} lacks {w:?}");
            }
        }
        for (var, value) in [
            (env::HEADER_READ_TIMEOUT_SECS, "0"),
            (env::BODY_TIMEOUT_SECS, "ten"),
            (env::MAX_CONNECTIONS, "99999999999"),
            (env::MAX_IN_FLIGHT, " "),
            (contract::ENV_METRICS_PORT, "8080"),
            (contract::ENV_METRICS_PORT, "70000"),
        ] {
            let e = Config::from_yaml("c.yaml", "", &env_of(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(var), "{var}={value:?}: {e}");
        }
    }

    #[test]
    fn bad_values() {
        let e = Config::from_yaml("c.yaml", "jwt_algorithm: XX1\n", &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml:1") && e.contains("jwt_algorithm"), "{e}");
        let e = Config::from_yaml("c.yaml", "name: a\nworker_concurrency: 0\n", &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml:2"), "{e}");
        let e = Config::from_yaml("c.yaml", "", &env_of(&[("PYM_PORT", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PYM_PORT"), "{e}");
        let e = Config::from_yaml("c.yaml", "jwt_secret_env: 'my secret!'\n", &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("jwt_secret_env"), "{e}");
    }
}
