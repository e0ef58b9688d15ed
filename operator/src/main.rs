//! `pym-operator`: process wiring — CLI, logs, `/metrics` `/healthz`
//! `/readyz`, leader election on a Lease, the controller, graceful shutdown.
//!
//! Only the Lease holder runs the controller; a standby waits. Losing the
//! Lease stops the controller (in-flight reconciles finish) and the process
//! goes back to waiting. SIGTERM/SIGINT stop the controller, release the
//! Lease (so a standby takes over at once) and exit 0.
//!
//! Signals, logs and the health/metrics server are `pym_process`'s, as in
//! the service binaries.

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Recorder, Reporter};
use kube_lease_manager::LeaseManagerBuilder;
use pym_operator::controller::{self, Scope};
use pym_operator::desired::OperatorPods;
use pym_operator::metrics::Metrics;
use pym_operator::reconcile::{Context, SecretWatch};
use pym_operator::{Error, Result};
use pym_process::{Probes, logs};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Kubernetes operator for pym services (PymService, pym.dev/v1alpha1).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "PYM_OPERATOR_NAMESPACE")]
    namespace: Option<String>,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "PYM_OPERATOR_HTTP_ADDR", default_value = "0.0.0.0:8000")]
    http_addr: String,

    /// Log format: json (one object per line) or pretty (for humans).
    /// The filter is $RUST_LOG (default `info`).
    #[arg(
        long,
        env = "PYM_OPERATOR_LOG_FORMAT",
        default_value = "json",
        value_parser = PossibleValuesParser::new(["json", "pretty"])
            .try_map(|s| s.parse::<logs::Format>())
    )]
    log_format: logs::Format,

    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// Run leader election; with `false` this process always reconciles
    /// (only for a single replica).
    #[arg(long, env = "PYM_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, default_value = "pym-operator")]
    lease_name: String,

    /// Namespace of the Lease (default: $POD_NAMESPACE, else --namespace, else `default`).
    #[arg(long)]
    lease_namespace: Option<String>,

    /// Identity in the Lease (default: $POD_NAME, else hostname-pid).
    #[arg(long)]
    identity: Option<String>,

    /// Seconds a leader holds the Lease without renewing it (failover time after a crash).
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,

    /// Seconds before expiry at which the leader renews the Lease.
    #[arg(long, default_value_t = 5)]
    lease_grace_seconds: u64,

    /// PymServices reconciled in parallel.
    #[arg(long, env = "PYM_OPERATOR_CONCURRENCY", default_value_t = 32)]
    concurrency: u16,

    /// Run the queue-depth autoscaler of worker Deployments (issue #7).
    #[arg(long, env = "PYM_OPERATOR_AUTOSCALE", default_value_t = true, action = clap::ArgAction::Set)]
    autoscale: bool,

    /// Watch Secrets (needs `list` + `watch` on Secrets): an edit of a
    /// Secret a PymService references rolls its pods at once. Without it
    /// the operator only `get`s the Secrets it needs and re-reads a
    /// PymService's referenced Secrets every --secret-poll-seconds.
    #[arg(long, env = "PYM_OPERATOR_WATCH_SECRETS", default_value_t = false, action = clap::ArgAction::Set)]
    watch_secrets: bool,

    /// Without --watch-secrets: how often a PymService that references
    /// Secrets is reconciled to notice an edit of them.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=3600))]
    secret_poll_seconds: u64,

    /// Queue-statistics reads in flight at once, over all PymServices.
    #[arg(long, default_value_t = 32)]
    autoscaler_max_concurrent_reads: usize,

    /// Reach a PymService's Redis at another host:port for queue statistics
    /// (password and db still come from its URL Secret):
    /// `<namespace>/<name>=<host:port>`, `<namespace>/*=...` or `*=...`.
    /// For operators running outside the cluster. Repeatable. Applies to
    /// redis:// and rediss:// URLs only (Sentinel and Cluster URLs are used
    /// as they are).
    #[arg(long, env = "PYM_OPERATOR_STATS_REDIS_ENDPOINT", value_delimiter = ',')]
    stats_redis_endpoint: Vec<pym_operator::autoscaler::EndpointOverride>,

    /// Labels of this operator's own pods, `key=value,...` (the chart passes
    /// its selector labels). With the autoscaler on, every managed Redis
    /// NetworkPolicy also admits the pods with these labels in the
    /// operator's namespace ($POD_NAMESPACE), from which the autoscaler reads
    /// queue statistics. Unset (an operator outside the cluster): the policy
    /// admits the service's own pods only.
    #[arg(long, env = "PYM_OPERATOR_POD_LABELS", value_parser = parse_pod_labels)]
    operator_pod_labels: Option<BTreeMap<String, String>>,
}

fn parse_pod_labels(s: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    pym_operator::desired::parse_labels(s)
}

