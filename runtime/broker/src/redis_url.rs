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

/// The four URL forms the broker accepts, for error messages.
pub const ACCEPTED_FORMS: &str = "redis://[[user]:password@]host[:6379][/db], \
     rediss://... (TLS), \
     redis-sentinel://[[user]:password@]host1[:26379][,host2[:port]...][/db]#master \
     (rediss-sentinel:// for TLS), \
     or redis-cluster://[[user]:password@]host1[:6379][,host2[:port]...]";

/// Checks a Redis URL of any of the four forms the broker accepts and says
/// where it points, for a status (never a password):
///
/// - `redis://`, `rediss://`: `host:port` (as [`endpoint`]);
/// - `redis-sentinel://`, `rediss-sentinel://`:
///   `sentinel h1:26379,h2:26379 master mymaster`;
/// - `redis-cluster://`: `cluster h1:7000,h2:7001`.
///
/// The error names the form recognised by the scheme and what is wrong
/// with the URL, or, for any other scheme, lists the accepted forms. It
/// never contains a password, not even one holding a raw `#` or `?` that
/// the parsers cut in the wrong place (see `scrub`). Surrounding
/// whitespace (a Secret written with a trailing newline) is ignored. Pure:
/// no I/O.
pub fn describe(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(format!("the URL is empty: expected {ACCEPTED_FORMS}"));
    }
    if crate::sentinel_url::is_sentinel_url(raw) {
        let form = "Redis Sentinel URL (redis-sentinel:// or rediss-sentinel://)";
        let u = crate::sentinel_url::SentinelUrl::parse(raw)
            .map_err(|e| format!("{form}: {}", scrub(raw, &e)))?;
        if u.master_name.contains('@') {
            return Err(format!(
                "{form}: the master name after `#` holds an `@`: a password \
                 with a `#` in it must be percent-encoded (%23)"
            ));
        }
        return Ok(format!(
            "sentinel {} master {}",
            host_list(&u.sentinels),
            u.master_name
        ));
    }
    if crate::cluster_url::is_cluster_url(raw) {
        let form = "Redis Cluster URL (redis-cluster://)";
        let u = crate::cluster_url::ClusterUrl::parse(raw)
            .map_err(|e| format!("{form}: {}", scrub(raw, &e)))?;
        return Ok(format!("cluster {}", host_list(&u.nodes)));
    }
    match raw.split_once("://") {
        Some((scheme, _)) if matches!(scheme.to_ascii_lowercase().as_str(), "redis" | "rediss") => {
            let form = "Redis URL (redis:// or rediss://)";
            // url's parse errors name what is wrong, never the input.
            url::Url::parse(raw).map_err(|e| format!("{form}: {e}"))?;
            endpoint(raw).ok_or_else(|| {
                format!("{form}: no host: expected redis://[[user]:password@]host[:6379][/db]")
            })
        }
        // A scheme is letters, digits, `+`, `-` and `.`: anything else
        // before `://` may be a password, and is not shown.
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(format!(
                "unknown scheme `{scheme}://`: expected {ACCEPTED_FORMS}"
            ))
        }
        _ => Err(format!(
            "the URL does not start with a scheme (`name://`): expected {ACCEPTED_FORMS}"
        )),
    }
}

/// `h1:p1,h2:p2`, IPv6 hosts in brackets.
fn host_list(hosts: &[(String, u16)]) -> String {
    let one = |(h, p): &(String, u16)| match h.contains(':') {
        true => format!("[{h}]:{p}"),
        false => format!("{h}:{p}"),
    };
    hosts.iter().map(one).collect::<Vec<_>>().join(",")
}

