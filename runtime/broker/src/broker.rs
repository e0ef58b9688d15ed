//! The Redis broker handle: configuration, connections, queue registration.
//!
//! `enqueue` → `delay` (promotion) → `fetch` → (`retry` | `dead`) with
//! `reclaim` returning tasks of dead workers, and `stats` reading depth.

use crate::cluster_url::{ClusterUrl, is_cluster_url};
use crate::envelope::Signer;
use crate::metrics::TaskMetrics;
use crate::primary::{BrokerConn, Follower, FollowerConfig};
use crate::redis_url::redact as redact_url;
use crate::sentinel_url::{SentinelUrl, is_sentinel_url};
use crate::shards;
use pym_core::Metrics;
use pym_core::contract;
use pym_core::keys;
use pym_core::keys::QueueKeys;
use redis::AsyncConnectionConfig;
use redis::aio::{ConnectionManagerConfig, MultiplexedConnection};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Errors of the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Invalid(String),
}

/// Whether a Redis error means the broker is unreachable or has no master
/// right now (an API answers 503 and the client may retry), rather than a
/// bug or bad data.
pub fn redis_unavailable(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind as K, ServerErrorKind as S};
    // NOREPLICAS: the master has fewer good replicas than
    // `min-replicas-to-write` asks for, and refuses writes.
    e.code() == Some("NOREPLICAS")
        || matches!(
            e.kind(),
            K::Io
                | K::MasterNameNotFoundBySentinel
                | K::ClusterConnectionNotFound
                | K::Server(
                    S::ReadOnly | S::BusyLoading | S::MasterDown | S::TryAgain | S::ClusterDown
                )
        )
}

impl BrokerError {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            BrokerError::Redis(_) => "redis",
            BrokerError::Config(_) => "config",
            BrokerError::Invalid(_) => "invalid",
        }
    }

    /// The broker is unreachable or has no master right now (see
    /// [`redis_unavailable`]): an API answers 503, not 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, BrokerError::Redis(e) if redis_unavailable(e))
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// Where the broker is and how messages are signed.
#[derive(Clone)]
pub struct BrokerConfig {
    /// `redis://[:password@]host:port/db` or `rediss://...` for TLS, or a
    /// Sentinel URL `redis-sentinel://[[user]:password@]host1[:26379][,host2[:port]...][/db]#masterName`
    /// (see [`crate::sentinel_url`]), or a Cluster URL
    /// `redis-cluster://[[user]:password@]host1[:6379][,host2[:port]...]`
    /// (see [`crate::cluster_url`]).
    pub url: String,
    /// Secret that signs task envelopes; every producer and worker of a
    /// service must share it.
    pub secret: Vec<u8>,
    /// Time limit of one non-blocking Redis command.
    pub response_timeout: Duration,
    /// CA certificate (PEM) for `rediss://` (and `rediss-sentinel://`), if
    /// not in the system store.
    pub ca_file: Option<std::path::PathBuf>,
    /// Where producers and workers of this broker record task metrics
    /// (default: registered nowhere).
    pub metrics: Arc<TaskMetrics>,
    /// Sharded queues (see [`crate::shards`]): producers spread each over
    /// its shards, workers read them all.
    pub shards: shards::Declared,
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &redact_url(&self.url))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl BrokerConfig {
    pub fn new(url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        BrokerConfig {
            url: url.into(),
            secret: secret.into(),
            response_timeout: Duration::from_secs(5),
            ca_file: None,
            metrics: TaskMetrics::unregistered(),
            shards: shards::Declared::new(),
        }
    }

    /// Spread the queues of `declared` over their shards.
    pub fn with_shards(mut self, declared: shards::Declared) -> Self {
        self.shards = declared;
        self
    }

    /// Record task metrics in `registry`.
    pub fn with_metrics(mut self, registry: &Metrics) -> Self {
        self.metrics = TaskMetrics::registered(registry);
        self
    }

    /// Trust `ca_file` (PEM) for `rediss://` connections.
    pub fn with_ca_file(mut self, ca_file: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(ca_file.into());
        self
    }

    /// From `PYM_REDIS_URL` and `PYM_TASK_SECRET`.
    pub fn from_env() -> Result<Self> {
        let url = std::env::var(contract::ENV_REDIS_URL).map_err(|_| {
            BrokerError::Config(format!(
                "{} is not set: set it to the broker's URL, e.g. redis://127.0.0.1:6379/0",
                contract::ENV_REDIS_URL
            ))
        })?;
        let secret = std::env::var(contract::ENV_TASK_SECRET).map_err(|_| {
            BrokerError::Config(format!(
                "{} is not set: set it to a secret shared by the service's API and workers (it signs task messages)",
                contract::ENV_TASK_SECRET
            ))
        })?;
        let mut cfg = Self::new(url, secret);
        if let Ok(ca) = std::env::var(contract::ENV_REDIS_CA_FILE)
            && !ca.is_empty()
        {
            cfg = cfg.with_ca_file(ca);
        }
        Ok(cfg)
    }
}

