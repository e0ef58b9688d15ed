//! The worker: fetches tasks in batches, runs up to `concurrency` at once,
//! renews their leases, reclaims tasks of dead workers, promotes delayed
//! tasks, settles outcomes in batched atomic pipelines, and drains
//! gracefully on shutdown.

mod execute;
mod server;

use crate::ack::{self, Settle};
use crate::fetch::{self, Delivery, Reconnect};
use crate::retry::Backoff;
use crate::task::{Registry, validate_queue_name};
use crate::{Broker, BrokerConfig, BrokerError, delay, reclaim};
use execute::Executor;
use pym_core::Priority;
use pym_core::contract;
use pym_core::keys::QueueKeys;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

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
        }
    }
}

/// `$PYM_WORKER_NAME`, else `<hostname>-<pid>`.
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

type HeldKey = (Arc<str>, String);

/// Hash maps on the per-task path: keys are our own stream ids and names,
/// so a fast seeded hash is enough (no untrusted keys).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

struct SettleOp {
    key: HeldKey,
    settle: Settle,
}

struct Shared {
    broker: Broker,
    executor: Executor,
    held: Mutex<FastMap<HeldKey, Held>>,
    ready: AtomicBool,
    settle_tx: mpsc::UnboundedSender<SettleOp>,
    gauges: HashMap<String, prometheus_client::metrics::gauge::Gauge>,
}

impl Shared {
    /// Queue an outcome unless the task was already handed back.
    fn settle(&self, key: HeldKey, settle: Settle) {
        let mut held = self.held.lock().unwrap();
        if let Some(h) = held.get_mut(&key) {
            if h.settling {
                return;
            }
            h.settling = true;
        }
        drop(held);
        let _ = self.settle_tx.send(SettleOp { key, settle });
    }
}

/// A worker bound to a broker.
pub struct Worker {
    broker: Broker,
    config: WorkerConfig,
    queues: Vec<String>,
    registry: &'static Registry,
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
        Ok(Worker {
            broker,
            config,
            queues,
            registry,
        })
    }

    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// Run until `shutdown` completes, then drain and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), WorkerError> {
        let Worker {
            broker,
            config,
            queues,
            registry,
        } = self;
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            executor: Executor::new(
                broker.signer().clone(),
                registry,
                config.backoff,
                config.max_deliveries,
                &queues,
                broker.metrics().clone(),
            ),
            broker: broker.clone(),
            held: Mutex::new(FastMap::default()),
            ready: AtomicBool::new(false),
            settle_tx,
            gauges: queues
                .iter()
                .map(|q| (q.clone(), broker.metrics().in_flight(q)))
                .collect(),
        });
        let stop = CancellationToken::new();

        let server = match config.listen {
            Some(addr) => Some(
                server::start(addr, shared.clone(), stop.clone(), config.metrics.clone()).await?,
            ),
            None => None,
        };
        tracing::info!(
            name = %config.name, queues = ?queues, concurrency = config.concurrency,
            "worker started"
        );

        let settler = tokio::spawn(settle_loop(shared.clone(), settle_rx));
        let heartbeat = tokio::spawn(heartbeat_loop(
            shared.clone(),
            config.name.clone(),
            config.visibility_timeout / 3,
        ));
        let promoters: Vec<_> = queues
            .iter()
            .map(|q| tokio::spawn(delay::run_promoter(broker.clone(), q.clone(), stop.clone())))
            .collect();
        let semaphore = Arc::new(Semaphore::new(config.concurrency));
        // Two fetch loops, each on its own connection, so one reads the next
        // batch while the other hands its batch out; the first one also
        // reclaims tasks of dead workers.
        let fetchers: Vec<_> = (0..FETCHERS.min(config.concurrency))
            .map(|i| {
                tokio::spawn(fetch_loop(
                    shared.clone(),
                    config.clone(),
                    queues.clone(),
                    semaphore.clone(),
                    stop.clone(),
                    i == 0,
                ))
            })
            .collect();

        shutdown.await;
        tracing::info!(grace = ?config.grace_period, "shutting down: no new tasks, draining");
        stop.cancel();
        for f in fetchers {
            let _ = f.await;
        }
        for p in promoters {
            let _ = p.await;
        }

        // Let running tasks finish within the grace period.
        let deadline = Instant::now() + config.grace_period;
        while !shared.held.lock().unwrap().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Hand back what is still running.
        let handed = hand_back_all(&shared);
        if handed > 0 {
            tracing::warn!(
                handed,
                "grace period over: handed unfinished tasks back to the queue"
            );
        }
        let flush_deadline = Instant::now() + Duration::from_secs(5);
        while !shared.held.lock().unwrap().is_empty() && Instant::now() < flush_deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        heartbeat.abort();
        settler.abort();
        if let Some(s) = server {
            let _ = s.await;
        }
        let left = shared.held.lock().unwrap().len();
        if left > 0 {
            tracing::warn!(
                left,
                "could not settle every task (Redis unreachable?); they will be redelivered"
            );
        }
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// Abort every unsettled task and queue its hand-back. Returns the count.
fn hand_back_all(shared: &Shared) -> usize {
    let mut ops = Vec::new();
    {
        let mut held = shared.held.lock().unwrap();
        for (key, h) in held.iter_mut() {
            if h.settling {
                continue;
            }
            h.settling = true;
            if let Some(a) = &h.abort {
                a.abort();
            }
            let settle = match &h.delivery.message {
                Some(m) => Settle::HandBack { message: m.clone() },
                // Nothing to hand back; leave it for the reclaimer, which
                // dead-letters it with its reason.
                None => continue,
            };
            ops.push(SettleOp {
                key: key.clone(),
                settle,
            });
        }
    }
    let n = ops.len();
    for op in ops {
        let _ = shared.settle_tx.send(op);
    }
    n
}

