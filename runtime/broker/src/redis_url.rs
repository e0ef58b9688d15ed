//! Redis URLs (`redis://`, `rediss://`, `unix://`…), parsed with the `url`
//! crate: redacted for logs, and the `host:port` read or replaced.

/// The port Redis listens on when a URL gives none.
pub const DEFAULT_PORT: u16 = 6379;

/// A Redis URL safe for logs: the password (or a lone user name, which
/// Redis may take as the password) becomes `***`, as does a `pass`/
/// `password` query parameter (`redis+unix:///path?pass=...`); Sentinel
/// URLs also hide `sentinelPassword` ([`crate::sentinel_url::redact`], which
/// also redacts Cluster URLs: their host lists are no URL). Text that is
/// not a URL is kept up to its last `@`, which is replaced by `***@`.
pub fn redact(raw: &str) -> String {
    const MASK: &str = "***";
    if crate::sentinel_url::is_sentinel_url(raw) || crate::cluster_url::is_cluster_url(raw) {
        return crate::sentinel_url::redact(raw);
    }
    let Ok(mut url) = url::Url::parse(raw) else {
        return match raw.rfind('@') {
            Some(at) => format!("{MASK}{}", &raw[at..]),
            None => raw.to_owned(),
        };
    };
    let secret_query = |k: &str| k == "pass" || k == "password";
    let query_secret = url.query_pairs().any(|(k, _)| secret_query(&k));
    if url.password().is_none() && url.username().is_empty() && !query_secret {
        return raw.to_owned();
    }
    // Setting credentials fails only on URLs that cannot have a host, and
    // those have none to hide.
    if url.password().is_some() {
        let _ = url.set_password(Some(MASK));
    } else if !url.username().is_empty() {
        let _ = url.set_username(MASK);
    }
    if query_secret {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_query(&k) {
                    MASK.into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// `host:port` of a `redis://` or `rediss://` URL, without scheme,
/// credentials, db or query (the port defaults to 6379); `None` for any
/// other URL or one without a host.
pub fn endpoint(raw: &str) -> Option<String> {
    let url = tcp_url(raw)?;
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(format!("{host}:{}", url.port().unwrap_or(DEFAULT_PORT)))
}

/// `raw` with its `host:port` replaced by `endpoint` (credentials, db and
/// query kept); `None` if `raw` is not a `redis://`/`rediss://` URL or
/// `endpoint` is not `host:port`.
pub fn with_endpoint(raw: &str, endpoint: &str) -> Option<String> {
    let mut url = tcp_url(raw)?;
    let (host, port) = endpoint.rsplit_once(':')?;
    url.set_host(Some(host)).ok()?;
    url.set_port(Some(port.parse().ok()?)).ok()?;
    Some(url.to_string())
}

fn tcp_url(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw).ok()?;
    matches!(url.scheme(), "redis" | "rediss").then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_for_logs() {
        let table = [
            // (url, shown in logs)
            ("redis://h:1/0", "redis://h:1/0"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://:hunter2@10.0.0.1:6379/0",
                "redis://:***@10.0.0.1:6379/0",
            ),
            ("rediss://bob:hunter2@h/0", "rediss://bob:***@h/0"),
            ("redis://tok@h", "redis://***@h"),
            ("redis://:p%40ss@h:6379", "redis://:***@h:6379"),
            ("unix:///run/redis.sock", "unix:///run/redis.sock"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "unix:///run/redis.sock?password=hunter2",
                "unix:///run/redis.sock?password=***",
            ),
            ("not a url", "not a url"),
            ("redis//:hunter2@h:6379", "***@h:6379"),
            ("", ""),
            (
                "redis-sentinel://:pw@a:1,b:2/0?sentinelPassword=sp#m",
                "redis-sentinel://:***@a:1,b:2/0?sentinelPassword=***#m",
            ),
            (
                "redis-cluster://:pw@a:7000,b:7001/0",
                "redis-cluster://:***@a:7000,b:7001/0",
            ),
            (
                "redis-cluster://bob:p@w@a:7000,b:7001",
                "redis-cluster://bob:***@a:7000,b:7001",
            ),
            (
                "redis-cluster://a:7000,b:7001",
                "redis-cluster://a:7000,b:7001",
            ),
            ("rediss-cluster://tok@a:1", "rediss-cluster://***@a:1"),
        ];
        for (url, want) in table {
            assert_eq!(redact(url), want, "{url}");
        }
    }

    #[test]
    fn endpoints_drop_everything_but_host_and_port() {
        let table = [
            ("redis://:pw@r.example:6380/0", Some("r.example:6380")),
            ("rediss://user:p@ss@h/2?x=1", Some("h:6379")),
            ("redis://h:1", Some("h:1")),
            ("redis://[::1]:7000/0", Some("[::1]:7000")),
            ("redis://[::1]", Some("[::1]:6379")),
            ("http://h", None),
            ("unix:///run/redis.sock", None),
            ("redis://", None),
            ("not a url", None),
        ];
        for (url, want) in table {
            assert_eq!(endpoint(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn with_endpoint_replaces_only_host_and_port() {
        let table = [
            (
                "redis://:pw@hello-redis.default.svc:6379/0",
                "127.0.0.1:7000",
                Some("redis://:pw@127.0.0.1:7000/0"),
            ),
            (
                "rediss://u:p@r.example:6380",
                "127.0.0.1:7000",
                Some("rediss://u:p@127.0.0.1:7000"),
            ),
            (
                "redis://r:6379/2?protocol=resp3",
                "h:1",
                Some("redis://h:1/2?protocol=resp3"),
            ),
            ("http://r:6379", "h:1", None),
            ("redis://r:6379", "no-port", None),
            ("redis://r:6379", "h:port", None),
        ];
        for (url, endpoint, want) in table {
            assert_eq!(
                with_endpoint(url, endpoint).as_deref(),
                want,
                "{url} {endpoint}"
            );
        }
    }
}
