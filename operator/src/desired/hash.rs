//! Short hashes of the pod template annotations (config and Secret changes
//! roll the pods) and of the managed Redis password.

use sha2::{Digest, Sha256};

/// Hash over the versions of the Secrets a pod reads through env, so a
/// Secret edit rolls the pods. Inputs are (what, resourceVersion) pairs and
/// the managed Redis password hash — never a secret value in clear.
pub fn secrets_hash(parts: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// First 16 hex chars of SHA-256.
pub fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hash_is_stable_and_sensitive() {
        let a = secrets_hash(&[("jwt", "12"), ("redis", "7")]);
        assert_eq!(a, secrets_hash(&[("jwt", "12"), ("redis", "7")]));
        assert_ne!(a, secrets_hash(&[("jwt", "13"), ("redis", "7")]));
        assert_eq!(a.len(), 16);
    }
}
