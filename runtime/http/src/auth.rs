//! JWT bearer authentication: verify (`Authorization: Bearer <token>`) and mint.
//!
//! One algorithm is configured (`jwt_algorithm`, HS256 by default). A token
//! is accepted only if its header names exactly that algorithm, its
//! signature verifies with the configured key, `exp` is in the future, `nbf`
//! (if any) in the past, and `aud` / `iss` match when configured. `alg: none`
//! cannot be expressed (it is not an algorithm here) and HS/RS confusion is
//! refused because the header algorithm must equal the configured one and
//! the key's family. `sub` is required: it is the user id.

use crate::config::JwtConfig;
use crate::error::ApiError;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why an [`Auth`] could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(
        "JWT: no secret for {alg:?}: set the environment variable {env} (named by jwt_secret_env in pym-config.yaml)"
    )]
    MissingSecret { alg: Algorithm, env: String },
    #[error(
        "JWT: {alg:?} needs a PEM public key: set jwt_public_key_env in pym-config.yaml and that environment variable"
    )]
    MissingPublicKey { alg: Algorithm },
    #[error("JWT: the key in {env} is not a valid PEM key for {alg:?}: {message}")]
    BadKey {
        alg: Algorithm,
        env: String,
        message: String,
    },
}

/// Verified claims of the caller's token.
#[derive(Clone, PartialEq)]
pub struct Claims(pub Value);

impl Claims {
    /// The user id (`sub`).
    pub fn user_id(&self) -> &str {
        self.0.get("sub").and_then(Value::as_str).unwrap_or("")
    }
    /// One claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Claims(sub={:?})", self.user_id())
    }
}

/// Token verifier and minter.
#[derive(Clone)]
pub struct Auth {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    token_timeout: u64,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("can_mint", &self.encoding.is_some())
            .finish()
    }
}

