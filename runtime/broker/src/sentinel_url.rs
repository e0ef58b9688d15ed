//! Redis Sentinel URLs, in Lettuce's well-known form:
//!
//! ```text
//! redis-sentinel://[[user]:password@]host1[:26379][,host2[:port]...][/db][?sentinelPassword=...]#masterName
//! rediss-sentinel://...   (TLS to the sentinels and to the master)
//! ```
//!
//! The credentials before `@` authenticate to the master (and replicas);
//! sentinels get their own with the `sentinelUsername`/`sentinelPassword`
//! query parameters (none by default). A pure parser: no I/O.

use std::fmt;

/// The port of a sentinel given without one.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

const PLAIN: &str = "redis-sentinel";
const TLS: &str = "rediss-sentinel";
const MASK: &str = "***";
const SENTINEL_USERNAME: &str = "sentinelUsername";
const SENTINEL_PASSWORD: &str = "sentinelPassword";

/// A parsed `redis-sentinel://` or `rediss-sentinel://` URL. Its `Debug`
/// hides both passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// `rediss-sentinel://`: TLS to the sentinels and to the master.
    pub tls: bool,
    /// `(host, port)` of every sentinel, in the URL's order.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the master under (`#masterName`).
    pub master_name: String,
    /// User name for the master (ACL), if any.
    pub username: Option<String>,
    /// Password for the master, if any.
    pub password: Option<String>,
    /// Database number on the master.
    pub db: i64,
    /// User name for the sentinels (`sentinelUsername`), if any.
    pub sentinel_username: Option<String>,
    /// Password for the sentinels (`sentinelPassword`), if any.
    pub sentinel_password: Option<String>,
}

impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hide = |p: &Option<String>| p.as_ref().map(|_| MASK);
        f.debug_struct("SentinelUrl")
            .field("tls", &self.tls)
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("username", &self.username)
            .field("password", &hide(&self.password))
            .field("db", &self.db)
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &hide(&self.sentinel_password))
            .finish()
    }
}

/// Whether `raw` is a Sentinel URL (by its scheme alone).
pub fn is_sentinel_url(raw: &str) -> bool {
    scheme(raw).is_some()
}

fn scheme(raw: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = raw.split_once("://")?;
    if scheme.eq_ignore_ascii_case(PLAIN) {
        Some((false, rest))
    } else if scheme.eq_ignore_ascii_case(TLS) {
        Some((true, rest))
    } else {
        None
    }
}

/// The parts of a URL: `(userinfo, hosts, path, query, fragment)`.
pub(crate) type Parts<'a> = (
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// Splits what follows `://`. The fragment is cut first, then the query,
/// then the credentials at the last `@` (a password may hold a raw `@`),
/// then the path at the first `/` after them.
pub(crate) fn split(rest: &str) -> Parts<'_> {
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (hosts, path) = match rest.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    (userinfo, hosts, path, query, fragment)
}

impl SentinelUrl {
    /// Parses `raw`; the error says which part is wrong and what is
    /// expected there (it never contains a password).
    pub fn parse(raw: &str) -> Result<SentinelUrl, String> {
        let (tls, rest) = scheme(raw).ok_or_else(|| {
            "the scheme must be redis-sentinel:// (or rediss-sentinel:// for TLS)".to_owned()
        })?;
        let (userinfo, hosts, path, query, fragment) = split(rest);
        let master_name = match fragment.map(decode).transpose()? {
            Some(m) if !m.is_empty() => m,
            _ => {
                return Err("no master name: end the URL with #<name>, the name the \
                     sentinels monitor the master under (`sentinel monitor <name> ...`)"
                    .to_owned());
            }
        };
        let (username, password) = credentials(userinfo)?;
        let (sentinel_username, sentinel_password) = sentinel_credentials(query)?;
        Ok(SentinelUrl {
            tls,
            sentinels: parse_hosts(hosts, "sentinel", DEFAULT_SENTINEL_PORT)?,
            master_name,
            username,
            password,
            db: parse_db(path)?,
            sentinel_username,
            sentinel_password,
        })
    }
}