/// A connected broker: cheap to clone, shared by all tasks of a process.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    /// The client of a plain URL; `None` with Sentinel (the master moves)
    /// and Cluster.
    client: Option<redis::Client>,
    /// The URL of a cluster (for per-node blocking connections).
    cluster: Option<ClusterUrl>,
    conn: BrokerConn,
    signer: Signer,
    metrics: Arc<TaskMetrics>,
    url: String,
    /// Declared shard counts.
    shards: shards::Declared,
    /// The queues this process registered, with the keys of their shards.
    registered_queues: Mutex<HashMap<String, Arc<QueueShards>>>,
}

/// The keys of each shard of a queue (one for an unsharded queue), and
/// the round-robin of the producer.
pub(crate) struct QueueShards {
    keys: Vec<QueueKeys>,
    next: AtomicUsize,
}

/// Which shard of a sharded queue a task is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardChoice<'a> {
    /// The next one, round-robin.
    Next,
    /// The shard of this key: the same key, the same shard, so a key's
    /// tasks keep their order.
    Key(&'a [u8]),
    /// Shard 0, whose keys are the queue's own: a flow-controlled task
    /// (unique, rate-limited, capped), whose lock, rate and cap keys are
    /// the queue's, so that on a Redis Cluster its enqueue, gate and ack
    /// each touch one slot ([`crate::flow::on_first_shard`]).
    First,
}

impl<'a> From<Option<&'a [u8]>> for ShardChoice<'a> {
    fn from(key: Option<&'a [u8]>) -> Self {
        key.map_or(ShardChoice::Next, ShardChoice::Key)
    }
}