/// Where in-cluster processes find their namespace when the downward API
/// does not set $POD_NAMESPACE.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The operator's namespace as a pod sees it: $POD_NAMESPACE, else its
/// ServiceAccount's namespace file.
fn own_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok())
}

/// The operator's pods for the managed Redis NetworkPolicies (see
/// `--operator-pod-labels`): None without the autoscaler or without labels.
fn operator_pods(cli: &Cli, namespace: Option<String>) -> Result<Option<OperatorPods>> {
    let labels = match &cli.operator_pod_labels {
        Some(l) if !l.is_empty() => l.clone(),
        _ => return Ok(None),
    };
    if !cli.autoscale {
        info!("--autoscale=false: managed Redis NetworkPolicies do not admit the operator's pods");
        return Ok(None);
    }
    let namespace = namespace
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            Error::Config(format!(
                "--operator-pod-labels needs the operator's namespace: set $POD_NAMESPACE \
                 (downward API metadata.namespace) or run in a pod ({SERVICE_ACCOUNT_NAMESPACE})"
            ))
        })?;
    let pods = OperatorPods::new(&namespace, labels);
    if let Some(p) = &pods {
        info!(namespace = %p.namespace, labels = ?p.labels,
            "managed Redis NetworkPolicies admit the operator's pods (autoscaler reads)");
    }
    Ok(pods)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (_logs, bad) = logs::init("RUST_LOG", "info", cli.log_format);
    if let Some(e) = bad {
        warn!("{e}");
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "pym-operator stopped");
            ExitCode::FAILURE
        }
    }
}

async fn client(cli: &Cli) -> Result<Client> {
    let config = match &cli.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| Error::Config(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(Error::Kube)
}

/// The /metrics, /healthz and /readyz server: ready once the process
/// waits for (or holds) the Lease; stops with `stop`.
async fn serve_http(
    addr: &str,
    metrics: &Metrics,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>> {
    let probes = Probes::new(metrics.registry.clone())
        .ready_when(move || ready.load(Ordering::Relaxed), "starting");
    let (_, task) = probes
        .start(addr, stop)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
    Ok(task)
}

fn default_identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "pym-operator".into());
        format!("{host}-{}", std::process::id())
    })
}

async fn run(cli: Cli) -> Result<()> {
    let operator_pods = operator_pods(&cli, own_namespace())?;
    let client = client(&cli).await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let stop = pym_process::shutdown_on_signal();
    let http = serve_http(&cli.http_addr, &metrics, ready.clone(), stop.clone()).await?;

    let version = client.apiserver_version().await?;
    info!(apiserver = %version.git_version, "connected");
    let identity = cli.identity.clone().unwrap_or_else(default_identity);
    let reporter = Reporter {
        controller: "pym-operator".into(),
        instance: Some(identity.clone()),
    };
    let ctx = Arc::new(
        Context::new(client.clone(), Recorder::new(client, reporter), metrics)
            .with_operator_pods(operator_pods)
            .with_autoscaler(cli.autoscale)
            .with_secrets(SecretWatch::from_flags(
                cli.watch_secrets,
                cli.secret_poll_seconds,
            )),
    );
    let scope = match &cli.namespace {
        Some(ns) => Scope::Namespace(ns.clone()),
        None => Scope::All,
    };
    let operator = Operator {
        cli,
        ctx,
        scope,
        identity,
        ready,
        stop,
    };
    if operator.cli.leader_elect {
        operator.lead().await?;
    } else {
        operator.reconcile_alone().await;
    }
    let _ = http.await;
    Ok(())
}

/// The running operator: what its steps share.
struct Operator {
    cli: Cli,
    ctx: Arc<Context>,
    scope: Scope,
    identity: String,
    /// /readyz: true once waiting for (or holding) the Lease.
    ready: Arc<AtomicBool>,
    /// Cancelled on SIGTERM/SIGINT.
    stop: CancellationToken,
}

impl Operator {
    /// The controller and the autoscaler, until `until` is cancelled.
    async fn reconcile(&self, until: &CancellationToken) {
        tokio::join!(
            controller::run(
                self.ctx.clone(),
                self.scope.clone(),
                self.cli.concurrency,
                until.clone().cancelled_owned()
            ),
            autoscale(
                &self.cli,
                &self.ctx,
                &self.scope,
                until.clone().cancelled_owned()
            ),
        );
    }

    /// `--leader-elect=false`: reconcile until shutdown.
    async fn reconcile_alone(&self) {
        warn!("leader election disabled: run a single replica only");
        self.ready.store(true, Ordering::Relaxed);
        self.ctx.metrics.leader.set(1);
        self.reconcile(&self.stop).await;
    }