/// `user:password`, `:password` or nothing.
pub(crate) fn credentials(
    userinfo: Option<&str>,
) -> Result<(Option<String>, Option<String>), String> {
    let Some(userinfo) = userinfo else {
        return Ok((None, None));
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return Err("credentials must be `:password@` or `user:password@` \
             (a lone word before `@` is ambiguous)"
            .to_owned());
    };
    let user = Some(decode(user)?).filter(|u| !u.is_empty());
    let password = Some(decode(password)?).filter(|p| !p.is_empty());
    Ok((user, password))
}

/// `sentinelUsername` and `sentinelPassword`; any other parameter is an
/// error (a typo would otherwise silently drop a password).
fn sentinel_credentials(query: Option<&str>) -> Result<(Option<String>, Option<String>), String> {
    let (mut user, mut password) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            SENTINEL_USERNAME => &mut user,
            SENTINEL_PASSWORD => &mut password,
            other => {
                return Err(format!(
                    "unknown query parameter `{other}`: the known ones are \
                     {SENTINEL_USERNAME} and {SENTINEL_PASSWORD}"
                ));
            }
        };
        *slot = Some(decode(value)?).filter(|v| !v.is_empty());
    }
    Ok((user, password))
}

/// `host1[:port][,host2[:port]...]`, shared by the Sentinel and Cluster
/// URLs: `what` names the hosts in errors ("sentinel", "cluster node"),
/// `default_port` is the port of a host given without one.
pub(crate) fn parse_hosts(
    hosts: &str,
    what: &str,
    default_port: u16,
) -> Result<Vec<(String, u16)>, String> {
    if hosts.is_empty() {
        return Err(format!(
            "no {what} hosts: expected host1[:port][,host2[:port]...] \
             after `://` (and the credentials)"
        ));
    }
    hosts
        .split(',')
        .map(|item| parse_host(item, what, default_port))
        .collect()
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_host(item: &str, what: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = item.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{what} host `{item}`: `[` without `]`"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => {
                    return Err(format!("{what} host `{item}`: expected `:port` after `]`"));
                }
            },
        }
    } else {
        match item.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (item, None),
        }
    };
    if host.is_empty() {
        return Err(format!(
            "empty {what} host in `{item}`: expected host1[:port][,host2[:port]...]"
        ));
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            format!("bad port `{p}` of {what} host `{host}`: expected a number from 1 to 65535")
        })?,
    };
    Ok((host.to_owned(), port))
}

pub(crate) fn parse_db(path: Option<&str>) -> Result<i64, String> {
    match path {
        None | Some("") => Ok(0),
        Some(p) => p.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
            format!("bad database `/{p}`: expected `/` and a database number, e.g. /0")
        }),
    }
}

/// Percent-decodes one part of the URL (`%XX`; anything else is kept).
pub(crate) fn decode(part: &str) -> Result<String, String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part.get(i + 1..i + 3).unwrap_or("");
            let b = u8::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 2)
                .ok_or_else(|| "bad percent-escape: expected % and two hex digits".to_owned())?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a percent-escape does not decode to UTF-8".to_owned())
}

