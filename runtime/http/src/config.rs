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
    /// Clock skew tolerated on `exp` / `nbf`, seconds.
    pub leeway: u64,
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