/// A parser error safe to show: the Sentinel and Cluster parsers quote
/// parts of the URL in backticks, and a password holding a raw `#` or `?`
/// is cut at that character, so a part of it can land in the host list,
/// the query or the fragment and be quoted. Every quoted snippet that
/// holds an `@`, or that is found in `raw` but never wholly after its last
/// `@` (where the hosts are), becomes `***`. Quotes of the error's own text
/// (found nowhere in `raw`) stay.
fn scrub(raw: &str, error: &str) -> String {
    let Some(at) = raw.rfind('@') else {
        return error.to_owned();
    };
    let after = &raw[at + 1..];
    let mut masked = false;
    let parts: Vec<&str> = error
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            let quoted = i % 2 == 1;
            let secret = part.contains('@') || (raw.contains(part) && !after.contains(part));
            if quoted && !part.is_empty() && secret {
                masked = true;
                "***"
            } else {
                part
            }
        })
        .collect();
    let mut out = parts.join("`");
    if masked {
        out.push_str(
            " (parts that may hold the password are shown as ***; a password \
             must percent-encode `#` as %23 and `?` as %3F)",
        );
    }
    out
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

    #[test]
    fn describe_shows_where_each_form_points() {
        let table = [
            // (url, described)
            ("redis://:pw@r.example:6380/0", "r.example:6380"),
            ("rediss://u:p@h", "h:6379"),
            ("REDIS://h", "h:6379"),
            (" redis://h:1/0\n", "h:1"),
            ("redis://[::1]:7000", "[::1]:7000"),
            (
                "redis-sentinel://:pw@s1,s2:26380/1?sentinelPassword=sp#mymaster",
                "sentinel s1:26379,s2:26380 master mymaster",
            ),
            (
                "rediss-sentinel://u:pw@[::1]:5000#m",
                "sentinel [::1]:5000 master m",
            ),
            ("redis-sentinel://h#m\n", "sentinel h:26379 master m"),
            ("redis-cluster://:pw@a:7000,b:7001", "cluster a:7000,b:7001"),
            ("redis-cluster://bob:pw@a/0", "cluster a:6379"),
        ];
        for (url, want) in table {
            assert_eq!(describe(url).as_deref(), Ok(want), "{url}");
        }
    }

    #[test]
    fn describe_says_which_form_and_what_is_wrong() {
        let forms = [
            "redis://",
            "rediss://",
            "redis-sentinel://",
            "redis-cluster://",
        ];
        let table: [(&str, &[&str]); 16] = [
            // (url, parts of the error)
            ("", &["empty"]),
            ("http://r:6379", &["unknown scheme `http://`"]),
            ("unix:///run/redis.sock", &["unknown scheme `unix://`"]),
            ("r.example:6379", &["does not start with a scheme"]),
            ("redis://", &["Redis URL (redis://", "host"]),
            ("redis://h:99999", &["Redis URL (redis://", "port"]),
            ("redis-sentinel://h1,h2", &["Sentinel", "no master name"]),
            (
                "redis-sentinel://:pw@h:x#m",
                &["Sentinel", "bad port `x` of sentinel host `h`"],
            ),
            (
                "redis-sentinel://h?foo=1#m",
                &["Sentinel", "unknown query parameter `foo`"],
            ),
            ("redis-sentinel://#m", &["Sentinel", "no sentinel hosts"]),
            (
                "rediss-sentinel://h/x#m",
                &["Sentinel", "bad database `/x`"],
            ),
            ("redis-cluster://a/3", &["Cluster", "only database 0"]),
            ("rediss-cluster://a", &["Cluster", "not supported"]),
            ("redis-cluster://a#m", &["Cluster", "fragment"]),
            (
                "redis-cluster://a,,b",
                &["Cluster", "empty cluster node host"],
            ),
            // a raw `#` in the password: the parts it cut are hidden
            (
                "redis-sentinel://u:pa#ss@h#m",
                &["Sentinel", "bad port `***` of sentinel host `***`", "%23"],
            ),
        ];
        for (url, parts) in table {
            let err = describe(url).expect_err(url);
            for part in parts {
                assert!(err.contains(part), "{url}: {err:?} lacks {part:?}");
            }
            // An unknown form is answered with the accepted ones.
            if !url.contains("redis") {
                for form in forms {
                    assert!(err.contains(form), "{url}: {err:?} lacks {form}");
                }
            }
        }
    }

    #[test]
    fn describe_never_shows_a_password() {
        let table: [(&str, &[&str]); 19] = [
            // (url, secret parts that must not show)
            ("redis://:hunter2@h:1/0", &["hunter2"]),
            ("rediss://bob:hunter2@h", &["hunter2"]),
            ("redis://:hun#ter2@h", &["hun", "ter2"]),
            ("http://:hunter2@h", &["hunter2"]),
            ("hunter2", &["hunter2"]),
            ("bob:hunter2@h://x", &["hunter2"]),
            ("redis-sentinel://:hunter2@h#m", &["hunter2"]),
            (
                "redis-sentinel://u:hunter2@h?sentinelPassword=hunter2#m",
                &["hunter2"],
            ),
            ("redis-sentinel://:hunter2@h:bad#m", &["hunter2"]),
            ("redis-sentinel://:hunter2@h/x#m", &["hunter2"]),
            ("redis-sentinel://:hunter2@h?x=hunter2#m", &["hunter2"]),
            // a raw `#` or `?` in a password: the parsers cut it there
            ("redis-sentinel://u:hun#ter2@h#m", &["hun", "ter2"]),
            ("redis-sentinel://u:1#ter2@h#m", &["ter2"]),
            ("redis-sentinel://:hun?ter2@h#m", &["hun", "ter2"]),
            (
                "redis-sentinel://u:hun?sentinelPassword=ter2@h#m",
                &["hun", "ter2"],
            ),
            ("redis-cluster://:hunter2@a:x", &["hunter2"]),
            ("redis-cluster://:hun#ter2@a:7000", &["hun", "ter2"]),
            ("redis-cluster://:hun?ter2@a", &["hun", "ter2"]),
            ("redis-cluster://u:hun/ter2@a", &["hun", "ter2"]),
        ];
        for (url, secrets) in table {
            let shown = match describe(url) {
                Ok(s) | Err(s) => s,
            };
            for secret in secrets {
                assert!(!shown.contains(secret), "{url}: {shown:?} shows {secret:?}");
            }
        }
    }
}
