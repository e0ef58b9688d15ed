//! The service binary: [`App`], its builder methods, and the process
//! around a command (arguments, logs, the async runtime, exit status).

use super::{Cli, Fail, usage};
use crate::config::Config;
use clap::{CommandFactory, FromArgMatches};
use futures::FutureExt;
use pym_broker::Queue;
use pym_core::{ErrorReport, ErrorReporter, Metrics, contract};
use pym_http::{Service, ServiceBuilder};
use pym_process::logs;
use std::process::ExitCode;

type ServiceFn = Box<dyn Fn(ServiceBuilder) -> ServiceBuilder + Send + Sync>;

/// A service binary: name, embedded defaults, and how to build its API.
pub struct App {
    name: &'static str,
    about: &'static str,
    version: &'static str,
    pub(super) default_config: Option<&'static str>,
    service: ServiceFn,
    pub(super) reporter: Option<ErrorReporter>,
}

impl App {
    pub fn new(name: &'static str) -> Self {
        App {
            name,
            about: "a pym service",
            version: "0.0.0",
            default_config: None,
            service: Box::new(|b| b),
            reporter: None,
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

    /// Crash reporting: `f` is called once for every 5xx answer and
    /// handler panic of the API and every task the worker dead-letters,
    /// with the error id, where it happened, the user id and request id.
    /// It runs inline: spawn any I/O (see [`ErrorReporter`]).
    pub fn error_reporter(mut self, f: impl Fn(&ErrorReport) + Send + Sync + 'static) -> Self {
        self.reporter = Some(ErrorReporter::new(f));
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
        let (_logs, json_logs) = init_logging();
        let _spans = match super::spans::start(&cli.command, self.name) {
            Ok(spans) => spans,
            Err(fail) => return fail.exit(json_logs),
        };
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
            Err(fail) => fail.exit(json_logs),
        }
    }

    pub(super) fn build(
        &self,
        config: &Config,
        queue: Queue,
        metrics: Metrics,
    ) -> Result<Service, Fail> {
        let mut builder = Service::builder(config).metrics(metrics);
        if let Some(reporter) = &self.reporter {
            builder = builder.error_reporter(reporter.clone());
        }
        if let Some(broker) = queue.broker() {
            let broker = broker.clone();
            builder = builder.readiness("the broker", move || {
                let broker = broker.clone();
                async move { broker.ping().await }.boxed()
            });
        }
        let admin = queue.broker().cloned().filter(|_| config.admin.enabled);
        let mut builder = (self.service)(builder.extension(queue));
        // The admin API on the API port (on its own port: see `serve`).
        if let Some(broker) = admin.filter(|_| config.admin.port.is_none()) {
            builder = crate::admin::on_api_port(builder, broker);
        }
        builder.build().map_err(usage)
    }
}

/// Logs to stderr: `PYM_LOG` filter (default `info`), `PYM_LOG_FORMAT`
/// `json` or `pretty` (default: pretty on a terminal, JSON otherwise).
/// Returns the writer's guard (hold it) and whether logs are JSON.
fn init_logging() -> (logs::LogGuard, bool) {
    let format = logs::Format::from_env(contract::ENV_LOG_FORMAT);
    let (guard, bad) = logs::init(contract::ENV_LOG, "info", format);
    if let Some(e) = bad {
        tracing::warn!("{e}");
    }
    (guard, format == logs::Format::Json)
}

impl Fail {
    /// Say why (as a log line with JSON logs) and give the exit status.
    fn exit(self, json_logs: bool) -> ExitCode {
        let Fail(code, msg) = self;
        if json_logs {
            tracing::error!("{msg}");
        } else {
            eprintln!("error: {msg}");
        }
        ExitCode::from(code)
    }
}
