//! The service binary command line: `serve`, `worker`, `up`, `dead`, `stats`.
//!
//! A service's `main` is one call:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     pym_runtime::App::new("hello")
//!         .about("The hello example service")
//!         .version(env!("CARGO_PKG_VERSION"))
//!         // .default_config(include_str!("../pym-config.yaml"))
//!         .service(|svc| {
//!             svc.spec_str("openapi.yaml", "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\n")
//!         })
//!         .run()
//! }
//! ```
//!
//! | command | what it runs |
//! |---|---|
//! | `serve` | the HTTP API (needs `PYM_REDIS_URL` when `with_async`) |
//! | `worker` | the task worker (needs `PYM_REDIS_URL`) |
//! | `up` | both in one process; eager (inline) tasks without `PYM_REDIS_URL` |
//! | `check` | load config and spec, check handler bindings, exit |
//! | `token` | mint a JWT with the configured key (development, tests) |
//! | `dead list/replay/purge` | inspect and act on dead letters |
//! | `stats` | queue depths |
//!
//! Exit status: 0 done, 1 failed while running, 2 bad configuration/usage.

use crate::config::{Config, ExposeSecret, Secret};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use futures::FutureExt;
use pym_broker::worker::{Worker, WorkerConfig, WorkerError, default_name};
use pym_broker::{Broker, BrokerConfig, BrokerError, Queue, dead, redact_url, stats};
use pym_core::{Metrics, contract};
use pym_http::{Auth, Service, ServiceBuilder};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// HMAC secret used by `up` when none is configured. Development only.
pub const DEV_SECRET: &str = "pym-dev-secret-do-not-use-in-production";

type ServiceFn = Box<dyn Fn(ServiceBuilder) -> ServiceBuilder + Send + Sync>;

/// A service binary: name, embedded defaults, and how to build its API.
pub struct App {
    name: &'static str,
    about: &'static str,
    version: &'static str,
    default_config: Option<&'static str>,
    service: ServiceFn,
}

