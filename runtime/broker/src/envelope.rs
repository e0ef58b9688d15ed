//! The task envelope: versioned wire format of one task, signed with HMAC.
//!
//! On the wire a message is `<hex HMAC-SHA256>.<envelope JSON>`. The MAC key is
//! derived from the service secret (HKDF-SHA256), so a message written into Redis by
//! anyone without the secret, or altered after it was written, never runs:
//! [`Signer::open`] refuses it and the worker dead-letters it with the reason.
//!
//! The caller's bearer token, when the context carries one, is also
//! encrypted (XChaCha20-Poly1305, key derived from the same secret): whoever
//! can read Redis (a `MONITOR`, a dump, a dead-letter listing) sees
//! `xc1:<ciphertext>`, never a token they could replay against the API.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use pym_core::Context;
use pym_core::Priority;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Envelope format version written by this build.
pub const VERSION: u32 = 1;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of an encrypted token inside an envelope (format version 1).
const SEALED_TOKEN_PREFIX: &str = "xc1:";
const NONCE_LEN: usize = 24;

/// HKDF `info` of the key that signs envelopes. Until v2 the keys were
/// `HMAC(secret, "pym task envelope v1")`; messages written before that
/// change no longer verify (pym is pre-1.0: no compatibility kept).
const KEY_INFO_MAC: &[u8] = b"pym task envelope mac v2";
/// HKDF `info` of the key that encrypts tokens.
const KEY_INFO_TOKEN: &[u8] = b"pym task token key v2";

/// One task on its way to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version ([`VERSION`]).
    pub v: u32,
    /// Unique id of this task (kept across retries).
    pub id: Uuid,
    /// Registered task name.
    pub task: String,
    pub queue: String,
    #[serde(default)]
    pub priority: Priority,
    /// Arguments, as the task's `Args` serialise to JSON.
    pub args: Box<RawValue>,
    /// Caller's context, restored in the worker.
    #[serde(default, skip_serializing_if = "Context::is_system")]
    pub ctx: Context,
    /// 0 on the first run, n on the n-th retry.
    #[serde(default)]
    pub attempt: u32,
    /// Milliseconds since the epoch when first enqueued.
    pub created_at: u64,
    /// When the task is due (ms since the epoch), if delayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<u64>,
    /// Error of the previous attempt, on retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The first attempt must start before this (ms since the epoch), else
    /// the task expires; retries of a task that started are not expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Unique and limit keys, a reserved rate slot ([`crate::flow`]).
    #[serde(default, skip_serializing_if = "crate::flow::Flow::is_empty")]
    pub flow: crate::flow::Flow,
}

impl Envelope {
    pub fn new(
        task: &str,
        queue: &str,
        priority: Priority,
        args: Box<RawValue>,
        ctx: Context,
    ) -> Self {
        Envelope {
            v: VERSION,
            id: Uuid::now_v7(),
            task: task.to_owned(),
            queue: queue.to_owned(),
            priority,
            args,
            ctx,
            attempt: 0,
            created_at: now_ms(),
            eta: None,
            last_error: None,
            expires_at: None,
            flow: crate::flow::Flow::default(),
        }
    }
}

/// Why a message was refused before it could run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("message is not of the form <signature>.<envelope json>")]
    Malformed,
    #[error("signature does not match: the message was forged or tampered with")]
    BadSignature,
    #[error("envelope does not decode: {0}")]
    Undecodable(String),
    #[error("unsupported envelope version {0} (this worker reads version {VERSION})")]
    UnsupportedVersion(u32),
}

impl OpenError {
    /// Short machine label, used in dead letters and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            OpenError::Malformed => "malformed",
            OpenError::BadSignature => "bad_signature",
            OpenError::Undecodable(_) => "undecodable",
            OpenError::UnsupportedVersion(_) => "unsupported_version",
        }
    }
}

