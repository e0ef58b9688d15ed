//! The task envelope: versioned wire format of one task, signed with HMAC.
//!
//! On the wire a message is `<hex HMAC-SHA256>.<envelope JSON>`. The MAC key is
//! derived from the service secret, so a message written into Redis by
//! anyone without the secret, or altered after it was written, never runs:
//! [`Signer::open`] refuses it and the worker dead-letters it with the reason.

use crate::context::Context;
use crate::task::Priority;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Envelope format version written by this build.
pub const VERSION: u32 = 1;

type HmacSha256 = Hmac<Sha256>;

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

/// Signs and verifies messages with a key derived from the service secret.
#[derive(Clone)]
pub struct Signer {
    mac: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<secret>)")
    }
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        // Derive a key used for task envelopes only, so the same service
        // secret can also sign JWTs without the two ever being confusable.
        let mut kdf = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        kdf.update(b"pym task envelope v1");
        let key = kdf.finalize().into_bytes();
        Signer {
            mac: HmacSha256::new_from_slice(&key).expect("HMAC takes any key length"),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Serialise and sign an envelope.
    pub fn seal(&self, env: &Envelope) -> String {
        let body = serde_json::to_string(env).expect("envelope serialises");
        self.seal_json(&body)
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
            Ok(env) if env.v == VERSION => Ok(env),
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