#[derive(Parser, Debug)]
struct Cli {
    /// Path of pym-config.yaml (default: $PYM_CONFIG, else ./pym-config.yaml, else the embedded defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the HTTP API. Tasks go to Redis ($PYM_REDIS_URL).
    #[command(name = contract::CMD_SERVE)]
    Serve(ServeArgs),
    /// Run the task worker: fetch tasks from Redis ($PYM_REDIS_URL) and run them.
    #[command(name = contract::CMD_WORKER)]
    Worker(WorkerArgs),
    /// Run API and worker in one process (local development). Without
    /// $PYM_REDIS_URL tasks run inline (eager mode), so nothing else is needed;
    /// without a JWT secret a development secret is used.
    #[command(name = contract::CMD_UP)]
    Up(ServeArgs),
    /// Load the config and the spec, check handler bindings, and exit.
    Check,
    /// Mint a JWT for USER_ID with the configured key and print it (development, tests).
    Token(TokenArgs),
    /// Inspect, replay or delete dead letters.
    #[command(subcommand)]
    Dead(DeadCmd),
    /// Print queue depths (ready, in flight, delayed, dead).
    Stats(StatsArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Listen port (default: $PYM_PORT, else `port` in pym-config.yaml, else 8080).
    #[arg(long)]
    port: Option<u16>,
    /// Listen address.
    #[arg(long, default_value = "0.0.0.0")]
    host: std::net::IpAddr,
}

#[derive(Args, Debug)]
struct WorkerArgs {
    /// Queues to consume, comma-separated (default: $PYM_WORKER_QUEUES, else
    /// `queues` in pym-config.yaml, else every queue of the linked tasks).
    #[arg(long, value_delimiter = ',')]
    queues: Vec<String>,
    /// Tasks in flight (default: $PYM_WORKER_CONCURRENCY, else `worker_concurrency`).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Port of /healthz, /readyz, /metrics (default: $PYM_WORKER_PORT, else 9090); 0 = none.
    #[arg(long)]
    port: Option<u16>,
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// The user id (`sub`).
    user_id: String,
    /// Extra claims, as a JSON object.
    #[arg(long, default_value = "{}")]
    claims: String,
    /// Lifetime in seconds (default: `jwt_token_timeout`).
    #[arg(long)]
    ttl: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum DeadCmd {
    /// List dead letters of a queue, newest first.
    List {
        #[arg(long, default_value = contract::DEFAULT_QUEUE)]
        queue: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Print JSON (one dead letter per line, with the original message).
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on their queue (attempts reset).
    Replay(DeadSelection),
    /// Delete dead letters.
    Purge(DeadSelection),
}

/// Which dead letters `replay` and `purge` act on: one by id, or all.
#[derive(Debug, Args)]
struct DeadSelection {
    /// Queue whose dead letters to act on.
    #[arg(long, default_value = contract::DEFAULT_QUEUE)]
    queue: String,
    /// Dead letter id (task id); see `dead list`.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    id: Option<String>,
    /// Every dead letter of the queue.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
struct StatsArgs {
    /// One queue (default: every known queue).
    #[arg(long)]
    queue: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// An error that ends the command: message + exit status.
struct Fail(u8, String);

fn usage(msg: impl std::fmt::Display) -> Fail {
    Fail(2, msg.to_string())
}
fn runtime(msg: impl std::fmt::Display) -> Fail {
    Fail(1, msg.to_string())
}

impl App {
    pub fn new(name: &'static str) -> Self {
        App {
            name,
            about: "a pym service",
            version: "0.0.0",
            default_config: None,
            service: Box::new(|b| b),
        }
    }

    pub fn about(mut self, about: &'static str) -> Self {
        self.about = about;
        self
    }

    pub fn version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    /// The config used when no file is found (e.g. `include_str!("../pym-config.yaml")`).
    pub fn default_config(mut self, yaml: &'static str) -> Self {
        self.default_config = Some(yaml);
        self
    }

    /// How to build the API: add the spec and the handlers to the builder,
    /// which already holds the config and the queue.
    pub fn service(
        mut self,
        f: impl Fn(ServiceBuilder) -> ServiceBuilder + Send + Sync + 'static,
    ) -> Self {
        self.service = Box::new(f);
        self
    }

    /// Parse the command line from the process arguments and run.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Parse `args` (first item: the program name) and run.
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cmd = Cli::command()
            .name(self.name)
            .bin_name(self.name)
            .about(self.about)
            .version(self.version);
        let matches = match cmd.try_get_matches_from(args) {
            Ok(m) => m,
            Err(e) => {
                let _ = e.print();
                return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
            }
        };
        let cli = match Cli::from_arg_matches(&matches) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.print();
                return ExitCode::from(2);
            }
        };
        let json_logs = init_logging();
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::from(1);
            }
        };
        match rt.block_on(self.dispatch(cli)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Fail(code, msg)) => {
                if json_logs {
                    tracing::error!("{msg}");
                } else {
                    eprintln!("error: {msg}");
                }
                ExitCode::from(code)
            }
        }
    }

    async fn dispatch(&self, cli: Cli) -> Result<(), Fail> {
        let mut config = Config::load(cli.config.as_deref(), self.default_config).map_err(usage)?;
        // The process's one metrics registry, passed to what records metrics.
        let metrics = Metrics::default();
        match cli.command {
            Cmd::Serve(a) => {
                if let Some(p) = a.port {
                    config.port = p;
                }
                self.serve(config, a.host, false, metrics).await
            }
            Cmd::Up(a) => {
                if let Some(p) = a.port {
                    config.port = p;
                }
                self.serve(config, a.host, true, metrics).await
            }
            Cmd::Worker(a) => {
                if !a.queues.is_empty() {
                    config.queues = a.queues;
                }
                if let Some(c) = a.concurrency {
                    config.worker_concurrency = c;
                }
                if let Some(p) = a.port {
                    config.worker_port = p;
                }
                let shutdown = CancellationToken::new();
                tokio::spawn(forward_signals(shutdown.clone()));
                let bc = broker_config(&config)?.with_metrics(&metrics);
                run_worker(&config, &bc, Some(metrics), shutdown).await
            }
            Cmd::Check => {
                let svc = self.build(&config, Queue::eager(), metrics)?;
                println!(
                    "ok: {} {} — {} operations bound, config {}",
                    config.name,
                    config.version,
                    svc.spec().operations.len(),
                    config
                        .source
                        .as_ref()
                        .map_or("<embedded/defaults>".to_string(), |p| p
                            .display()
                            .to_string())
                );
                Ok(())
            }
            Cmd::Token(a) => {
                let auth = Auth::required(&config.jwt).map_err(usage)?;
                let claims: serde_json::Value = serde_json::from_str(&a.claims)
                    .map_err(|e| usage(format!("--claims must be a JSON object: {e}")))?;
                if !claims.is_object() {
                    return Err(usage("--claims must be a JSON object"));
                }
                let token = match a.ttl {
                    Some(t) => auth.mint_for(&a.user_id, claims, t),
                    None => auth.mint(&a.user_id, claims),
                }
                .map_err(|e| usage(e.description))?;
                println!("{token}");
                Ok(())
            }
            Cmd::Dead(d) => dead_cmd(&config, d).await,
            Cmd::Stats(s) => stats_cmd(&config, s).await,
        }
    }

    fn build(&self, config: &Config, queue: Queue, metrics: Metrics) -> Result<Service, Fail> {
        let mut builder = Service::builder(config).metrics(metrics);
        if let Some(broker) = queue.broker() {
            let broker = broker.clone();
            builder = builder.readiness("the broker", move || {
                let broker = broker.clone();
                async move { broker.ping().await }.boxed()
            });
        }
        (self.service)(builder.extension(queue))
            .build()
            .map_err(usage)
    }

    async fn serve(
        &self,
        mut config: Config,
        host: std::net::IpAddr,
        up: bool,
        metrics: Metrics,
    ) -> Result<(), Fail> {
        if up && config.jwt.secret.is_none() && config.jwt.public_key.is_none() {
            tracing::warn!(
                env = %config.jwt.secret_env,
                "no JWT secret set: `up` uses the development secret; never do this in production"
            );
            config.jwt.secret = Some(Secret::from(DEV_SECRET));
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(forward_signals(shutdown.clone()));
        let (queue, worker_broker) = match (&config.redis_url, config.with_async) {
            (Some(_), true) => {
                let bc = broker_config(&config)?.with_metrics(&metrics);
                let q = Queue::connect(&bc)
                    .await
                    .map_err(|e| broker_fail(&config, &bc, e))?;
                (q, up.then_some(bc))
            }
            (None, true) if !up => {
                return Err(usage(format!(
                    "{} is not set: `serve` sends tasks to Redis; set it (e.g. redis://127.0.0.1:6379/0), \
                     or use `up` for local development without Redis, or set with_async: false",
                    config.redis_url_env
                )));
            }
            _ => {
                if config.with_async {
                    tracing::info!("no {}: tasks run inline (eager mode)", config.redis_url_env);
                }
                (Queue::eager().with_metrics(&metrics), None)
            }
        };
        let svc = self.build(&config, queue, metrics)?;
        let addr = SocketAddr::new(host, config.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            usage(format!(
                "cannot listen on {addr}: {e}; choose another port with --port or PYM_PORT"
            ))
        })?;
        let api = {
            let s = shutdown.clone();
            tokio::spawn(async move { svc.serve(listener, s.cancelled_owned()).await })
        };
        let worker = if let Some(bc) = worker_broker {
            let cfg = config.clone();
            let s = shutdown.clone();
            Some(tokio::spawn(
                async move { run_worker(&cfg, &bc, None, s).await },
            ))
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
        api_result.map_err(|e| runtime(format!("HTTP server failed: {e}")))
    }
}