fn is_hmac(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl Auth {
    /// Build from the config; `Ok(None)` when no key is configured at all.
    pub fn from_config(c: &JwtConfig) -> Result<Option<Self>, AuthSetupError> {
        let alg = c.algorithm;
        let (decoding, encoding) = if is_hmac(alg) {
            let Some(secret) = &c.secret else {
                return Ok(None);
            };
            let b = secret.expose_secret().as_bytes();
            (
                DecodingKey::from_secret(b),
                Some(EncodingKey::from_secret(b)),
            )
        } else {
            let Some(public) = &c.public_key else {
                if c.private_key.is_some() {
                    return Err(AuthSetupError::MissingPublicKey { alg });
                }
                return Ok(None);
            };
            let env = c.public_key_env.clone().unwrap_or_default();
            let decoding = decoding_pem(alg, public).map_err(|m| AuthSetupError::BadKey {
                alg,
                env,
                message: m,
            })?;
            let encoding = match &c.private_key {
                None => None,
                Some(p) => Some(encoding_pem(alg, p).map_err(|m| AuthSetupError::BadKey {
                    alg,
                    env: c.private_key_env.clone().unwrap_or_default(),
                    message: m,
                })?),
            };
            (decoding, encoding)
        };
        Ok(Some(Self::with_keys(
            alg,
            decoding,
            encoding,
            c.issuer.clone(),
            c.audience.clone(),
            c.token_timeout,
            c.leeway,
        )))
    }

    /// Like [`Auth::from_config`] but an error when no key is configured.
    pub fn required(c: &JwtConfig) -> Result<Self, AuthSetupError> {
        Self::from_config(c)?.ok_or_else(|| {
            if is_hmac(c.algorithm) {
                AuthSetupError::MissingSecret {
                    alg: c.algorithm,
                    env: c.secret_env.clone(),
                }
            } else {
                AuthSetupError::MissingPublicKey { alg: c.algorithm }
            }
        })
    }

    /// HS256 with `secret` (handy in tests).
    pub fn hs256(secret: &str, issuer: Option<&str>, audience: Option<&str>) -> Self {
        Self::with_keys(
            Algorithm::HS256,
            DecodingKey::from_secret(secret.as_bytes()),
            Some(EncodingKey::from_secret(secret.as_bytes())),
            issuer.map(String::from),
            audience.map(String::from),
            3600,
            0,
        )
    }

    /// An asymmetric algorithm from PEM keys (private key optional: needed only to mint).
    pub fn pem(
        alg: Algorithm,
        public_pem: &str,
        private_pem: Option<&str>,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, String> {
        let dec = decoding_pem(alg, &SecretString::from(public_pem))?;
        let enc = match private_pem {
            Some(p) => Some(encoding_pem(alg, &SecretString::from(p))?),
            None => None,
        };
        Ok(Self::with_keys(
            alg,
            dec,
            enc,
            issuer.map(String::from),
            audience.map(String::from),
            3600,
            0,
        ))
    }

    fn with_keys(
        algorithm: Algorithm,
        decoding: DecodingKey,
        encoding: Option<EncodingKey>,
        issuer: Option<String>,
        audience: Option<String>,
        token_timeout: u64,
        leeway: u64,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &issuer {
            Some(i) => {
                validation.set_issuer(&[i]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &audience {
            Some(a) => {
                validation.set_audience(&[a]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self {
            algorithm,
            decoding,
            encoding,
            validation,
            issuer,
            audience,
            token_timeout,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Verify a raw token (no `Bearer ` prefix).
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        // Check the header first so `alg: none` and foreign algorithms get a
        // precise message.
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            ApiError::token_invalid(format!(
                "the token is not a well-formed JWT ({})",
                kind_text(e.kind())
            ))
        })?;
        if header.alg != self.algorithm {
            return Err(ApiError::token_invalid(format!(
                "the token is signed with {:?}; this service accepts only {:?}",
                header.alg, self.algorithm
            )));
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &self.validation)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature => ApiError::token_expired(),
                    k => ApiError::token_invalid(kind_text(k)),
                })?;
        let claims = Value::Object(data.claims);
        match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => Ok(Claims(claims)),
            _ => Err(ApiError::token_invalid(
                "the token's 'sub' (user id) must be a non-empty string",
            )),
        }
    }

    /// Verify the value of an `Authorization` header.
    pub fn verify_header(&self, header: Option<&str>) -> Result<(Claims, String), ApiError> {
        let Some(h) = header else {
            return Err(ApiError::authorization_header_missing());
        };
        let h = h.trim();
        if h.is_empty() || h.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::authorization_header_missing());
        }
        let token = match h.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => {
                return Err(ApiError::token_invalid(
                    "the Authorization header must be 'Bearer <token>'",
                ));
            }
        };
        if token.is_empty() {
            return Err(ApiError::authorization_header_missing());
        }
        Ok((self.verify(token)?, token.to_string()))
    }

    /// Mint a token for `user_id` with extra claims (an object, or null),
    /// valid for the configured `jwt_token_timeout`.
    pub fn mint(&self, user_id: &str, extra: Value) -> Result<String, ApiError> {
        self.mint_for(user_id, extra, self.token_timeout)
    }

    /// Mint with an explicit lifetime in seconds.
    pub fn mint_for(
        &self,
        user_id: &str,
        extra: Value,
        lifetime_secs: u64,
    ) -> Result<String, ApiError> {
        let now = now_secs();
        let mut claims = json!({"sub": user_id, "iat": now, "exp": now + lifetime_secs});
        if let Some(i) = &self.issuer {
            claims["iss"] = json!(i);
        }
        if let Some(a) = &self.audience {
            claims["aud"] = json!(a);
        }
        if let Value::Object(m) = extra {
            for (k, v) in m {
                claims[k] = v;
            }
        }
        self.encode(&claims)
    }

    /// Sign arbitrary claims (as given) with the configured key.
    pub fn encode(&self, claims: &Value) -> Result<String, ApiError> {
        let key = self.encoding.as_ref().ok_or_else(|| {
            ApiError::server_error(
                "this service has no private key to mint tokens (set jwt_private_key_env)",
            )
        })?;
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, key)
            .map_err(|e| ApiError::server_error(format!("cannot mint token: {e}")))
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn kind_text(k: &ErrorKind) -> String {
    match k {
        ErrorKind::InvalidToken => "the token is not a well-formed JWT".into(),
        ErrorKind::InvalidSignature => "the token's signature is invalid".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token's algorithm is not accepted".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no '{c}' claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("the token's '{c}' claim is malformed"),
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer (iss) is not accepted".into(),
        ErrorKind::InvalidAudience => "the token's audience (aud) is not accepted".into(),
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "the token is not a well-formed JWT".into()
        }
        other => format!("the token is invalid ({other:?})"),
    }
}

/// The PEM key family an asymmetric algorithm takes.
enum PemFamily {
    Rsa,
    Ec,
    Ed,
}

fn pem_family(alg: Algorithm) -> Result<PemFamily, String> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Ok(PemFamily::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Ok(PemFamily::Ec),
        Algorithm::EdDSA => Ok(PemFamily::Ed),
        _ => Err("not an asymmetric algorithm".into()),
    }
}

fn decoding_pem(alg: Algorithm, pem: &SecretString) -> Result<DecodingKey, String> {
    let b = pem.expose_secret().as_bytes();
    match pem_family(alg)? {
        PemFamily::Rsa => DecodingKey::from_rsa_pem(b),
        PemFamily::Ec => DecodingKey::from_ec_pem(b),
        PemFamily::Ed => DecodingKey::from_ed_pem(b),
    }
    .map_err(|e| e.to_string())
}

fn encoding_pem(alg: Algorithm, pem: &SecretString) -> Result<EncodingKey, String> {
    let b = pem.expose_secret().as_bytes();
    match pem_family(alg)? {
        PemFamily::Rsa => EncodingKey::from_rsa_pem(b),
        PemFamily::Ec => EncodingKey::from_ec_pem(b),
        PemFamily::Ed => EncodingKey::from_ed_pem(b),
    }
    .map_err(|e| e.to_string())
}
