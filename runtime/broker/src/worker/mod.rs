//! The worker: fetches tasks in batches (`fetch_loop`), runs up to
//! `concurrency` at once (`dispatch`, `execute`), renews their leases
//! (`heartbeat`), beats in the worker registry (`beat_loop`), takes over
//! the tasks of workers that stopped beating (`takeover_loop`) and
//! reclaims tasks whose lease expired (`reclaim_loop`), promotes
//! delayed tasks ([`crate::delay`]), settles outcomes in batched atomic
//! pipelines (`settle_loop` → [`crate::ack::settle`]), and stops as
//! sidekiq's manager does (`shutdown`): quiet, wait, hand back.

mod beat_loop;
mod dispatch;
mod execute;
mod fetch_loop;
mod flow_gate;
mod heartbeat;
mod reclaim_loop;
mod schedule_loop;
mod server;
mod settle_loop;
mod shutdown;
mod takeover_loop;
mod tracking;

use crate::ack::Settle;
use crate::fetch::Delivery;
use crate::retry::Backoff;
use crate::task::{Registry, validate_queue_name};
use crate::workers::WorkerLiveness;
use crate::{Broker, BrokerConfig, BrokerError};
use execute::Executor;
use pym_core::Priority;
use pym_core::contract;
use pym_core::keys::{self, QueueKeys};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Errors that stop a worker from starting.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("{0}")]
    Registry(String),
    #[error("invalid worker configuration: {0}")]
    Config(String),
    #[error("cannot serve health/metrics on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Queues to consume; empty = every queue of the registered tasks.
    pub queues: Vec<String>,
    /// Tasks run at once by this process.
    pub concurrency: usize,
    /// Most tasks fetched per read.
    pub batch: usize,
    /// A fetched task not renewed for this long is given to another worker.
    pub visibility_timeout: Duration,
    /// Attempts to deliver a task whose workers keep dying before it is
    /// dead-lettered.
    pub max_deliveries: u64,
    /// On shutdown, time allowed for running tasks to finish before they are
    /// handed back to the queue.
    pub grace_period: Duration,
    /// Retry delays.
    pub backoff: Backoff,
    /// Consumer name (stable per pod is best).
    pub name: String,
    /// Address of the /healthz, /readyz, /metrics server (None: no server).
    pub listen: Option<SocketAddr>,
    /// Longest wait of one blocking read.
    pub block: Duration,
    /// The registry served at `/metrics` (pass the one the broker's
    /// [`crate::BrokerConfig::metrics`] were registered in).
    pub metrics: pym_core::Metrics,
    /// How often this worker beats in the worker registry, and after how
    /// long without a beat a worker's tasks are taken over.
    pub liveness: WorkerLiveness,
    /// Told of every dead-lettered task.
    pub error_reporter: Option<pym_core::ErrorReporter>,
    /// Changes to the periodic tasks declared in code, by task name
    /// (`PYM_SCHEDULES`, see [`crate::schedule`]).
    pub schedules: pym_schedule::Overrides,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queues: Vec::new(),
            concurrency: 64,
            batch: 256,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            grace_period: Duration::from_secs(25),
            backoff: Backoff::default(),
            name: default_name(),
            listen: Some(SocketAddr::from((
                [0, 0, 0, 0],
                contract::DEFAULT_WORKER_PORT,
            ))),
            block: Duration::from_secs(1),
            metrics: pym_core::Metrics::default(),
            liveness: WorkerLiveness::default(),
            error_reporter: None,
            schedules: pym_schedule::Overrides::new(),
        }
    }
}

/// `$PYM_WORKER_NAME`, else `<hostname>-<pid>`.
/// The consumer name of one worker process: `base` (the pod name, as the
/// operator sets [`contract::ENV_WORKER_NAME`]) and this process's
/// `incarnation`. A container restarted in place keeps its pod name but
/// not its consumer name, so the tasks the killed process held belong to a
/// worker that stopped beating, and are taken over within seconds (a
/// shared name would hide them until their visibility timeout).
pub fn incarnation_name(base: &str, incarnation: u32) -> String {
    format!("{base}#{:06x}", incarnation & 0xff_ffff)
}

