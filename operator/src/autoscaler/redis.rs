//! Reading a service's queue statistics: the Redis URL from the Secret the
//! worker pods use (managed: `<name>-redis`, key `url`; external:
//! `spec.redis.external.urlSecretRef`), with an [`EndpointOverride`]
//! applied; one multiplexed connection per URL; at most
//! [`Config::max_concurrent_reads`] reads in flight. URLs are logged
//! redacted only.

use super::Config;
use super::endpoint::{EndpointOverride, find_override};
use super::scale::Sample;
use crate::crd::PymService;
use crate::desired::{self, names};
use crate::error::{Error, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use pym_broker::concurrency::queue_caps;
use pym_broker::redis_url::with_endpoint;
use pym_broker::schedule;
use pym_broker::stats::queue_stats;
use pym_broker::workers::{WorkerInfo, WorkerLiveness, live_on};
use pym_broker::{BrokerConn, connect_reader, redact_url};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

/// Time limit of one connect or one stats read.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the Redis URL Secret is re-read (edits are picked up).
const URL_REFRESH: Duration = Duration::from_secs(60);

/// The Redis URL of one service and when it was read from its Secret.
pub(super) type CachedUrl = Option<(String, Instant)>;

/// Reads queue statistics for every autoscaled service.
pub(super) struct StatsReader {
    client: Client,
    overrides: Vec<EndpointOverride>,
    /// One multiplexed connection per Redis URL.
    conns: Mutex<HashMap<String, BrokerConn>>,
    /// Bounds the reads (and connects) in flight.
    permits: Semaphore,
}

impl StatsReader {
    pub(super) fn new(client: Client, config: &Config) -> StatsReader {
        StatsReader {
            client,
            overrides: config.endpoint_overrides.clone(),
            conns: Mutex::default(),
            permits: Semaphore::new(config.max_concurrent_reads.max(1)),
        }
    }

    /// The summed statistics of `queues`; `url` caches the service's Redis
    /// URL between calls (cleared on failure, so a changed password or host
    /// is picked up on the next call).
    pub(super) async fn read(
        &self,
        svc: &PymService,
        queues: &[String],
        url: &mut CachedUrl,
    ) -> Result<Sample> {
        let u = match url {
            Some((u, at)) if at.elapsed() < URL_REFRESH => u.clone(),
            _ => {
                let u = self.resolve_url(svc).await?;
                *url = Some((u.clone(), Instant::now()));
                u
            }
        };
        let _permit = self.permits.acquire().await;
        let result = self.read_queues(&u, queues).await;
        if result.is_err() {
            self.conns.lock().await.remove(&u);
            *url = None;
        }
        result
    }

    async fn read_queues(&self, url: &str, queues: &[String]) -> Result<Sample> {
        let fail = |message: String| Error::QueueStats {
            endpoint: redact_url(url),
            message,
        };
        let mut conn = self.conn(url).await?;
        let mut all = Vec::with_capacity(queues.len());
        let mut next_tick: Option<u64> = None;
        for q in queues {
            let s = tokio::time::timeout(REDIS_TIMEOUT, queue_stats(&mut conn, q))
                .await
                .map_err(|_| fail("stats read timed out".into()))?
                .map_err(|e| fail(e.to_string()))?;
            all.push(s);
            let t = tokio::time::timeout(REDIS_TIMEOUT, schedule::next_tick(&mut conn, q))
                .await
                .map_err(|_| fail("next tick read timed out".into()))?
                .map_err(|e| fail(e.to_string()))?;
            next_tick = match (next_tick, t) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        // Unreadable caps only lose the cap rule: the statistics stand.
        let cap = tokio::time::timeout(REDIS_TIMEOUT, queue_caps(&mut conn, queues))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        Ok(Sample {
            cap,
            next_tick_ms: next_tick,
            ..Sample::of(&all)
        })
    }

    /// The live workers of the registry in the Redis at `url` (the URL
    /// [`StatsReader::read`] cached for the service).
    pub(super) async fn live_workers(&self, url: &str) -> Result<Vec<WorkerInfo>> {
        let _permit = self.permits.acquire().await;
        let mut conn = self.conn(url).await?;
        let fail = |message: String| Error::QueueStats {
            endpoint: redact_url(url),
            message,
        };
        tokio::time::timeout(REDIS_TIMEOUT, live_on(&mut conn, WorkerLiveness::default()))
            .await
            .map_err(|_| fail("worker registry read timed out".into()))?
            .map_err(|e| fail(e.to_string()))
    }

    async fn conn(&self, url: &str) -> Result<BrokerConn> {
        if let Some(c) = self.conns.lock().await.get(url) {
            return Ok(c.clone());
        }
        let fail = |m: String| Error::QueueStats {
            endpoint: redact_url(url),
            message: m,
        };
        // A plain or a Sentinel URL (then the connection follows the master).
        let conn = tokio::time::timeout(REDIS_TIMEOUT * 2, connect_reader(url, REDIS_TIMEOUT))
            .await
            .map_err(|_| fail("connect timed out".into()))?
            .map_err(|e| fail(e.to_string()))?;
        Ok(self
            .conns
            .lock()
            .await
            .entry(url.to_string())
            .or_insert(conn)
            .clone())
    }

    /// The Redis URL the worker pods use, with the endpoint override applied.
    async fn resolve_url(&self, svc: &PymService) -> Result<String> {
        let ns = svc.namespace().unwrap_or_default();
        let name = svc.name_any();
        let redis = svc.spec.redis.as_ref();
        let (field, secret, key) = match (
            redis.and_then(|r| r.managed.as_ref()),
            redis.and_then(|r| r.external.as_ref()),
        ) {
            (Some(_), _) => (
                "spec.redis.managed",
                names::redis(&name),
                desired::REDIS_SECRET_URL_KEY.to_string(),
            ),
            (None, Some(e)) => (
                "spec.redis.external.urlSecretRef",
                e.url_secret_ref.name.clone(),
                e.url_secret_ref.key.clone(),
            ),
            (None, None) => {
                return Err(Error::QueueStats {
                    endpoint: String::new(),
                    message: "spec.redis is not set".into(),
                });
            }
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let s = secrets
            .get_opt(&secret)
            .await?
            .ok_or_else(|| Error::SecretNotFound {
                field,
                namespace: ns.clone(),
                name: secret.clone(),
            })?;
        let url = s
            .data
            .as_ref()
            .and_then(|d| d.get(&key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .ok_or_else(|| Error::SecretKeyMissing {
                field,
                namespace: ns.clone(),
                name: secret.clone(),
                key: key.clone(),
            })?;
        let bad = |reason: String| Error::BadRedisUrl {
            field,
            namespace: ns.clone(),
            name: secret.clone(),
            key: key.clone(),
            reason,
        };
        stats_url(&url, find_override(&self.overrides, &ns, &name)).map_err(bad)
    }
}

/// The URL the autoscaler reads a service's queues with: `url` from the
/// Secret, checked (any of the four forms), with the endpoint override, if
/// any, applied. Overrides apply to plain `redis://` and `rediss://` URLs
/// only: a Sentinel or Cluster URL is passed through unchanged, since its
/// hosts are only seeds and the sentinels or the cluster then name the
/// master or the nodes by the addresses they know, which one override
/// could not redirect. The error never contains a password.
fn stats_url(url: &str, endpoint_override: Option<&str>) -> std::result::Result<String, String> {
    let url = url.trim();
    pym_broker::redis_url::describe(url)?;
    let plain = pym_broker::redis_url::endpoint(url).is_some();
    match endpoint_override {
        Some(ep) if plain => with_endpoint(url, ep).ok_or_else(|| {
            format!("the endpoint override {ep:?} for this service is not host:port")
        }),
        _ => Ok(url.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::stats_url;

    #[test]
    fn overrides_redirect_plain_urls_only() {
        let sentinel = "redis-sentinel://:pw@s1,s2/0#m";
        let cluster = "redis-cluster://:pw@n1:7000,n2:7001";
        let table = [
            // (url in the Secret, override, url read)
            ("redis://:pw@r:6379/0\n", None, Ok("redis://:pw@r:6379/0")),
            (
                "redis://:pw@r:6379/0",
                Some("127.0.0.1:7000"),
                Ok("redis://:pw@127.0.0.1:7000/0"),
            ),
            (
                "rediss://u:pw@r/1",
                Some("127.0.0.1:7000"),
                Ok("rediss://u:pw@127.0.0.1:7000/1"),
            ),
            (sentinel, None, Ok(sentinel)),
            (sentinel, Some("127.0.0.1:7000"), Ok(sentinel)),
            (cluster, Some("127.0.0.1:7000"), Ok(cluster)),
            (
                "redis://:pw@r:6379",
                Some("no-port"),
                Err("endpoint override \"no-port\""),
            ),
            ("redis-sentinel://:pw@s1", None, Err("no master name")),
            (
                "http://:pw@r",
                Some("127.0.0.1:7000"),
                Err("unknown scheme"),
            ),
        ];
        for (url, endpoint_override, want) in table {
            match (stats_url(url, endpoint_override), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{url}"),
                (Err(got), Err(part)) => {
                    assert!(got.contains(part), "{url}: {got:?} lacks {part:?}");
                    assert!(!got.contains("pw"), "{url}: {got:?} shows the password");
                }
                (got, want) => panic!("{url}: {got:?}, want {want:?}"),
            }
        }
    }
}
