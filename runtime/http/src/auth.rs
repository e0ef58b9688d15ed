//! JWT bearer authentication: verify (`Authorization: Bearer <token>`) and mint.
//!
//! One algorithm is configured (`jwt_algorithm`, HS256 by default). A token
//! is accepted only if its header names exactly that algorithm, its
//! signature verifies with the configured key, `exp` is in the future, `nbf`
//! (if any) in the past, and `aud` / `iss` match when configured. `alg: none`
//! cannot be expressed (it is not an algorithm here) and HS/RS confusion is
//! refused because the header algorithm must equal the configured one and
//! the key's family. `sub` is required: it is the user id.
//!
//! Also checked, each by a pure function with its own table test:
//! - the header's `typ`, when present, is `JWT` or `at+jwt` ([`check_typ`]);
//! - the key: once the service names its key (`jwt_kid`) or has previous
//!   keys, a token's `kid` picks the key and an unknown `kid` is refused; a
//!   token without `kid` is verified with the current key ([`KeyChoice`]);
//! - the leeway is at most [`JwtConfig::MAX_LEEWAY_SECS`];
//! - [`Auth::mint`]'s extra claims cannot set [`RESERVED_CLAIMS`]
//!   ([`check_extra_claims`]).
//!
//! Every failure is a 401 whose reason names the rule, never a key or the token.

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
    #[error("JWT: jwt_leeway: {0}")]
    Leeway(String),
    #[error("JWT: jwt_kid: {0}")]
    BadKid(String),
    #[error(
        "JWT: {env} holds previous HMAC secrets but jwt_algorithm is {alg:?}; previous secrets work with HS256, HS384 and HS512 only"
    )]
    PreviousNeedHmac { alg: Algorithm, env: String },
    #[error(
        "JWT: {env} is set: set jwt_kid (or PYM_JWT_KID) to name the current key, so that tokens tell which key signed them"
    )]
    PreviousNeedKid { env: String },
}

/// Claims [`Auth::mint`] sets itself; its extra claims cannot name them.
pub const RESERVED_CLAIMS: &[&str] = &["sub", "exp", "iss", "aud", "iat", "nbf"];

/// Extra claims for [`Auth::mint`]: a JSON object (or null) that sets none
/// of [`RESERVED_CLAIMS`]. The error names the claim.
pub fn check_extra_claims(extra: &Value) -> Result<(), String> {
    let m = match extra {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        _ => return Err("the extra claims must be a JSON object".into()),
    };
    match RESERVED_CLAIMS.iter().find(|c| m.contains_key(**c)) {
        Some(c) => Err(format!(
            "the extra claims cannot set '{c}': sub is the user id, exp comes from the lifetime \
             (--ttl / jwt_token_timeout), iss and aud from jwt_issuer and jwt_audience, \
             iat and nbf from the clock"
        )),
        None => Ok(()),
    }
}

/// The header's `typ`: absent, `JWT` or `at+jwt` (RFC 9068 access tokens),
/// case-insensitive, with or without the `application/` prefix. Any other
/// type names a token made for another purpose and is refused.
pub fn check_typ(typ: Option<&str>) -> Result<(), String> {
    let Some(t) = typ else { return Ok(()) };
    let t = t.trim().to_ascii_lowercase();
    let t = t.strip_prefix("application/").unwrap_or(&t);
    if matches!(t, "jwt" | "at+jwt") {
        Ok(())
    } else {
        Err("the token's type (typ) is not accepted: JWT or at+jwt expected".into())
    }
}

/// Which key verifies a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// The current key.
    Current,
    /// The previous key at this index.
    Previous(usize),
    /// The token names a key this service does not have.
    Unknown,
}

impl KeyChoice {
    /// The rule: a service that names no key (`current` none, no previous
    /// keys) ignores `kid` (tokens of identity providers carry one); else a
    /// token without `kid` gets the current key, and a `kid` must name the
    /// current or a previous key.
    pub fn of(token_kid: Option<&str>, current: Option<&str>, previous: &[&str]) -> Self {
        if current.is_none() && previous.is_empty() {
            return Self::Current;
        }
        let Some(k) = token_kid else {
            return Self::Current;
        };
        if current == Some(k) {
            return Self::Current;
        }
        previous
            .iter()
            .position(|p| *p == k)
            .map_or(Self::Unknown, Self::Previous)
    }
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
    /// The current key's id, put in minted tokens.
    kid: Option<String>,
    /// Verification-only keys, by id.
    previous: Vec<(String, DecodingKey)>,
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
            .field("kid", &self.kid)
            .field(
                "previous_kids",
                &self.previous.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
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
        let leeway = JwtConfig::check_leeway(c.leeway).map_err(AuthSetupError::Leeway)?;
        let auth = Self::with_keys(
            alg,
            decoding,
            encoding,
            c.issuer.clone(),
            c.audience.clone(),
            c.token_timeout,
            leeway,
        );
        auth.with_config_kids(c).map(Some)
    }

