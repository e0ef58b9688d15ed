//! Redis Cluster URLs:
//!
//! ```text
//! redis-cluster://[[user]:password@]host1[:6379][,host2[:port]...][/0]
//! ```
//!
//! The hosts are seed nodes: any reachable one tells where every slot is.
//! The credentials authenticate to every node. A cluster has only database
//! 0. `rediss-cluster://` (TLS) is refused with a clear error: not
//! supported yet. A pure parser: no I/O; the host list is parsed as in
//! [`crate::sentinel_url`].

use crate::redis_url::DEFAULT_PORT;
use crate::sentinel_url::{credentials, decode, parse_hosts, split};
use std::fmt;

const PLAIN: &str = "redis-cluster";
const TLS: &str = "rediss-cluster";

/// A parsed `redis-cluster://` URL. Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    /// `(host, port)` of every seed node, in the URL's order.
    pub nodes: Vec<(String, u16)>,
    /// User name (ACL), if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
}

impl fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterUrl")
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Whether `raw` is a Cluster URL (by its scheme alone, TLS or not).
pub fn is_cluster_url(raw: &str) -> bool {
    raw.split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case(PLAIN) || s.eq_ignore_ascii_case(TLS))
}

impl ClusterUrl {
    /// Parses `raw`; the error says which part is wrong and what is
    /// expected there (it never contains a password).
    pub fn parse(raw: &str) -> Result<ClusterUrl, String> {
        let rest = match raw.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case(PLAIN) => rest,
            Some((s, _)) if s.eq_ignore_ascii_case(TLS) => {
                return Err(
                    "rediss-cluster:// (TLS to a Redis Cluster) is not supported \
                     yet: use redis-cluster:// on a trusted network, or one TLS \
                     endpoint with rediss://"
                        .to_owned(),
                );
            }
            _ => return Err("the scheme must be redis-cluster://".to_owned()),
        };
        let (userinfo, hosts, path, query, fragment) = split(rest);
        if let Some(f) = fragment {
            return Err(format!(
                "unexpected fragment `#{}`: a cluster URL names no master",
                decode(f).unwrap_or_default()
            ));
        }
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            let key = q.split(['=', '&']).next().unwrap_or(q);
            return Err(format!(
                "unknown query parameter `{key}`: a cluster URL takes none"
            ));
        }
        match path {
            None | Some("") | Some("0") => {}
            Some(p) => {
                return Err(format!(
                    "bad database `/{p}`: a Redis Cluster has only database 0 \
                     (end the URL with /0 or nothing)"
                ));
            }
        }
        let (username, password) = credentials(userinfo)?;
        Ok(ClusterUrl {
            nodes: parse_hosts(hosts, "cluster node", DEFAULT_PORT)?,
            username,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(nodes: &[(&str, u16)]) -> ClusterUrl {
        ClusterUrl {
            nodes: nodes.iter().map(|(h, p)| (h.to_string(), *p)).collect(),
            username: None,
            password: None,
        }
    }

    #[test]
    fn cluster_urls_parse() {
        let s = |v: &str| Some(v.to_owned());
        let table = [
            ("redis-cluster://h", url(&[("h", 6379)])),
            (
                "redis-cluster://a:7000,b,[::1]:7002/0",
                url(&[("a", 7000), ("b", 6379), ("::1", 7002)]),
            ),
            ("REDIS-CLUSTER://h:1/", url(&[("h", 1)])),
            (
                "redis-cluster://:p%40ss@h:7000",
                ClusterUrl {
                    password: s("p@ss"),
                    ..url(&[("h", 7000)])
                },
            ),
            (
                "redis-cluster://bob:a@b@h1:1,h2:2",
                ClusterUrl {
                    username: s("bob"),
                    password: s("a@b"),
                    ..url(&[("h1", 1), ("h2", 2)])
                },
            ),
        ];
        for (raw, want) in table {
            assert_eq!(ClusterUrl::parse(raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn bad_cluster_urls_say_what_is_wrong() {
        let table = [
            // (url, a piece of the error)
            ("redis://h:7000", "scheme must be redis-cluster://"),
            ("h:7000", "scheme must be redis-cluster://"),
            (
                "rediss-cluster://:secret@h:7000",
                "rediss-cluster:// (TLS to a Redis Cluster) is not supported",
            ),
            ("redis-cluster://", "no cluster node hosts"),
            ("redis-cluster://:secret@/0", "no cluster node hosts"),
            ("redis-cluster://a,,b", "empty cluster node host"),
            (
                "redis-cluster://a:x",
                "bad port `x` of cluster node host `a`",
            ),
            ("redis-cluster://a:70000", "bad port `70000`"),
            ("redis-cluster://[::1", "`[` without `]`"),
            (
                "redis-cluster://a:1/2",
                "bad database `/2`: a Redis Cluster",
            ),
            ("redis-cluster://a:1/x", "bad database `/x`"),
            ("redis-cluster://a:1#m", "unexpected fragment `#m`"),
            (
                "redis-cluster://a:1?password=secret",
                "unknown query parameter `password`",
            ),
            ("redis-cluster://secret@a:1", "credentials must be"),
            ("redis-cluster://:se%2xcret@a", "bad percent-escape"),
        ];
        for (raw, want) in table {
            let err = ClusterUrl::parse(raw).expect_err(raw);
            assert!(err.contains(want), "{raw}: {err}");
            assert!(!err.contains("secret"), "{raw}: {err}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let u = ClusterUrl::parse("redis-cluster://u:hunter2@h:1").unwrap();
        let shown = format!("{u:?}");
        assert!(!shown.contains("hunter2") && shown.contains("u"), "{shown}");
    }

    #[test]
    fn every_key_of_a_queue_hashes_to_one_slot() {
        use pym_core::keys::{QueueKeys, processed};
        use redis::cluster_routing::Slot;
        for q in ["emails", "a", "q{x}", "with space"] {
            let k = QueueKeys::new(q);
            let mut all: Vec<String> = k.ready.to_vec();
            all.extend([k.delayed, k.signal, k.dead, k.dead_index]);
            all.push(processed(q, "0190-id"));
            let slot = Slot::for_key(&all[0]);
            for key in &all {
                assert_eq!(Slot::for_key(key), slot, "{q}: {key}");
            }
        }
    }
}
