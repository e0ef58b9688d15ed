//! What the HTTP layer needs of the service's configuration: its identity
//! (for `/version` and logs), JWT settings, the body limit, whether
//! responses are checked against the spec, the server's timeouts and limits
//! ([`HttpLimits`]) and the port of `/metrics`.

pub use jsonwebtoken::Algorithm;
use secrecy::SecretString;
use std::time::Duration;

/// JWT settings.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub algorithm: Algorithm,
    /// Name of the env var the HMAC secret came from (for error messages).
    pub secret_env: String,
    pub secret: Option<SecretString>,
    pub public_key_env: Option<String>,
    pub public_key: Option<SecretString>,
    pub private_key_env: Option<String>,
    pub private_key: Option<SecretString>,
    /// Lifetime of minted tokens, seconds.
    pub token_timeout: u64,
    /// Clock skew tolerated on `exp` / `nbf`, seconds (at most
    /// [`JwtConfig::MAX_LEEWAY_SECS`]).
    pub leeway: u64,
    /// Key id (`kid`) of the current key: minted tokens carry it, and once
    /// set a token's `kid` must name a known key.
    pub kid: Option<String>,
    /// Name of the env var the previous HMAC secrets came from (for errors).
    pub previous_secrets_env: String,
    /// Previous HMAC secrets, `(kid, secret)`: they verify tokens whose
    /// `kid` names them and never sign.
    pub previous_secrets: Vec<(String, SecretString)>,
    /// The cookie that carries the token when a request has no
    /// `Authorization` header (`jwt_cookie`; pymacaron's was `token`).
    /// `None`: tokens are read from the header only.
    pub cookie: Option<String>,
}

impl JwtConfig {
    /// The largest `jwt_leeway` accepted, seconds: a larger skew would keep
    /// expired tokens alive for minutes.
    pub const MAX_LEEWAY_SECS: u64 = 300;

    /// The leeway rule: at most [`JwtConfig::MAX_LEEWAY_SECS`].
    pub fn check_leeway(leeway: u64) -> Result<u64, String> {
        if leeway > Self::MAX_LEEWAY_SECS {
            return Err(format!(
                "{leeway} s is more than the {} s allowed; clocks this far apart need fixing (NTP), \
                 not a longer token life",
                Self::MAX_LEEWAY_SECS
            ));
        }
        Ok(leeway)
    }

    /// The cookie name rule (RFC 6265's token): 1 to 64 characters among
    /// ASCII letters, digits and `!#$%&'*+-.^_`|~`.
    pub fn check_cookie(name: &str) -> Result<(), String> {
        let ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if ok {
            Ok(())
        } else {
            Err("a cookie name is 1 to 64 letters, digits or !#$%&'*+-.^_`|~ (e.g. token)".into())
        }
    }

    /// The key id rule: 1 to 64 characters among ASCII letters, digits,
    /// `.`, `_` and `-` (a name, never a secret).
    pub fn check_kid(kid: &str) -> Result<(), String> {
        let ok = (1..=64).contains(&kid.len())
            && kid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(())
        } else {
            Err(
                "a key id (kid) is 1 to 64 characters among letters, digits, '.', '_' and '-'"
                    .into(),
            )
        }
    }
}

#[cfg(test)]
mod jwt_config_tests {
    use super::JwtConfig;

    #[test]
    fn leeway_bound_table() {
        for (leeway, ok) in [
            (0, true),
            (5, true),
            (300, true),
            (301, false),
            (86_400, false),
        ] {
            let r = JwtConfig::check_leeway(leeway);
            assert_eq!(r.is_ok(), ok, "{leeway}: {r:?}");
            if let Err(e) = r {
                assert!(e.contains("300 s"), "{e}");
            }
        }
    }

    #[test]
    fn kid_rule_table() {
        let long = "k".repeat(65);
        for (kid, ok) in [
            ("2026-12", true),
            ("key_1.v2", true),
            ("", false),
            ("a b", false),
            ("k=1", false),
            ("k,1", false),
            ("é", false),
            (long.as_str(), false),
        ] {
            assert_eq!(JwtConfig::check_kid(kid).is_ok(), ok, "{kid:?}");
        }
    }
}

/// The HTTP layer's settings (the runtime's `Config` converts into it).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub name: String,
    pub version: String,
    /// Environment name (`dev`, `staging`, `prod`, ...).
    pub env: String,
    pub jwt: JwtConfig,
    /// Check responses against the spec.
    pub validate_responses: bool,
    /// Largest request body, bytes. A request whose `Content-Length` is
    /// larger gets 413 before its body is read.
    pub body_limit: usize,
    /// Timeouts and caps of the server.
    pub limits: HttpLimits,
    /// Serve `/metrics` on this port alone and not on the API port (the
    /// runtime binds it on the API's host; `None`: on the API port, as the
    /// other built-ins).
    pub metrics_port: Option<u16>,
}

/// Timeouts and caps of the HTTP server (pym-config.yaml keys in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A client must send a request's headers within this time, or its
    /// connection is closed; a keep-alive connection idle for this long is
    /// closed too (`header_read_timeout_secs`).
    pub header_read_timeout: Duration,
    /// The whole request body must arrive within this time once the
    /// handler's operation starts reading it, or 408 (`body_timeout_secs`).
    pub body_timeout: Duration,
    /// A request not answered within this time gets 503 and its handler is
    /// dropped (`request_timeout_secs`).
    pub request_timeout: Duration,
    /// Requests handled at once; more get 503 at once, with `Retry-After`
    /// (`/healthz` and `/metrics` are not counted) (`max_in_flight`).
    pub max_in_flight: usize,
    /// Open connections; when full, the server stops accepting until one
    /// closes (`max_connections`).
    pub max_connections: usize,
}

impl HttpLimits {
    /// The defaults: headers 10 s, body 30 s, request 60 s, 1024 requests
    /// in flight, 10,000 connections.
    pub const DEFAULT: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(60),
        max_in_flight: 1024,
        max_connections: 10_000,
    };
    /// Longest timeout accepted (one day).
    pub const MAX_TIMEOUT_SECS: u64 = 86_400;
    /// Largest `max_in_flight` and `max_connections` accepted.
    pub const MAX_COUNT: usize = 10_000_000;
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