    /// Wait for the Lease, reconcile while holding it, stand by again when
    /// it is lost; on shutdown release it.
    async fn lead(&self) -> Result<()> {
        let cli = &self.cli;
        let lease_ns = cli
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .or_else(|| cli.namespace.clone())
            .unwrap_or_else(|| "default".into());
        let manager = LeaseManagerBuilder::new(self.ctx.client.clone(), &cli.lease_name)
            .with_namespace(&lease_ns)
            .with_identity(&self.identity)
            .with_duration(cli.lease_duration_seconds)
            .with_grace(cli.lease_grace_seconds)
            .build()
            .await?;
        let (mut leader, lease_task) = manager.watch().await;
        self.ready.store(true, Ordering::Relaxed);
        info!(lease = %cli.lease_name, namespace = %lease_ns, identity = %self.identity, "waiting for leadership");
        loop {
            tokio::select! {
                r = leader.wait_for(|l| *l) => if r.is_err() { break },
                () = self.stop.cancelled() => break,
            }
            self.term(&leader).await;
            if self.stop.is_cancelled() {
                break;
            }
            warn!(identity = %self.identity, "lost leadership; standing by");
        }
        // Closing the channel makes the lease task release the Lease.
        drop(leader);
        match lease_task.await {
            Ok(Ok(_)) => info!("lease released"),
            Ok(Err(e)) => warn!(error = %e, "could not release the lease"),
            Err(e) => warn!(error = %e, "lease task failed"),
        }
        Ok(())
    }

    /// One term as leader: reconcile until shutdown or until `leader`
    /// turns false.
    async fn term(&self, leader: &watch::Receiver<bool>) {
        info!(identity = %self.identity, "became leader; reconciling");
        self.ctx.metrics.leader.set(1);
        // This term ends on shutdown (child of `stop`) or when leadership is lost.
        let term = self.stop.child_token();
        let mut lost = leader.clone();
        let on_lost = term.clone();
        let watcher = tokio::spawn(async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => on_lost.cancel(),
                () = on_lost.cancelled() => {},
            }
        });
        self.reconcile(&term).await;
        term.cancel();
        let _ = watcher.await;
        self.ctx.metrics.leader.set(0);
    }
}

/// The autoscaler, on the leader only, next to the controller (unless `--autoscale=false`).
async fn autoscale(
    cli: &Cli,
    ctx: &Context,
    scope: &Scope,
    until: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if !cli.autoscale {
        return;
    }
    let config = pym_operator::autoscaler::Config {
        max_concurrent_reads: cli.autoscaler_max_concurrent_reads,
        endpoint_overrides: cli.stats_redis_endpoint.clone(),
    };
    let reporter = Reporter {
        controller: pym_operator::autoscaler::FIELD_MANAGER.into(),
        instance: cli.identity.clone(),
    };
    let recorder = Recorder::new(ctx.client.clone(), reporter);
    pym_operator::autoscaler::run(
        ctx.client.clone(),
        recorder,
        ctx.metrics.clone(),
        scope.clone(),
        config,
        until,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pym-operator").chain(args.iter().copied()))
    }

    /// Ok(admitted pods) or Err(part of the message).
    type Want = std::result::Result<Option<OperatorPods>, &'static str>;

    #[test]
    fn operator_pod_labels_flag() {
        let chart = "--operator-pod-labels=app.kubernetes.io/component=operator,\
                     app.kubernetes.io/instance=pym,app.kubernetes.io/name=pym-operator";
        let want = OperatorPods {
            namespace: "pym-system".into(),
            labels: BTreeMap::from(
                [
                    ("app.kubernetes.io/component", "operator"),
                    ("app.kubernetes.io/instance", "pym"),
                    ("app.kubernetes.io/name", "pym-operator"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string())),
            ),
        };
        let ns = |n: &str| Some(n.to_string());
        // (args, the pod's namespace, Ok(admitted pods) or Err(part of the message))
        let cases: Vec<(Vec<&str>, Option<String>, Want)> = vec![
            (vec![chart], ns("pym-system"), Ok(Some(want.clone()))),
            (vec![chart], ns("pym-system\n"), Ok(Some(want.clone()))),
            // outside the cluster: no flag, nothing added
            (vec![], ns("pym-system"), Ok(None)),
            (vec![], None, Ok(None)),
            (vec!["--operator-pod-labels="], ns("pym-system"), Ok(None)),
            // no autoscaler, no reads to admit
            (vec![chart, "--autoscale=false"], ns("pym-system"), Ok(None)),
            (vec![chart], None, Err("needs the operator's namespace")),
            (vec![chart], ns(" "), Err("needs the operator's namespace")),
        ];
        for (args, namespace, want) in cases {
            let c = cli(&args).unwrap();
            let got = operator_pods(&c, namespace.clone());
            match want {
                Ok(w) => assert_eq!(got.unwrap(), w, "{args:?} {namespace:?}"),
                Err(part) => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains(part), "{args:?}: {e}");
                }
            }
        }
        let err = cli(&["--operator-pod-labels=app"]).unwrap_err().to_string();
        assert!(err.contains("is not key=value"), "{err}");
    }
}