impl QueueShards {
    /// The keys of the shard `choice` names.
    pub(crate) fn pick(&self, choice: ShardChoice<'_>) -> &QueueKeys {
        let n = self.keys.len();
        let i = match choice {
            _ if n == 1 => 0,
            ShardChoice::First => 0,
            ShardChoice::Key(k) => usize::from(shards::shard_of_key(k, n as u16)),
            ShardChoice::Next => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        &self.keys[i]
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("url", &redact_url(&self.inner.url))
            .finish()
    }
}

impl Broker {
    /// Connect (and check the connection with a first command).
    pub async fn connect(config: &BrokerConfig) -> Result<Broker> {
        if config.secret.is_empty() {
            return Err(BrokerError::Config(format!(
                "the task secret is empty: set {} to a non-empty secret",
                contract::ENV_TASK_SECRET
            )));
        }
        // rustls needs a process-wide crypto provider for rediss:// URLs.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = match &config.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                BrokerError::Config(format!(
                    "cannot read the Redis CA file {} ({}): {e}",
                    path.display(),
                    contract::ENV_REDIS_CA_FILE
                ))
            })?),
            None => None,
        };
        let (mut client, mut cluster) = (None, None);
        let conn = if is_sentinel_url(&config.url) {
            connect_sentinel(config, ca).await?
        } else if is_cluster_url(&config.url) {
            let (url, conn) = connect_cluster(config, ca.as_deref()).await?;
            cluster = Some(url);
            conn
        } else {
            let (c, conn) = connect_direct(config, ca).await?;
            client = Some(c);
            conn
        };
        Ok(Broker {
            inner: Arc::new(Inner {
                client,
                cluster,
                conn,
                signer: Signer::new(&config.secret),
                metrics: config.metrics.clone(),
                url: config.url.clone(),
                shards: config.shards.clone(),
                registered_queues: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The shared multiplexed connection (reconnects by itself, and with
    /// Sentinel follows the master: see [`BrokerConn`]).
    pub fn conn(&self) -> BrokerConn {
        self.inner.conn.clone()
    }

    /// A dedicated connection for blocking commands on `key` (no response
    /// timeout), since a blocking read stalls every other request on its
    /// socket. With Sentinel, to the master the sentinels name now; with
    /// Cluster, to the master of `key`'s slot now (one command blocks on
    /// the keys of one slot only). Callers get a new one after an error.
    pub async fn blocking_conn(&self, key: &str) -> Result<MultiplexedConnection> {
        let cfg = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(CONNECTION_TIMEOUT));
        if let (Some(url), Some(cluster)) = (&self.inner.cluster, self.inner.conn.cluster_conn()) {
            return Ok(crate::cluster::node_conn(cluster, url, key, &cfg).await?);
        }
        let conn = match (&self.inner.client, self.inner.conn.follower()) {
            (_, Some(follower)) => follower.dedicated(&cfg).await?,
            (Some(client), None) => {
                client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await?
            }
            (None, None) => unreachable!("a broker without Sentinel nor Cluster has a client"),
        };
        Ok(conn)
    }

    /// Whether the broker is a Redis Cluster (`redis-cluster://`): then
    /// nothing spans queues in one command (see [`crate::cluster_url`]).
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// Counts the moves of the Redis master (always 0 without Sentinel):
    /// holders of a [`Broker::blocking_conn`] taken at another generation
    /// should take a new one, as theirs may be on the former master.
    pub fn master_generation(&self) -> u64 {
        self.inner.conn.follower().map_or(0, |f| f.generation())
    }

    pub fn signer(&self) -> &Signer {
        &self.inner.signer
    }

    /// `PING` the server: `Err` holds the error's kind only, as its text
    /// may contain the URL.
    pub async fn ping(&self) -> std::result::Result<(), String> {
        let mut conn = self.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| format!("{:?}", e.kind()))
    }

    /// Where task metrics are recorded ([`BrokerConfig::metrics`]).
    pub fn metrics(&self) -> &Arc<TaskMetrics> {
        &self.inner.metrics
    }

    /// Add `queue` to the queue registry, and its declared shard count to
    /// the shard registry, once per process.
    pub(crate) async fn register_queue(&self, queue: &str) -> Result<Arc<QueueShards>> {
        if let Some(k) = self.inner.registered_queues.lock().unwrap().get(queue) {
            return Ok(k.clone());
        }
        let _: () = redis::cmd("SADD")
            .arg(keys::QUEUES)
            .arg(queue)
            .query_async(&mut self.conn())
            .await?;
        let n = self.declared_shards(queue);
        if n > 1 {
            shards::record(&mut self.conn(), queue, n).await?;
        }
        let keys = Arc::new(QueueShards {
            keys: keys::shards(queue, n)
                .iter()
                .map(|s| QueueKeys::new(s))
                .collect(),
            next: AtomicUsize::new(0),
        });
        self.inner
            .registered_queues
            .lock()
            .unwrap()
            .insert(queue.to_owned(), keys.clone());
        Ok(keys)
    }

    /// The shard count this process declares for `queue` (1: unsharded).
    pub fn declared_shards(&self, queue: &str) -> u16 {
        self.inner.shards.get(queue).copied().unwrap_or(1)
    }

    /// The shards a worker of `queues` reads: every shard declared here or
    /// recorded in Redis (see [`shards::layout`]).
    pub async fn shard_layout(&self, queues: &[String]) -> Result<Vec<String>> {
        let recorded = shards::recorded(&mut self.conn()).await?;
        Ok(shards::layout(queues, &self.inner.shards, &recorded))
    }

    /// Every queue ever used on this Redis, sorted.
    pub async fn queues(&self) -> Result<Vec<String>> {
        let mut q: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::QUEUES)
            .query_async(&mut self.conn())
            .await?;
        q.sort();
        Ok(q)
    }
}

/// Time limit of connecting to Redis (and of a Sentinel lookup).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the Redis at `url`, plain, Sentinel (then it follows
/// the master) or Cluster, for readers that are not a broker and hold no task secret:
/// the operator's autoscaler reads queue statistics and the worker
/// registry with it.
pub async fn connect_reader(url: &str, response_timeout: Duration) -> Result<BrokerConn> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = BrokerConfig::new(url, Vec::new());
    config.response_timeout = response_timeout;
    if is_sentinel_url(url) {
        connect_sentinel(&config, None).await
    } else if is_cluster_url(url) {
        Ok(connect_cluster(&config, None).await?.1)
    } else {
        Ok(connect_direct(&config, None).await?.1)
    }
}