async fn fetch_loop(
    shared: Arc<Shared>,
    config: WorkerConfig,
    queues: Vec<String>,
    semaphore: Arc<Semaphore>,
    stop: CancellationToken,
    reclaimer: bool,
) {
    // Streams in priority order; each maps back to its queue.
    let mut streams = Vec::new();
    let mut queue_of: FastMap<String, Arc<str>> = FastMap::default();
    for p in Priority::ALL {
        for q in &queues {
            let s = QueueKeys::new(q).ready(p).to_owned();
            queue_of.insert(s.clone(), Arc::from(q.as_str()));
            streams.push(s);
        }
    }
    let stream_keys: FastMap<String, Arc<str>> = streams
        .iter()
        .map(|s| (s.clone(), Arc::from(s.as_str())))
        .collect();
    let mut backoff = Reconnect::default();
    // This loop's own connection for reads (blocking reads stall it).
    let mut fetch_conn = None;
    let mut groups_ok = false;
    let reclaim_every = (config.visibility_timeout / 6).max(Duration::from_millis(500));
    let mut last_reclaim = Instant::now() - reclaim_every;
    let mut last_reap = Instant::now();

    while !stop.is_cancelled() {
        if !groups_ok {
            let mut conn = shared.broker.conn();
            let mut ok = true;
            for q in &queues {
                if let Err(e) = fetch::ensure_groups(&mut conn, q).await {
                    ok = false;
                    shared.ready.store(false, Ordering::Relaxed);
                    let d = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?d, "cannot reach the broker");
                    sleep_or_stop(d, &stop).await;
                    break;
                }
            }
            if !ok {
                continue;
            }
            groups_ok = true;
            for q in &queues {
                let _ = shared.broker.register_queue(q).await;
            }
            shared.ready.store(true, Ordering::Relaxed);
        }
        // Wait for a free slot.
        let first = tokio::select! {
            p = semaphore.clone().acquire_owned() => p.expect("semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        // Share the free slots with the other fetch loop.
        let room = (1 + semaphore.available_permits() / FETCHERS).min(config.batch);

        let mut deliveries = Vec::new();
        let mut result: Result<(), BrokerError> = Ok(());
        if reclaimer && last_reclaim.elapsed() >= reclaim_every {
            last_reclaim = Instant::now();
            for s in &streams {
                match reclaim::reclaim(
                    &shared.broker,
                    s,
                    &config.name,
                    config.visibility_timeout,
                    room,
                )
                .await
                {
                    Ok(mut r) => {
                        // Our own tasks come back only if a heartbeat was
                        // late; they are still running here, so keep them.
                        let key: Arc<str> = Arc::from(s.as_str());
                        {
                            let held = shared.held.lock().unwrap();
                            r.retain(|d| !held.contains_key(&(key.clone(), d.id.clone())));
                        }
                        if !r.is_empty() {
                            tracing::info!(stream = %s, count = r.len(), "reclaimed tasks of a dead or stuck worker");
                        }
                        deliveries.append(&mut r);
                    }
                    Err(e) => result = Err(e),
                }
            }
            if last_reap.elapsed() >= Duration::from_secs(600) {
                last_reap = Instant::now();
                for s in &streams {
                    let _ = reclaim::reap_consumers(
                        &shared.broker,
                        s,
                        &config.name,
                        Duration::from_secs(3600),
                    )
                    .await;
                }
            }
        }
        if deliveries.is_empty() && result.is_ok() && fetch_conn.is_none() {
            match shared.broker.blocking_conn().await {
                Ok(c) => fetch_conn = Some(c),
                Err(e) => result = Err(e),
            }
        }
        if deliveries.is_empty()
            && result.is_ok()
            && let Some(fc) = fetch_conn.as_mut()
        {
            // Reads go on this loop's own connection: replies of a batch
            // are parsed by its own driver, in parallel with the settling
            // pipelines on the shared one. Read what is there; only when
            // nothing is, block.
            let read = match fetch::read_now(fc, &config.name, &streams, room).await {
                Ok(d) if d.is_empty() => {
                    fetch::read(fc, &config.name, &streams, room, Some(config.block)).await
                }
                other => other,
            };
            match read {
                Ok(d) => deliveries = d,
                Err(e) => {
                    fetch_conn = None;
                    result = Err(e);
                }
            }
        }
        if let Err(e) = result {
            drop(first);
            shared.ready.store(false, Ordering::Relaxed);
            if fetch::is_nogroup(&e) {
                groups_ok = false;
            }
            let d = backoff.next_delay();
            tracing::warn!(error = %e, retry_in = ?d, "fetching tasks failed");
            sleep_or_stop(d, &stop).await;
            continue;
        }
        backoff.reset();
        shared.ready.store(true, Ordering::Relaxed);

        // Hold every delivery first, so all of them are heartbeated.
        let batch: Vec<(HeldKey, Arc<str>, Arc<Delivery>)> = deliveries
            .into_iter()
            .filter_map(|d| {
                let stream = stream_keys.get(&d.stream)?.clone();
                let queue = queue_of.get(&d.stream)?.clone();
                Some(((stream, d.id.clone()), queue, Arc::new(d)))
            })
            .collect();
        {
            let mut held = shared.held.lock().unwrap();
            for (key, queue, d) in &batch {
                held.insert(
                    key.clone(),
                    Held {
                        queue: queue.clone(),
                        delivery: d.clone(),
                        abort: None,
                        settling: false,
                    },
                );
                if let Some(g) = shared.gauges.get(&**queue) {
                    g.inc();
                }
            }
        }
        let mut first = Some(first);
        for (key, queue, d) in batch {
            let permit = match first.take() {
                Some(p) => p,
                None => tokio::select! {
                    p = semaphore.clone().acquire_owned() => p.expect("semaphore is never closed"),
                    _ = stop.cancelled() => {
                        // Draining: the rest is handed back by run().
                        break;
                    }
                },
            };
            if stop.is_cancelled() {
                break;
            }
            let sh = shared.clone();
            let task_key = key.clone();
            let handle = tokio::spawn(async move {
                let settle = sh.executor.run(&queue, &d).await;
                sh.settle(task_key, settle);
                drop(permit);
            });
            if let Some(h) = shared.held.lock().unwrap().get_mut(&key) {
                h.abort = Some(handle.abort_handle());
            }
        }
    }
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.cancelled() => {}
    }
}

