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

mod admin;
mod app;
mod schedules;
mod serve;
mod spans;

pub use app::App;

use crate::config::Config;
use clap::{Args, Parser, Subcommand};
use pym_core::{Metrics, contract};
use std::path::PathBuf;

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
    /// Run API and worker in one process (local development), on 127.0.0.1 by
    /// default. Without $PYM_REDIS_URL tasks run inline (eager mode), so
    /// nothing else is needed; without a JWT secret a random one is made for
    /// this run, and how to mint a token with it is printed on stderr.
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
    /// Listen address (default: 0.0.0.0 for `serve`, 127.0.0.1 for `up`).
    #[arg(long)]
    host: Option<std::net::IpAddr>,
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
    /// List the live workers (the registry they beat in every second)
    /// instead of the queues.
    #[arg(long)]
    workers: bool,
    /// List the periodic tasks (cron, zone, missed policy, next fire time,
    /// last run) instead of the queues.
    #[arg(long, conflicts_with = "workers")]
    schedules: bool,
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
    async fn dispatch(&self, cli: Cli) -> Result<(), Fail> {
        let mut config = Config::load(cli.config.as_deref(), self.default_config).map_err(usage)?;
        // As loaded, for `pym_runtime::config::custom` in handlers and tasks.
        crate::config::install(config.clone());
        // The process's one metrics registry, passed to what records metrics.
        let metrics = Metrics::default();
        match cli.command {
            Cmd::Serve(a) => {
                if let Some(p) = a.port {
                    config.port = p;
                }
                let host = a.host.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                self.serve(config, host, false, metrics).await
            }
            Cmd::Up(a) => {
                if let Some(p) = a.port {
                    config.port = p;
                }
                let host = a.host.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
                self.serve(config, host, true, metrics).await
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
                serve::worker(&config, metrics, self.reporter.clone()).await
            }
            Cmd::Check => admin::check(self, &config, metrics),
            Cmd::Token(a) => admin::token(&config, &a),
            Cmd::Dead(d) => admin::dead(&config, d).await,
            Cmd::Stats(s) => admin::stats(&config, s).await,
        }
    }
}