/// Signs and verifies messages, and encrypts the tokens they carry, with
/// keys derived from the service secret.
#[derive(Clone)]
pub struct Signer {
    mac: HmacSha256,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<secret>)")
    }
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        // Keys for task envelopes only (HKDF-SHA256, RFC 5869, one `info`
        // per purpose), so the same service secret can also sign JWTs
        // without the two ever being confusable.
        let kdf = Hkdf::<Sha256>::new(None, secret);
        let derive = |info: &[u8]| {
            let mut key = [0u8; 32];
            kdf.expand(info, &mut key)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            key
        };
        Signer {
            mac: <HmacSha256 as Mac>::new_from_slice(&derive(KEY_INFO_MAC))
                .expect("HMAC takes any key length"),
            cipher: XChaCha20Poly1305::new(&derive(KEY_INFO_TOKEN).into()),
        }
    }

    /// Encrypt a token for the wire: `xc1:` + base64url(nonce ‖ ciphertext).
    fn seal_token(&self, token: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = self
            .cipher
            .encrypt(&XNonce::from(nonce), token.as_bytes())
            .expect("XChaCha20-Poly1305 encrypts any token length");
        let mut raw = Vec::with_capacity(NONCE_LEN + ct.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ct);
        format!("{SEALED_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    fn open_token(&self, sealed: &str) -> Result<String, OpenError> {
        let bad = |why: &str| OpenError::Undecodable(format!("ctx.token: {why}"));
        let b64 = sealed
            .strip_prefix(SEALED_TOKEN_PREFIX)
            .ok_or_else(|| bad("not an encrypted token (expected the xc1: form)"))?;
        let raw = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| bad("not base64url"))?;
        if raw.len() < NONCE_LEN {
            return Err(bad("too short"));
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), ct)
            .map_err(|_| bad("does not decrypt with this service's secret"))?;
        String::from_utf8(plain).map_err(|_| bad("not UTF-8"))
    }

    fn tag(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Serialise and sign an envelope, encrypting the token it carries.
    pub fn seal(&self, env: &Envelope) -> String {
        self.seal_owned(env.clone())
    }

    /// [`Signer::seal`], encrypting the token in place (no copy of the
    /// envelope: what a spawn uses).
    pub fn seal_owned(&self, mut env: Envelope) -> String {
        if let Some(token) = &mut env.ctx.token {
            *token = self.seal_token(token);
        }
        self.seal_json(&serde_json::to_string(&env).expect("envelope serialises"))
    }

    /// Sign an already-serialised envelope.
    pub fn seal_json(&self, body: &str) -> String {
        let mut out = String::with_capacity(65 + body.len());
        out.push_str(&hex::encode(self.tag(body.as_bytes())));
        out.push('.');
        out.push_str(body);
        out
    }

    /// Verify and decode a message.
    pub fn open(&self, message: &str) -> Result<Envelope, OpenError> {
        let (sig, body) = message.split_once('.').ok_or(OpenError::Malformed)?;
        let mut tag = [0u8; 32];
        hex::decode_to_slice(sig, &mut tag).map_err(|_| OpenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(body.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| OpenError::BadSignature)?;
        // One parse on the happy path. When the shape does not decode, look
        // at the version alone, so a future format gets a clear reason
        // rather than a decode error.
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        match serde_json::from_str::<Envelope>(body) {
            Ok(mut env) if env.v == VERSION => {
                if let Some(sealed) = env.ctx.token.take() {
                    env.ctx.token = Some(self.open_token(&sealed)?);
                }
                Ok(env)
            }
            Ok(env) => Err(OpenError::UnsupportedVersion(env.v)),
            Err(e) => match serde_json::from_str::<Version>(body) {
                Ok(Version { v }) if v != VERSION => Err(OpenError::UnsupportedVersion(v)),
                _ => Err(OpenError::Undecodable(e.to_string())),
            },
        }
    }
}

/// Best-effort peek at an unverified message, for dead-letter records only.
pub fn peek(message: &str) -> Option<Envelope> {
    serde_json::from_str(message.split_once('.')?.1).ok()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope::new(
            "send",
            "default",
            Priority::High,
            RawValue::from_string("[\"a@b.c\",1]".into()).unwrap(),
            Context {
                user_id: Some("u1".into()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn seal_open_round_trip() {
        let s = Signer::new(b"secret");
        let msg = s.seal(&env());
        let back = s.open(&msg).unwrap();
        assert_eq!(back.task, "send");
        assert_eq!(back.priority, Priority::High);
        assert_eq!(back.args.get(), "[\"a@b.c\",1]");
        assert_eq!(back.ctx.user_id.as_deref(), Some("u1"));
    }

    #[test]
    fn keys_are_hkdf_sha256_of_the_secret() {
        // RFC 5869 HKDF with no salt, computed independently of `Signer`:
        // a change of derivation changes the wire format and must show here.
        let body = r#"{"v":1}"#;
        let prk = <HmacSha256 as Mac>::new_from_slice(&[0u8; 32])
            .unwrap()
            .chain_update(b"secret")
            .finalize()
            .into_bytes();
        let okm = <HmacSha256 as Mac>::new_from_slice(&prk)
            .unwrap()
            .chain_update(KEY_INFO_MAC)
            .chain_update([1u8])
            .finalize()
            .into_bytes();
        let tag = <HmacSha256 as Mac>::new_from_slice(&okm)
            .unwrap()
            .chain_update(body)
            .finalize()
            .into_bytes();
        let want = format!("{}.{body}", hex::encode(tag));
        assert_eq!(Signer::new(b"secret").seal_json(body), want);
    }

    #[test]
    fn forged_and_tampered_are_refused() {
        let s = Signer::new(b"secret");
        let msg = s.seal(&env());
        // Another secret: forged.
        assert_eq!(
            Signer::new(b"other").open(&msg).unwrap_err(),
            OpenError::BadSignature
        );
        // Body changed after signing: tampered.
        let tampered = msg.replace("u1", "admin");
        assert_eq!(s.open(&tampered).unwrap_err(), OpenError::BadSignature);
        // Not a message at all.
        assert_eq!(s.open("hello").unwrap_err(), OpenError::Malformed);
        assert_eq!(s.open("zz.{}").unwrap_err(), OpenError::Malformed);
    }

    #[test]
    fn the_token_is_encrypted_on_the_wire_and_restored_on_open() {
        let s = Signer::new(b"secret");
        let mut e = env();
        e.ctx.token = Some("eyJhbGciOiJIUzI1NiJ9.raw-token".into());
        let msg = s.seal(&e);
        assert!(!msg.contains("raw-token"), "token in clear: {msg}");
        assert!(msg.contains("\"xc1:"));
        // A fresh nonce each time: the same token never looks the same.
        assert_ne!(s.seal(&e), msg);
        let back = s.open(&msg).unwrap();
        assert_eq!(back.ctx.token, e.ctx.token);
        // Retries re-seal what open returned: still encrypted, still opens.
        let again = s.seal(&back);
        assert!(!again.contains("raw-token"));
        assert_eq!(s.open(&again).unwrap().ctx.token, e.ctx.token);
    }

    #[test]
    fn a_signed_but_clear_or_foreign_token_is_refused() {
        let s = Signer::new(b"secret");
        let clear = s.seal_json(
            r#"{"v":1,"id":"0192d4a0-0000-7000-8000-000000000000","task":"t","queue":"q","args":[],"ctx":{"token":"raw"},"created_at":1}"#,
        );
        let err = s.open(&clear).unwrap_err();
        assert!(
            matches!(&err, OpenError::Undecodable(m) if m.contains("ctx.token")),
            "{err:?}"
        );
        // Encrypted under another secret, then signed with ours.
        let mut e = env();
        e.ctx.token = Some("t".into());
        let foreign = Signer::new(b"other").seal(&e);
        let body = foreign.split_once('.').unwrap().1;
        let err = s.open(&s.seal_json(body)).unwrap_err();
        assert!(
            matches!(&err, OpenError::Undecodable(m) if m.contains("does not decrypt")),
            "{err:?}"
        );
    }

    #[test]
    fn version_and_shape_are_checked_after_signature() {
        let s = Signer::new(b"secret");
        let future = s.seal_json(r#"{"v":2,"whatever":true}"#);
        assert_eq!(
            s.open(&future).unwrap_err(),
            OpenError::UnsupportedVersion(2)
        );
        let bad = s.seal_json(r#"{"v":1,"task":3}"#);
        assert!(matches!(
            s.open(&bad).unwrap_err(),
            OpenError::Undecodable(_)
        ));
    }
}
