//! Step 1 of a reconcile: the inputs that need reads. Referenced Secrets
//! must exist and hold their key; the managed Redis password and the
//! generated task secret are kept from the Secrets the operator wrote
//! before (pods that roll keep the same values) or generated once.

use super::ownership::ensure_ours;
use super::secret::{secret_bytes, secret_value};
use crate::crd::{PymService, SecretKeyRef};
use crate::desired::{
    self, Inputs, OperatorPods, REDIS_SECRET_PASSWORD_KEY, TASK_SECRET_KEY, names,
};
use crate::error::{Error, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use rand::Rng;
use tracing::info;

/// What step 1 resolved: the pure step's inputs, and the `host:port` of an
/// external Redis (for the status).
pub(super) struct Resolved {
    pub inputs: Inputs,
    pub external_redis_endpoint: Option<String>,
}

/// (what, version or hash) pairs the pods' secrets hash is built from.
#[derive(Default)]
struct HashParts(Vec<(&'static str, String)>);

impl HashParts {
    fn push(&mut self, what: &'static str, version: String) {
        self.0.push((what, version));
    }

    fn hash(&self) -> String {
        let parts: Vec<(&str, &str)> = self.0.iter().map(|(k, v)| (*k, v.as_str())).collect();
        desired::secrets_hash(&parts)
    }
}

pub(super) async fn resolve(
    svc: &PymService,
    secrets: &Api<Secret>,
    ns: &str,
    operator_pods: Option<OperatorPods>,
) -> Result<Resolved> {
    let mut parts = HashParts::default();
    if let Some(r) = &svc.spec.jwt_secret_ref {
        let s = required_secret(secrets, ns, r, "spec.jwtSecretRef").await?;
        parts.push("jwt", s.resource_version().unwrap_or_default());
    }
    let external_redis_endpoint = external_redis(svc, secrets, ns, &mut parts).await?;
    let redis_password = managed_redis_password(svc, secrets, &mut parts).await?;
    let task_secret = task_secret(svc, secrets, ns, &mut parts).await?;
    Ok(Resolved {
        inputs: Inputs {
            redis_password,
            task_secret,
            secrets_hash: parts.hash(),
            operator_pods,
        },
        external_redis_endpoint,
    })
}

/// `spec.redis.external`: the URL Secret must exist and hold a Redis URL
/// of one of the four forms the broker accepts (`redis://`, `rediss://`,
/// Sentinel, Cluster); where it points goes to the status (`host:port`,
/// `sentinel h1:26379,... master m` or `cluster h1:7000,...`; never the
/// password).
async fn external_redis(
    svc: &PymService,
    secrets: &Api<Secret>,
    ns: &str,
    parts: &mut HashParts,
) -> Result<Option<String>> {
    let Some(ext) = svc.spec.redis.as_ref().and_then(|r| r.external.as_ref()) else {
        return Ok(None);
    };
    let field = "spec.redis.external.urlSecretRef";
    let r = &ext.url_secret_ref;
    let s = required_secret(secrets, ns, r, field).await?;
    let url = secret_value(&s, &r.key).unwrap_or_default();
    let endpoint = pym_broker::redis_url::describe(&url).map_err(|reason| Error::BadRedisUrl {
        field,
        namespace: ns.to_string(),
        name: r.name.clone(),
        key: r.key.clone(),
        reason,
    })?;
    parts.push("redis-url", s.resource_version().unwrap_or_default());
    Ok(Some(endpoint))
}

/// `spec.redis.managed`: the password already in the managed Secret, or a new one.
async fn managed_redis_password(
    svc: &PymService,
    secrets: &Api<Secret>,
    parts: &mut HashParts,
) -> Result<Option<String>> {
    if svc.spec.redis.as_ref().is_none_or(|r| r.managed.is_none()) {
        return Ok(None);
    }
    let pw = kept_or_generated(
        svc,
        secrets,
        (&names::redis(&svc.name_any()), REDIS_SECRET_PASSWORD_KEY),
        |p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()),
        ("managed Redis password", generate_password),
    )
    .await?;
    parts.push("redis-password", desired::short_hash(pw.as_bytes()));
    Ok(Some(pw))
}

/// The task secret (`withAsync`): the user's (`taskSecretRef`, read by the
/// pods themselves), or the one the operator generated before (kept, so pods
/// that roll keep verifying queued tasks), or a new one.
async fn task_secret(
    svc: &PymService,
    secrets: &Api<Secret>,
    ns: &str,
    parts: &mut HashParts,
) -> Result<Option<String>> {
    if !svc.spec.with_async {
        return Ok(None);
    }
    if let Some(r) = &svc.spec.task_secret_ref {
        let s = required_secret(secrets, ns, r, "spec.taskSecretRef").await?;
        parts.push("task", s.resource_version().unwrap_or_default());
        return Ok(None);
    }
    let value = kept_or_generated(
        svc,
        secrets,
        (&names::task_secret(&svc.name_any()), TASK_SECRET_KEY),
        |v| !v.is_empty(),
        ("the task secret", generate_task_secret),
    )
    .await?;
    parts.push("task-secret", desired::short_hash(value.as_bytes()));
    Ok(Some(value))
}

/// A Secret the spec references at `field`: it must exist and hold `r.key`.
async fn required_secret(
    secrets: &Api<Secret>,
    ns: &str,
    r: &SecretKeyRef,
    field: &'static str,
) -> Result<Secret> {
    let s = secrets
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| Error::SecretNotFound {
            field,
            namespace: ns.to_string(),
            name: r.name.clone(),
        })?;
    if secret_bytes(&s, &r.key).is_none() {
        return Err(Error::SecretKeyMissing {
            field,
            namespace: ns.to_string(),
            name: r.name.clone(),
            key: r.key.clone(),
        });
    }
    Ok(s)
}

/// A value the operator generates once into a Secret it owns (`(secret
/// name, key)`): the one already there when `keep` accepts it, so pods that
/// roll keep the same value; else a new one from `generate`, logged as
/// "generating <what>".
async fn kept_or_generated(
    svc: &PymService,
    secrets: &Api<Secret>,
    (secret_name, key): (&str, &str),
    keep: impl Fn(&str) -> bool,
    (what, generate): (&str, fn() -> String),
) -> Result<String> {
    let existing = secrets.get_opt(secret_name).await?;
    if let Some(s) = &existing {
        ensure_ours(svc, &s.metadata, "Secret")?;
    }
    Ok(existing
        .as_ref()
        .and_then(|s| secret_value(s, key))
        .filter(|v| keep(v))
        .unwrap_or_else(|| {
            info!(pymservice = %svc.name_any(), namespace = %svc.namespace().unwrap_or_default(), "generating {what}");
            generate()
        }))
}

/// A fresh managed-Redis password: 32 URL-safe alphanumerics.
fn generate_password() -> String {
    random_alphanumerics(32)
}

/// A fresh task secret: 64 alphanumerics (~380 bits).
fn generate_task_secret() -> String {
    random_alphanumerics(64)
}

fn random_alphanumerics(n: usize) -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_url_safe() {
        let p = generate_password();
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(p, generate_password());
        let t = generate_task_secret();
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(t, generate_task_secret());
    }
}
