//! `--stats-redis-endpoint`: where an operator outside the cluster reaches a
//! service's Redis instead of the host in its URL Secret. Pure.

use std::str::FromStr;

/// `--stats-redis-endpoint <namespace>/<name>=<host:port>`: the autoscaler
/// reaches that PymService's Redis at `host:port` instead of the host in its
/// URL Secret (password, db and scheme are kept). `<namespace>/*` matches
/// every service of a namespace and `*` every service; the most specific
/// match wins. For operators running outside the cluster (development, e2e).
/// Only `redis://` and `rediss://` URLs are redirected: Sentinel and Cluster
/// URLs are used unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointOverride {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub endpoint: String,
}

impl FromStr for EndpointOverride {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "{s:?}: expected <namespace>/<name>=<host:port>, <namespace>/*=<host:port> or *=<host:port>"
            )
        };
        let (target, endpoint) = s.split_once('=').ok_or_else(bad)?;
        if endpoint.is_empty() || endpoint.contains(['/', '@', '?', '#']) || !endpoint.contains(':')
        {
            return Err(bad());
        }
        let (namespace, name) = match target {
            "*" => (None, None),
            t => {
                let (ns, n) = t.split_once('/').ok_or_else(bad)?;
                if ns.is_empty() || n.is_empty() {
                    return Err(bad());
                }
                (Some(ns.to_string()), (n != "*").then(|| n.to_string()))
            }
        };
        Ok(EndpointOverride {
            namespace,
            name,
            endpoint: endpoint.to_string(),
        })
    }
}

/// The override for service `ns/name`, most specific first.
pub fn find_override<'a>(
    overrides: &'a [EndpointOverride],
    ns: &str,
    name: &str,
) -> Option<&'a str> {
    let rank = |o: &EndpointOverride| match (&o.namespace, &o.name) {
        (Some(n), Some(m)) if n == ns && m == name => Some(2),
        (Some(n), None) if n == ns => Some(1),
        (None, None) => Some(0),
        _ => None,
    };
    overrides
        .iter()
        .filter_map(|o| rank(o).map(|r| (r, o.endpoint.as_str())))
        .max_by_key(|(r, _)| *r)
        .map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_the_most_specific_wins() {
        let o: Vec<EndpointOverride> = [
            "*=10.0.0.1:6379",
            "shop/*=127.0.0.1:7000",
            "shop/cart=127.0.0.1:7001",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(find_override(&o, "shop", "cart"), Some("127.0.0.1:7001"));
        assert_eq!(find_override(&o, "shop", "pay"), Some("127.0.0.1:7000"));
        assert_eq!(find_override(&o, "blog", "web"), Some("10.0.0.1:6379"));
        assert_eq!(find_override(&o[1..], "blog", "web"), None);
        for bad in [
            "shop/cart",
            "shop/cart=",
            "/x=h:1",
            "shop/=h:1",
            "a/b=redis://h:1",
            "a/b=host",
        ] {
            assert!(bad.parse::<EndpointOverride>().is_err(), "{bad}");
        }
    }
}
