//! `serve`, `up` and `worker`: the API, the worker, or both.

use super::{Fail, runtime, usage};
use crate::config::{Config, ExposeSecret, Secret};
use pym_broker::worker::{Worker, WorkerConfig, WorkerError, default_name, incarnation_name};
use pym_broker::{Broker, BrokerConfig, BrokerError, Queue, redact_url};
use pym_core::{ErrorReporter, Metrics, contract};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

use super::App;

impl App {
    /// `serve` (`up` false) or `up`: the API, and with `up` a worker beside it.
    pub(super) async fn serve(
        &self,
        mut config: Config,
        host: std::net::IpAddr,
        up: bool,
        metrics: Metrics,
    ) -> Result<(), Fail> {
        if up && config.jwt.secret.is_none() && config.jwt.public_key.is_none() {
            config.jwt.secret = Some(run_secret(&config.jwt.secret_env));
        }
        let shutdown = pym_process::shutdown_on_signal();
        let (queue, worker_broker) = queue(&config, up, &metrics).await?;
        let svc = self.build(&config, queue.clone(), metrics)?;
        let addr = SocketAddr::new(host, config.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            usage(format!(
                "cannot listen on {addr}: {e}; choose another port with --port or PYM_PORT"
            ))
        })?;
        let metrics_listener = metrics_listener(&config, host).await?;
        let admin = admin_port(&config, &queue, host, shutdown.clone()).await?;
        let api = {
            let s = shutdown.clone();
            tokio::spawn(async move {
                svc.serve_with_metrics(listener, metrics_listener, s.cancelled_owned())
                    .await
            })
        };
        let worker = if let Some(bc) = worker_broker {
            let cfg = config.clone();
            let s = shutdown.clone();
            let reporter = self.reporter.clone();
            Some(tokio::spawn(async move {
                run_worker(&cfg, &bc, None, reporter, s).await
            }))
        } else {
            None
        };
        let api_result = api
            .await
            .map_err(|e| runtime(format!("API task failed: {e}")))?;
        shutdown.cancel();
        if let Some(w) = worker {
            w.await
                .map_err(|e| runtime(format!("worker task failed: {e}")))??;
        }
        if let Some(a) = admin {
            a.await
                .map_err(|e| runtime(format!("admin task failed: {e}")))?
                .map_err(|e| runtime(format!("admin HTTP server failed: {e}")))?;
        }
        api_result.map_err(|e| runtime(format!("HTTP server failed: {e}")))
    }
}

/// The admin API and dashboard, when enabled: refused without Redis (they
/// read the queues there); on `admin.port` they are served here, by a
/// service of their own (else `build` adds them to the API's).
async fn admin_port(
    config: &Config,
    queue: &Queue,
    host: std::net::IpAddr,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, Fail> {
    if !config.admin.enabled {
        return Ok(None);
    }
    let Some(broker) = queue.broker() else {
        return Err(usage(format!(
            "admin is enabled ({}) but {} is not set: the admin API reads the queues in Redis",
            contract::ENV_ADMIN_ENABLED,
            config.redis_url_env
        )));
    };
    let Some(port) = config.admin.port else {
        return Ok(None);
    };
    let svc = crate::admin::on_own_port(config, broker.clone()).map_err(usage)?;
    let addr = SocketAddr::new(host, port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        usage(format!(
            "cannot listen on {addr} for the admin API: {e}; choose another admin port ({})",
            contract::ENV_ADMIN_PORT
        ))
    })?;
    Ok(Some(tokio::spawn(async move {
        svc.serve(listener, shutdown.cancelled_owned()).await
    })))
}

/// The listener of `metrics_port`, if set, on the API's host (`0.0.0.0`
/// for `serve`).
async fn metrics_listener(
    config: &Config,
    host: std::net::IpAddr,
) -> Result<Option<tokio::net::TcpListener>, Fail> {
    let Some(port) = config.metrics_port else {
        return Ok(None);
    };
    if port == config.port {
        return Err(usage(format!(
            "metrics_port ({}) is the API port {port}: choose another one, or unset it to serve /metrics on the API port",
            contract::ENV_METRICS_PORT
        )));
    }
    let addr = SocketAddr::new(host, port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        usage(format!(
            "cannot listen on {addr} for /metrics: {e}; choose another metrics_port ({})",
            contract::ENV_METRICS_PORT
        ))
    })?;
    Ok(Some(listener))
}

/// Length of the secret `up` makes when none is set: 43 alphanumeric
/// characters, about 256 random bits.
const RUN_SECRET_LEN: usize = 43;

/// A random JWT secret for this run of `up`. How to mint a token with it is
/// printed once on stderr (a throw-away secret, for the developer's
/// terminal); the log only says that one was made.
fn run_secret(var: &str) -> Secret {
    use rand::Rng;
    let secret: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(RUN_SECRET_LEN)
        .map(char::from)
        .collect();
    tracing::warn!(
        env = %var,
        "no JWT secret set: `up` made a random one for this run (printed on stderr, not logged)"
    );
    let bin = std::env::args()
        .next()
        .unwrap_or_else(|| "<service>".into());
    eprintln!(
        "{var} is not set: `up` uses a random JWT secret for this run only. Mint a token for it with:\n  \
         {var}={secret} {bin} token alice"
    );
    Secret::from(secret)
}

