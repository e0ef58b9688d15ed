//! What the HTTP layer needs of the service's configuration: its identity
//! (for `/version` and logs), JWT settings, the body limit and whether
//! responses are checked against the spec.

pub use jsonwebtoken::Algorithm;
use secrecy::SecretString;

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
    /// Largest request body, bytes.
    pub body_limit: usize,
}