    /// Add the current key's id and the previous secrets of `c`.
    fn with_config_kids(mut self, c: &JwtConfig) -> Result<Self, AuthSetupError> {
        if let Some(k) = &c.kid {
            JwtConfig::check_kid(k).map_err(AuthSetupError::BadKid)?;
            self.kid = Some(k.clone());
        }
        if c.previous_secrets.is_empty() {
            return Ok(self);
        }
        let env = c.previous_secrets_env.clone();
        if !is_hmac(c.algorithm) {
            return Err(AuthSetupError::PreviousNeedHmac {
                alg: c.algorithm,
                env,
            });
        }
        if self.kid.is_none() {
            return Err(AuthSetupError::PreviousNeedKid { env });
        }
        for (kid, secret) in &c.previous_secrets {
            JwtConfig::check_kid(kid).map_err(|m| AuthSetupError::BadKid(format!("{env}: {m}")))?;
            self = self.with_previous_secret(kid, secret.expose_secret());
        }
        Ok(self)
    }

    /// Name the current key: minted tokens carry this `kid`, and tokens
    /// with another `kid` need a previous key of that id.
    #[must_use]
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_string());
        self
    }

    /// Accept tokens whose `kid` is `kid`, signed with the HMAC `secret`
    /// (verification only; a rotated-out key).
    #[must_use]
    pub fn with_previous_secret(mut self, kid: &str, secret: &str) -> Self {
        self.previous
            .push((kid.to_string(), DecodingKey::from_secret(secret.as_bytes())));
        self
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
            kid: None,
            previous: Vec::new(),
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
        if self.previous.is_empty() {
            // One key: decode once and check the header decode returns; the
            // header is parsed on its own only to explain a failure.
            return match self.decode(token, &self.decoding) {
                Ok(data) => {
                    self.check_header(&data.header)?;
                    claims(data.claims)
                }
                Err(e) => {
                    self.header_key(token)?;
                    Err(e)
                }
            };
        }
        let key = self.header_key(token)?;
        claims(self.decode(token, key)?.claims)
    }

    /// Check the token's header alone, so `alg: none`, foreign algorithms,
    /// a wrong `typ` or an unknown `kid` get a precise message; the key
    /// its `kid` names.
    fn header_key(&self, token: &str) -> Result<&DecodingKey, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            ApiError::token_invalid(format!(
                "the token is not a well-formed JWT ({})",
                kind_text(e.kind())
            ))
        })?;
        self.check_header(&header)
    }

    fn check_header(&self, header: &jsonwebtoken::Header) -> Result<&DecodingKey, ApiError> {
        if header.alg != self.algorithm {
            return Err(ApiError::token_invalid(format!(
                "the token is signed with {:?}; this service accepts only {:?}",
                header.alg, self.algorithm
            )));
        }
        check_typ(header.typ.as_deref()).map_err(ApiError::token_invalid)?;
        self.key_for(header.kid.as_deref())
    }

    /// Verify the signature and the registered claims with `key`.
    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
    ) -> Result<jsonwebtoken::TokenData<Map<String, Value>>, ApiError> {
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::token_expired(),
                k => ApiError::token_invalid(kind_text(k)),
            },
        )
    }

    /// The key that verifies a token with this `kid`.
    fn key_for(&self, kid: Option<&str>) -> Result<&DecodingKey, ApiError> {
        let previous: Vec<&str> = self.previous.iter().map(|(k, _)| k.as_str()).collect();
        match KeyChoice::of(kid, self.kid.as_deref(), &previous) {
            KeyChoice::Current => Ok(&self.decoding),
            KeyChoice::Previous(i) => Ok(&self.previous[i].1),
            KeyChoice::Unknown => Err(ApiError::token_invalid(
                "the token's key id (kid) names no key of this service",
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
    /// valid for the configured `jwt_token_timeout`. The extra claims cannot
    /// set `sub`, `exp`, `iss`, `aud`, `iat` or `nbf` ([`check_extra_claims`]).
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
        check_extra_claims(&extra)
            .map_err(|m| ApiError::server_error(format!("cannot mint token: {m}")))?;
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

    /// Sign arbitrary claims (as given) with the configured key; the header
    /// carries the key's `kid` when one is configured.
    pub fn encode(&self, claims: &Value) -> Result<String, ApiError> {
        let key = self.encoding.as_ref().ok_or_else(|| {
            ApiError::server_error(
                "this service has no private key to mint tokens (set jwt_private_key_env)",
            )
        })?;
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, claims, key)
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

/// The claims of a verified token: `sub` must be a non-empty string.
fn claims(claims: Map<String, Value>) -> Result<Claims, ApiError> {
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => Ok(Claims(Value::Object(claims))),
        _ => Err(ApiError::token_invalid(
            "the token's 'sub' (user id) must be a non-empty string",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "unit-test-secret-0123456789abcdef-0123";

    #[test]
    fn extra_claims_table() {
        let rows: &[(Value, Option<&str>)] = &[
            (Value::Null, None),
            (json!({}), None),
            (json!({"role": "admin", "jti": "x"}), None),
            (json!({"sub": "x"}), Some("'sub'")),
            (json!({"role": "a", "exp": 1}), Some("'exp'")),
            (json!({"iss": "x"}), Some("'iss'")),
            (json!({"aud": "x"}), Some("'aud'")),
            (json!({"iat": 1}), Some("'iat'")),
            (json!({"nbf": 1}), Some("'nbf'")),
            (json!([1]), Some("JSON object")),
            (json!("sub"), Some("JSON object")),
        ];
        for (extra, want) in rows {
            match (check_extra_claims(extra), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{extra}: {e}"),
                (got, want) => panic!("{extra}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn typ_table() {
        for (typ, ok) in [
            (None, true),
            (Some("JWT"), true),
            (Some("jwt"), true),
            (Some("Jwt"), true),
            (Some("application/jwt"), true),
            (Some("at+jwt"), true),
            (Some("application/at+JWT"), true),
            (Some("foo"), false),
            (Some(""), false),
            (Some("JWE"), false),
            (Some("dpop+jwt"), false),
            (Some("secevent+jwt"), false),
            (Some("logout+jwt"), false),
        ] {
            assert_eq!(check_typ(typ).is_ok(), ok, "{typ:?}");
        }
    }

    /// token kid, current kid, previous kids → the key chosen.
    type KeyRow<'a> = (Option<&'a str>, Option<&'a str>, &'a [&'a str], KeyChoice);

    #[test]
    fn key_choice_table() {
        use KeyChoice::{Current, Previous, Unknown};
        let prev: &[&str] = &["k1", "k0"];
        let rows: &[KeyRow<'_>] = &[
            // no key named by the service: kid ignored
            (None, None, &[], Current),
            (Some("idp-key"), None, &[], Current),
            // keys named
            (None, Some("k2"), prev, Current),
            (Some("k2"), Some("k2"), prev, Current),
            (Some("k1"), Some("k2"), prev, Previous(0)),
            (Some("k0"), Some("k2"), prev, Previous(1)),
            (Some("k9"), Some("k2"), prev, Unknown),
            (Some("K2"), Some("k2"), prev, Unknown),
            (Some(""), Some("k2"), prev, Unknown),
            (Some("other"), Some("k2"), &[], Unknown),
        ];
        for (tok, cur, prev, want) in rows {
            assert_eq!(KeyChoice::of(*tok, *cur, prev), *want, "{tok:?} {cur:?}");
        }
    }

    #[test]
    fn mint_refuses_reserved_claims_and_carries_kid() {
        let a = Auth::hs256(SECRET, Some("iss"), Some("aud")).with_kid("k2");
        for c in RESERVED_CLAIMS {
            let e = a.mint("u", json!({ *c: "x" })).unwrap_err();
            assert!(e.description.contains(&format!("'{c}'")), "{c}");
        }
        let t = a.mint("u", json!({"role": "r"})).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&t).unwrap().kid.as_deref(),
            Some("k2")
        );
        assert_eq!(a.verify(&t).unwrap().user_id(), "u");
        let plain = Auth::hs256(SECRET, None, None)
            .mint("u", Value::Null)
            .unwrap();
        assert_eq!(jsonwebtoken::decode_header(&plain).unwrap().kid, None);
    }

    #[test]
    fn previous_key_verifies_only_its_kid() {
        let old_secret = "old-unit-test-secret-0123456789abcdef";
        let old = Auth::hs256(old_secret, None, None).with_kid("k1");
        let new = Auth::hs256(SECRET, None, None)
            .with_kid("k2")
            .with_previous_secret("k1", old_secret);
        let t = old.mint("u", Value::Null).unwrap();
        assert!(new.verify(&t).is_ok());
        // The old secret under another kid: unknown key.
        let t = Auth::hs256(old_secret, None, None)
            .with_kid("k9")
            .mint("u", Value::Null)
            .unwrap();
        let e = new.verify(&t).unwrap_err();
        assert!(e.description.contains("kid"), "{}", e.description);
        // The old secret claiming the current kid: bad signature.
        let t = Auth::hs256(old_secret, None, None)
            .with_kid("k2")
            .mint("u", Value::Null)
            .unwrap();
        assert!(new.verify(&t).is_err());
    }
}