/// The queue the API sends tasks to (Redis, or eager without it), and for
/// `up` with Redis the broker settings of the worker beside it.
async fn queue(
    config: &Config,
    up: bool,
    metrics: &Metrics,
) -> Result<(Queue, Option<BrokerConfig>), Fail> {
    match (&config.redis_url, config.with_async) {
        (Some(_), true) => {
            let bc = broker_config(config)?.with_metrics(metrics);
            let q = Queue::connect(&bc)
                .await
                .map_err(|e| broker_fail(config, &bc, e))?;
            Ok((q, up.then_some(bc)))
        }
        (None, true) if !up => Err(usage(format!(
            "{} is not set: `serve` sends tasks to Redis; set it (e.g. redis://127.0.0.1:6379/0), \
             or use `up` for local development without Redis, or set with_async: false",
            config.redis_url_env
        ))),
        _ => {
            if config.with_async {
                tracing::info!("no {}: tasks run inline (eager mode)", config.redis_url_env);
            }
            Ok((Queue::eager().with_metrics(metrics), None))
        }
    }
}

/// `worker`: run a worker with its health and metrics server until SIGTERM.
pub(super) async fn worker(
    config: &Config,
    metrics: Metrics,
    reporter: Option<ErrorReporter>,
) -> Result<(), Fail> {
    let shutdown = pym_process::shutdown_on_signal();
    let bc = broker_config(config)?.with_metrics(&metrics);
    run_worker(config, &bc, Some(metrics), reporter, shutdown).await
}

/// The broker settings of `config` (task metrics registered nowhere; the
/// commands that serve metrics add `.with_metrics(..)`).
pub(super) fn broker_config(config: &Config) -> Result<BrokerConfig, Fail> {
    let url = config.redis_url.as_ref().ok_or_else(|| {
        usage(format!(
            "{} is not set: set it to the broker's URL, e.g. redis://127.0.0.1:6379/0",
            config.redis_url_env
        ))
    })?;
    let secret = config.task_secret().ok_or_else(|| {
        usage(format!(
            "no task secret: set {} (or the JWT secret, {}) to a secret shared by the API and the workers; it signs task messages",
            contract::ENV_TASK_SECRET,
            config.jwt.secret_env
        ))
    })?;
    let mut bc = BrokerConfig::new(
        url.expose_secret(),
        secret.expose_secret().as_bytes().to_vec(),
    )
    .with_shards(config.shards.clone());
    if let Ok(ca) = std::env::var(contract::ENV_REDIS_CA_FILE)
        && !ca.is_empty()
    {
        bc = bc.with_ca_file(ca);
    }
    Ok(bc)
}

/// Run a worker; with `serve_metrics`, it serves health and that registry
/// on the worker port (`up` serves them on the API port instead).
async fn run_worker(
    config: &Config,
    bc: &BrokerConfig,
    serve_metrics: Option<Metrics>,
    error_reporter: Option<ErrorReporter>,
    shutdown: CancellationToken,
) -> Result<(), Fail> {
    let listen = serve_metrics.is_some();
    let wc = WorkerConfig {
        queues: config.queues.clone(),
        concurrency: config.worker_concurrency,
        name: incarnation_name(
            &config.worker_name.clone().unwrap_or_else(default_name),
            rand::random(),
        ),
        listen: (listen && config.worker_port != 0)
            .then(|| SocketAddr::from(([0, 0, 0, 0], config.worker_port))),
        metrics: serve_metrics.unwrap_or_default(),
        error_reporter,
        schedules: schedule_overrides()?,
        ..WorkerConfig::default()
    };
    let worker = Worker::connect(bc, wc).await.map_err(|e| match e {
        WorkerError::Broker(b) => broker_fail(config, bc, b),
        other => usage(other),
    })?;
    worker
        .run(shutdown.cancelled_owned())
        .await
        .map_err(runtime)
}

/// The overrides of periodic tasks in `PYM_SCHEDULES` (none if unset).
fn schedule_overrides() -> Result<pym_broker::schedule::Overrides, Fail> {
    let json = std::env::var(contract::ENV_SCHEDULES).unwrap_or_default();
    pym_broker::schedule::parse_overrides(&json, contract::ENV_SCHEDULES).map_err(usage)
}

pub(super) async fn connect(config: &Config) -> Result<Broker, Fail> {
    let bc = broker_config(config)?;
    Broker::connect(&bc)
        .await
        .map_err(|e| broker_fail(config, &bc, e))
}

fn broker_fail(config: &Config, bc: &BrokerConfig, e: BrokerError) -> Fail {
    match e {
        BrokerError::Config(m) => usage(m),
        other => runtime(format!(
            "cannot use the broker at {} ({}): {other}; check that Redis is up and the URL is right",
            redact_url(&bc.url),
            config.redis_url_env
        )),
    }
}