/// A Sentinel URL safe for logs: the password before `@` and the value of
/// `sentinelPassword` become `***`. Works on text that does not parse, and
/// on any URL with a host list (Cluster URLs too).
pub fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:{MASK}")),
                None => out.push_str(MASK),
            }
            out.push('@');
            out.push_str(hosts);
        }
        None => out.push_str(rest),
    }
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case(SENTINEL_PASSWORD) => format!("{k}={MASK}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(sentinels: &[(&str, u16)], master: &str) -> SentinelUrl {
        SentinelUrl {
            tls: false,
            sentinels: sentinels.iter().map(|(h, p)| (h.to_string(), *p)).collect(),
            master_name: master.into(),
            username: None,
            password: None,
            db: 0,
            sentinel_username: None,
            sentinel_password: None,
        }
    }

    #[test]
    fn sentinel_urls_parse() {
        let s = |v: &str| Some(v.to_owned());
        let table = [
            ("redis-sentinel://h#m", url(&[("h", 26379)], "m")),
            (
                "redis-sentinel://a:1,b,c:3/2#mymaster",
                SentinelUrl {
                    db: 2,
                    ..url(&[("a", 1), ("b", 26379), ("c", 3)], "mymaster")
                },
            ),
            (
                "redis-sentinel://:p%40ss@h:5000/0#m",
                SentinelUrl {
                    password: s("p@ss"),
                    ..url(&[("h", 5000)], "m")
                },
            ),
            (
                "redis-sentinel://bob:pw@h#m",
                SentinelUrl {
                    username: s("bob"),
                    password: s("pw"),
                    ..url(&[("h", 26379)], "m")
                },
            ),
            (
                "REDISS-SENTINEL://[::1]:7000,[fe80::1]/1?sentinelPassword=sp&sentinelUsername=su#m%20x",
                SentinelUrl {
                    tls: true,
                    db: 1,
                    sentinel_username: s("su"),
                    sentinel_password: s("sp"),
                    ..url(&[("::1", 7000), ("fe80::1", 26379)], "m x")
                },
            ),
            (
                "redis-sentinel://:a@b@h/#m",
                SentinelUrl {
                    password: s("a@b"),
                    ..url(&[("h", 26379)], "m")
                },
            ),
            (
                "redis-sentinel://:p+q&r@h#m",
                SentinelUrl {
                    password: s("p+q&r"),
                    ..url(&[("h", 26379)], "m")
                },
            ),
        ];
        for (raw, want) in table {
            assert_eq!(SentinelUrl::parse(raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn bad_sentinel_urls_say_what_is_wrong() {
        let table = [
            // (url, a piece of the error)
            ("redis://h:6379#m", "scheme must be redis-sentinel://"),
            ("redis-sentinel://h:26379", "no master name"),
            ("redis-sentinel://h:26379#", "no master name"),
            ("redis-sentinel://#m", "no sentinel hosts"),
            ("redis-sentinel://:pw@/0#m", "no sentinel hosts"),
            ("redis-sentinel://a,,b#m", "empty sentinel host"),
            ("redis-sentinel://a:26379,:1#m", "empty sentinel host"),
            (
                "redis-sentinel://a:x#m",
                "bad port `x` of sentinel host `a`",
            ),
            ("redis-sentinel://a:70000#m", "bad port `70000`"),
            ("redis-sentinel://a:0#m", "bad port `0`"),
            ("redis-sentinel://a:#m", "bad port ``"),
            ("redis-sentinel://[::1#m", "`[` without `]`"),
            ("redis-sentinel://[::1]x#m", "expected `:port` after `]`"),
            ("redis-sentinel://a/x#m", "bad database `/x`"),
            ("redis-sentinel://a/-1#m", "bad database `/-1`"),
            ("redis-sentinel://a/0/1#m", "bad database `/0/1`"),
            ("redis-sentinel://secret@a#m", "credentials must be"),
            (
                "redis-sentinel://a?password=x#m",
                "unknown query parameter `password`",
            ),
            ("redis-sentinel://:se%2xcret@a#m", "bad percent-escape"),
            (
                "redis-sentinel://:se%ffcret@a#m",
                "does not decode to UTF-8",
            ),
        ];
        for (raw, want) in table {
            let err = SentinelUrl::parse(raw).expect_err(raw);
            assert!(err.contains(want), "{raw}: {err}");
            assert!(!err.contains("secret"), "{raw}: {err}");
        }
    }

    #[test]
    fn debug_hides_both_passwords() {
        let u = SentinelUrl::parse("redis-sentinel://:p1@h?sentinelPassword=p2#m").unwrap();
        let shown = format!("{u:?}");
        assert!(!shown.contains("p1") && !shown.contains("p2"), "{shown}");
    }

    #[test]
    fn sentinel_urls_are_redacted_for_logs() {
        let table = [
            ("redis-sentinel://h#m", "redis-sentinel://h#m"),
            (
                "redis-sentinel://:pw@a:1,b:2/0#m",
                "redis-sentinel://:***@a:1,b:2/0#m",
            ),
            (
                "rediss-sentinel://bob:pw@a?sentinelPassword=sp&sentinelUsername=su#m",
                "rediss-sentinel://bob:***@a?sentinelPassword=***&sentinelUsername=su#m",
            ),
            ("redis-sentinel://tok@a#m", "redis-sentinel://***@a#m"),
            ("redis-sentinel://:a@b@h#m", "redis-sentinel://:***@h#m"),
            ("redis-sentinel://:pw@a:x#", "redis-sentinel://:***@a:x#"),
        ];
        for (raw, want) in table {
            assert_eq!(redact(raw), want, "{raw}");
        }
    }
}