/// Write outcomes in batches, each batch one atomic pipeline; keep trying
/// until Redis takes them (nothing is dropped while the worker runs).
async fn settle_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<SettleOp>) {
    const MAX_BATCH: usize = 1024;
    let mut backoff = Reconnect::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(op) = rx.recv().await {
        batch.push(op);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut qks: HashMap<Arc<str>, QueueKeys> = HashMap::new();
        // Plain acks of a stream go in one variadic XACK + XDEL.
        let mut acks: HashMap<&str, Vec<&str>> = HashMap::new();
        {
            let held = shared.held.lock().unwrap();
            for op in &batch {
                let (stream, id) = &op.key;
                if matches!(op.settle, Settle::Ack) {
                    acks.entry(stream).or_default().push(id);
                    continue;
                }
                let queue = held
                    .get(&op.key)
                    .map(|h| h.queue.clone())
                    .unwrap_or_else(|| Arc::from(""));
                let qk = qks
                    .entry(queue.clone())
                    .or_insert_with(|| QueueKeys::new(&queue));
                ack::add_to_pipe(&mut pipe, qk, stream, id, &op.settle);
            }
        }
        for (stream, ids) in acks.drain() {
            ack::add_acks_to_pipe(&mut pipe, stream, &ids);
        }
        loop {
            let r: redis::RedisResult<()> = pipe.query_async(&mut shared.broker.conn()).await;
            match r {
                Ok(()) => break,
                Err(e) => {
                    let d = backoff.next_delay();
                    tracing::warn!(error = %e, pending = batch.len(), retry_in = ?d, "settling tasks failed; retrying");
                    tokio::time::sleep(d).await;
                }
            }
        }
        backoff.reset();
        let mut held = shared.held.lock().unwrap();
        for op in batch.drain(..) {
            if let Some(h) = held.remove(&op.key)
                && let Some(g) = shared.gauges.get(&*h.queue)
            {
                g.dec();
            }
        }
    }
}

/// Renew the leases of every held task.
/// Runs until aborted, so leases stay renewed while draining.
async fn heartbeat_loop(shared: Arc<Shared>, name: String, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut by_stream: HashMap<Arc<str>, Vec<String>> = HashMap::new();
        for (stream, id) in shared.held.lock().unwrap().keys() {
            by_stream
                .entry(stream.clone())
                .or_default()
                .push(id.clone());
        }
        for (stream, ids) in by_stream {
            match reclaim::heartbeat(&shared.broker, &stream, &name, &ids).await {
                Ok(lost) if !lost.is_empty() => {
                    tracing::warn!(stream = %stream, lost = lost.len(), "lease lost: tasks were reclaimed by another worker and may run twice");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "renewing task leases failed"),
            }
        }
    }
}