/// A plain URL: a client, and the shared connection manager on it.
async fn connect_direct(
    config: &BrokerConfig,
    ca: Option<Vec<u8>>,
) -> Result<(redis::Client, BrokerConn)> {
    let invalid = |e: redis::RedisError| {
        BrokerError::Config(format!(
            "invalid Redis URL {}: {e}",
            redact_url(&config.url)
        ))
    };
    let client = match ca {
        Some(pem) => {
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(config.url.as_str(), certs).map_err(invalid)?
        }
        None => redis::Client::open(config.url.as_str()).map_err(invalid)?,
    };
    let cm_config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.response_timeout))
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(5))
        .set_number_of_retries(3);
    let conn = client.get_connection_manager_with_config(cm_config).await?;
    Ok((client, BrokerConn::direct(conn)))
}

/// A Cluster URL: the cluster connection (TLS is refused by the parser,
/// so a CA file is an error too).
async fn connect_cluster(
    config: &BrokerConfig,
    ca: Option<&[u8]>,
) -> Result<(ClusterUrl, BrokerConn)> {
    let url = ClusterUrl::parse(&config.url).map_err(|e| {
        BrokerError::Config(format!(
            "invalid Redis Cluster URL {}: {e}",
            redact_url(&config.url)
        ))
    })?;
    if ca.is_some() {
        return Err(BrokerError::Config(format!(
            "{} is set but redis-cluster:// does not use TLS",
            contract::ENV_REDIS_CA_FILE
        )));
    }
    let conn = crate::cluster::connect(&url, config.response_timeout, CONNECTION_TIMEOUT).await?;
    Ok((url, BrokerConn::cluster(conn)))
}

/// A Sentinel URL: the connection that follows the master.
async fn connect_sentinel(config: &BrokerConfig, ca: Option<Vec<u8>>) -> Result<BrokerConn> {
    let url = SentinelUrl::parse(&config.url).map_err(|e| {
        BrokerError::Config(format!(
            "invalid Redis Sentinel URL {}: {e}",
            redact_url(&config.url)
        ))
    })?;
    let cfg = FollowerConfig {
        response_timeout: config.response_timeout,
        connection_timeout: CONNECTION_TIMEOUT,
        ca,
    };
    Ok(Follower::connect(&url, cfg).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_secrets() {
        let cfg = BrokerConfig::new("redis://:pw@h", "s3cret");
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("pw@") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn unreachable_redis_is_unavailable_not_a_bug() {
        use redis::ErrorKind as K;
        let io = |k: std::io::ErrorKind| redis::RedisError::from(std::io::Error::from(k));
        let server = |r: &str| match redis::parse_redis_value(format!("-{r}\r\n").as_bytes()) {
            Ok(redis::Value::ServerError(e)) => redis::RedisError::from(e),
            other => panic!("{other:?}"),
        };
        let table = [
            (io(std::io::ErrorKind::ConnectionRefused), true),
            (io(std::io::ErrorKind::TimedOut), true),
            (io(std::io::ErrorKind::BrokenPipe), true),
            (
                redis::RedisError::from((K::MasterNameNotFoundBySentinel, "none")),
                true,
            ),
            (
                server("READONLY You can't write against a read only replica."),
                true,
            ),
            (server("LOADING loading"), true),
            (server("MASTERDOWN down"), true),
            (
                server("NOREPLICAS Not enough good replicas to write."),
                true,
            ),
            (server("WRONGTYPE Operation against a key"), false),
            (server("ERR syntax error"), false),
            (server("NOSCRIPT no"), false),
            (
                redis::RedisError::from((K::AuthenticationFailed, "bad")),
                false,
            ),
            (
                redis::RedisError::from((K::UnexpectedReturnType, "type")),
                false,
            ),
        ];
        for (e, want) in table {
            assert_eq!(
                BrokerError::Redis(e.clone()).is_unavailable(),
                want,
                "{e:?}"
            );
        }
        assert!(!BrokerError::Config("x".into()).is_unavailable());
    }
}