pub fn default_name() -> String {
    if let Ok(n) = std::env::var(contract::ENV_WORKER_NAME)
        && !n.is_empty()
    {
        return n;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// Fetch loops per worker (fewer if the concurrency is lower).
const FETCHERS: usize = 2;

/// A task held by this worker, from fetch until its settlement is written.
struct Held {
    queue: Arc<str>,
    /// The delivery, shared with the running task (kept for a hand-back).
    delivery: Arc<Delivery>,
    abort: Option<AbortHandle>,
    /// Set once an outcome (or a hand-back) has been queued for writing.
    settling: bool,
}

/// (ready stream, entry id) of a held task.
type HeldKey = (Arc<str>, String);

/// Hash maps on the per-task path: keys are our own stream ids and names,
/// so a fast seeded hash is enough (no untrusted keys).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An outcome on its way to Redis.
struct SettleOp {
    key: HeldKey,
    /// The task's queue, for outcomes that write to its keys (not for a
    /// plain ack: no shared reference count touched per task).
    queue: Option<Arc<str>>,
    settle: Settle,
}

/// The ready streams consumed, in priority order, each with its queue.
struct Streams {
    names: Vec<String>,
    /// Stream name → (shared stream name, queue or shard).
    of: FastMap<String, (Arc<str>, Arc<str>)>,
}

impl Streams {
    fn new(queues: &[String]) -> Self {
        let mut names = Vec::new();
        let mut of = FastMap::default();
        for p in Priority::ALL {
            for q in queues {
                let s = QueueKeys::new(q).ready(p).to_owned();
                of.insert(s.clone(), (Arc::from(s.as_str()), Arc::from(q.as_str())));
                names.push(s);
            }
        }
        Streams { names, of }
    }
}

/// What the worker's loops and tasks share.
struct Shared {
    broker: Broker,
    config: WorkerConfig,
    /// The queues consumed, as configured.
    queues: Vec<String>,
    /// Their shards ([`crate::shards`]): the queues read (an unsharded
    /// queue is its own one shard).
    shards: Vec<String>,
    streams: Streams,
    executor: Executor,
    held: Mutex<FastMap<HeldKey, Held>>,
    ready: AtomicBool,
    settle_tx: mpsc::UnboundedSender<SettleOp>,
    gauges: HashMap<String, prometheus_client::metrics::gauge::Gauge>,
    /// Free task slots.
    slots: Arc<Semaphore>,
    /// The running tasks.
    tasks: TaskTracker,
    /// Cancelled when the worker goes quiet (no more fetching).
    quiet: CancellationToken,
    /// The periodic tasks of the queues consumed.
    schedules: Vec<schedule_loop::PeriodicTask>,
}

impl Shared {
    /// Queue an outcome unless the task was already handed back.
    fn settle(&self, key: HeldKey, settle: Settle) {
        let mut held = self.held.lock().unwrap();
        let queue = match held.get_mut(&key) {
            Some(h) if h.settling => return,
            Some(h) => {
                h.settling = true;
                (!matches!(settle, Settle::Ack)).then(|| h.queue.clone())
            }
            None => None,
        };
        drop(held);
        let _ = self.settle_tx.send(SettleOp { key, queue, settle });
    }

    /// A free task slot, or `None` once the worker is quiet.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            p = self.slots.clone().acquire_owned() => Some(p.expect("the slots are never closed")),
            _ = self.quiet.cancelled() => None,
        }
    }

    /// How many tasks one read may take: a fair share of the free slots.
    fn room(&self) -> usize {
        (1 + self.slots.available_permits() / FETCHERS).min(self.config.batch)
    }

    /// Mark the broker (un)reachable, for /readyz.
    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

/// A worker bound to a broker.
pub struct Worker {
    broker: Broker,
    config: WorkerConfig,
    queues: Vec<String>,
    registry: &'static Registry,
    schedules: Vec<schedule_loop::PeriodicTask>,
}

impl Worker {
    /// Connect to the broker and check the task registry and configuration.
    pub async fn connect(broker: &BrokerConfig, config: WorkerConfig) -> Result<Self, WorkerError> {
        Self::new(Broker::connect(broker).await?, config)
    }

    pub fn new(broker: Broker, config: WorkerConfig) -> Result<Self, WorkerError> {
        let registry = Registry::global().map_err(|e| WorkerError::Registry(e.to_string()))?;
        if config.concurrency == 0 {
            return Err(WorkerError::Config("concurrency must be at least 1".into()));
        }
        if config.batch == 0 {
            return Err(WorkerError::Config("batch must be at least 1".into()));
        }
        if config.visibility_timeout < Duration::from_secs(1) {
            return Err(WorkerError::Config(
                "visibility timeout must be at least 1s".into(),
            ));
        }
        let l = config.liveness;
        if l.beat_every.is_zero() || l.dead_after < l.beat_every * 2 {
            return Err(WorkerError::Config(format!(
                "liveness: beat_every ({:?}) must be positive and dead_after ({:?}) at least two beats",
                l.beat_every, l.dead_after
            )));
        }
        let mut queues = if config.queues.is_empty() {
            registry.queues().into_iter().map(String::from).collect()
        } else {
            config.queues.clone()
        };
        queues.sort();
        queues.dedup();
        if queues.is_empty() {
            return Err(WorkerError::Config(
                "no queues to consume: no #[asynctask] is linked into this binary and none was configured".into(),
            ));
        }
        for q in &queues {
            validate_queue_name(q).map_err(WorkerError::Config)?;
        }
        let schedules = schedule_loop::periodic_tasks(registry, &queues, &config.schedules)?;
        Ok(Worker {
            broker,
            config,
            queues,
            registry,
            schedules,
        })
    }

    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// Run until `shutdown` completes, then stop as sidekiq's manager does:
    /// no more fetching, running tasks get the grace period, what is left
    /// is handed back.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), WorkerError> {
        let grace = self.config.grace_period;
        let shards = self.broker.shard_layout(&self.queues).await?;
        crate::concurrency::register_caps(&self.broker, self.registry, &self.queues).await?;
        let (shared, settle_rx) = self.into_shared(shards);
        let server = match shared.config.listen {
            Some(addr) => Some(
                server::start(
                    addr,
                    shared.clone(),
                    shared.quiet.clone(),
                    shared.config.metrics.clone(),
                )
                .await?,
            ),
            None => None,
        };
        tracing::info!(
            name = %shared.config.name, queues = ?shared.queues, shards = shared.shards.len(),
            concurrency = shared.config.concurrency, "worker started"
        );
        // Cancels made before the start are known before the first fetch.
        let watch = &shared.executor.watch;
        if let Err(e) = watch.poll(&shared.broker, &shared.shards).await {
            tracing::warn!(error = %e, "cannot read cancelled tasks at start");
        }
        tokio::spawn(tracking::watch_loop(shared.clone()));
        let running = shutdown::Running::start(shared, settle_rx, server);
        shutdown.await;
        running.stop(Instant::now() + grace).await;
        Ok(())
    }

    fn into_shared(self, shards: Vec<String>) -> (Arc<Shared>, mpsc::UnboundedReceiver<SettleOp>) {
        let Worker {
            broker,
            config,
            queues,
            registry,
            schedules,
        } = self;
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let metrics = broker.metrics().clone();
        let shared = Arc::new(Shared {
            executor: Executor::new(
                broker.signer().clone(),
                registry,
                config.backoff,
                config.max_deliveries,
                &queues,
                metrics.clone(),
            )
            .with_reporter(config.error_reporter.clone()),
            broker,
            streams: Streams::new(&shards),
            held: Mutex::new(FastMap::default()),
            ready: AtomicBool::new(false),
            settle_tx,
            gauges: shards
                .iter()
                .map(|s| (s.clone(), metrics.in_flight(keys::logical(s))))
                .collect(),
            slots: Arc::new(Semaphore::new(config.concurrency)),
            tasks: TaskTracker::new(),
            quiet: CancellationToken::new(),
            config,
            queues,
            shards,
            schedules,
        });
        (shared, settle_rx)
    }
}

#[cfg(test)]
mod tests {
    use super::incarnation_name;

    #[test]
    fn each_process_is_a_consumer_of_its_own() {
        let cases = [
            (
                "hello-worker-7d9f-x2",
                0x00_3f2a1c,
                "hello-worker-7d9f-x2#3f2a1c",
            ),
            ("w", 0xff_000001, "w#000001"),
            ("w", 0, "w#000000"),
        ];
        for (base, inc, want) in cases {
            assert_eq!(incarnation_name(base, inc), want);
        }
        assert_ne!(incarnation_name("pod", 1), incarnation_name("pod", 2));
    }
}