/// The broker settings of `config` (task metrics registered nowhere; the
/// commands that serve metrics add `.with_metrics(..)`).
fn broker_config(config: &Config) -> Result<BrokerConfig, Fail> {
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
    );
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
    shutdown: CancellationToken,
) -> Result<(), Fail> {
    let listen = serve_metrics.is_some();
    let wc = WorkerConfig {
        queues: config.queues.clone(),
        concurrency: config.worker_concurrency,
        name: config.worker_name.clone().unwrap_or_else(default_name),
        listen: (listen && config.worker_port != 0)
            .then(|| SocketAddr::from(([0, 0, 0, 0], config.worker_port))),
        metrics: serve_metrics.unwrap_or_default(),
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

async fn connect(config: &Config) -> Result<Broker, Fail> {
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

async fn dead_cmd(config: &Config, cmd: DeadCmd) -> Result<(), Fail> {
    let broker = connect(config).await?;
    let mut conn = broker.conn();
    match cmd {
        DeadCmd::List {
            queue,
            limit,
            offset,
            json,
        } => {
            let list = dead::list(&mut conn, &queue, offset, limit)
                .await
                .map_err(runtime)?;
            if json {
                for d in &list {
                    println!("{}", serde_json::to_string(d).unwrap_or_default());
                }
            } else {
                println!(
                    "{:<38} {:<28} {:<18} {:>8}  error",
                    "id", "task", "reason", "attempts"
                );
                for d in &list {
                    println!(
                        "{:<38} {:<28} {:<18} {:>8}  {}",
                        d.id,
                        d.task.as_deref().unwrap_or("?"),
                        d.reason.label(),
                        d.attempts,
                        d.error
                    );
                }
                let total = dead::count(&mut conn, &queue).await.map_err(runtime)?;
                println!("({} shown of {total} in queue {queue})", list.len());
            }
        }
        DeadCmd::Replay(DeadSelection { queue, id, all }) => {
            if all {
                let (ok, refused) = dead::replay_all(&broker, &queue).await.map_err(runtime)?;
                println!("replayed {ok}, refused {refused} (unverifiable: purge them)");
            } else {
                let id = id.unwrap_or_default();
                if dead::replay(&broker, &queue, &id).await.map_err(runtime)? {
                    println!("replayed {id}");
                } else {
                    return Err(usage(format!(
                        "no dead letter {id} in queue {queue}; see `dead list --queue {queue}`"
                    )));
                }
            }
        }
        DeadCmd::Purge(DeadSelection { queue, id, all }) => {
            if all {
                let n = dead::purge_before(&mut conn, &queue, u64::MAX)
                    .await
                    .map_err(runtime)?;
                println!("purged {n}");
            } else {
                let id = id.unwrap_or_default();
                if dead::purge(&mut conn, &queue, &id).await.map_err(runtime)? {
                    println!("purged {id}");
                } else {
                    return Err(usage(format!("no dead letter {id} in queue {queue}")));
                }
            }
        }
    }
    Ok(())
}

async fn stats_cmd(config: &Config, a: StatsArgs) -> Result<(), Fail> {
    let broker = connect(config).await?;
    let mut conn = broker.conn();
    let all = match &a.queue {
        Some(q) => vec![stats::queue_stats(&mut conn, q).await.map_err(runtime)?],
        None => stats::all_stats(&mut conn).await.map_err(runtime)?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    } else {
        println!(
            "{:<24} {:>8} {:>9} {:>11} {:>13} {:>6}",
            "queue", "ready", "in_flight", "delayed_due", "delayed_later", "dead"
        );
        for s in &all {
            println!(
                "{:<24} {:>8} {:>9} {:>11} {:>13} {:>6}",
                s.queue, s.ready, s.in_flight, s.delayed_due, s.delayed_later, s.dead
            );
        }
    }
    Ok(())
}

/// Cancel `token` on SIGTERM or Ctrl-C.
async fn forward_signals(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
    token.cancel();
}

/// Logs to stderr: `PYM_LOG` filter (default `info`), `PYM_LOG_FORMAT`
/// `json` or `pretty` (default: pretty on a terminal, JSON otherwise).
/// Returns whether logs are JSON.
pub fn init_logging() -> bool {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var(contract::ENV_LOG).unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| {
        eprintln!(
            "warning: {}={filter:?} is not a valid filter; using 'info'",
            contract::ENV_LOG
        );
        EnvFilter::new("info")
    });
    let json = match std::env::var(contract::ENV_LOG_FORMAT).as_deref() {
        Ok("json") => true,
        Ok("pretty") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Panics are logged as one event (in the current request/task span, so
    // with its request id) instead of raw text on stderr; the HTTP layer and
    // the worker catch them and answer / retry.
    std::panic::set_hook(Box::new(|info| {
        let msg = pym_core::panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %msg, %location, "panic");
    }));
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    json
}
