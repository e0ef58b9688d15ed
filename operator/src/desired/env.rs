//! The env of the API and worker containers: the operator's variables
//! (config path, Redis URL, JWT and task secrets, log format) merged with the user's.

use super::names;
use super::redis::REDIS_SECRET_URL_KEY;
use super::task_secret::TASK_SECRET_KEY;
use crate::crd::{PymServiceSpec, SecretKeyRef};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use pym_core::contract;

pub(super) fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn plain_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// Where pods read `PYM_REDIS_URL` from: the managed Secret or the user's.
pub(super) fn redis_url_source(spec: &PymServiceSpec, svc: &str) -> Option<SecretKeyRef> {
    let redis = spec.redis.as_ref()?;
    if redis.managed.is_some() {
        Some(SecretKeyRef {
            name: names::redis(svc),
            key: REDIS_SECRET_URL_KEY.to_string(),
        })
    } else {
        redis.external.as_ref().map(|e| e.url_secret_ref.clone())
    }
}

/// Where pods read `PYM_TASK_SECRET` from (`withAsync` only): the user's
/// `taskSecretRef`, else the Secret the operator generates.
pub(super) fn task_secret_source(spec: &PymServiceSpec, svc: &str) -> Option<SecretKeyRef> {
    if !spec.with_async {
        return None;
    }
    Some(
        spec.task_secret_ref
            .clone()
            .unwrap_or_else(|| SecretKeyRef {
                name: names::task_secret(svc),
                key: TASK_SECRET_KEY.to_string(),
            }),
    )
}

/// The operator's env first, then the user's: a user entry with the same
/// name replaces ours in place (duplicate names would break server-side apply).
pub(super) fn merge_env(ours: Vec<EnvVar>, user: &[&[EnvVar]]) -> Vec<EnvVar> {
    let mut out = ours;
    for list in user {
        for e in list.iter() {
            match out.iter_mut().find(|o| o.name == e.name) {
                Some(slot) => *slot = e.clone(),
                None => out.push(e.clone()),
            }
        }
    }
    out
}

/// The env the operator sets in API and worker containers (before the
/// per-component variables and the user's).
pub(super) fn common_env(
    spec: &PymServiceSpec,
    redis_url: Option<&SecretKeyRef>,
    task_secret: Option<&SecretKeyRef>,
) -> Vec<EnvVar> {
    let mut env = vec![plain_env(
        contract::ENV_CONFIG,
        contract::config_mount_path(),
    )];
    if let Some(r) = redis_url {
        env.push(secret_env(contract::ENV_REDIS_URL, r));
    }
    if let Some(j) = &spec.jwt_secret_ref {
        env.push(secret_env(contract::ENV_JWT_SECRET, j));
    }
    if let Some(t) = task_secret {
        env.push(secret_env(contract::ENV_TASK_SECRET, t));
    }
    env.push(plain_env(contract::ENV_LOG_FORMAT, "json"));
    env
}

#[cfg(test)]
mod tests {
    use crate::desired::desired;
    use crate::desired::fixtures::{EXTERNAL, inputs, svc_from_yaml};
    use pym_core::contract;

    #[test]
    fn user_env_overrides_ours_without_duplicates() {
        let d = desired(&svc_from_yaml(EXTERNAL), &inputs()).unwrap();
        let env = d
            .api_deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap();
        let fmt: Vec<_> = env
            .iter()
            .filter(|e| e.name == contract::ENV_LOG_FORMAT)
            .collect();
        assert_eq!(fmt.len(), 1);
        assert_eq!(fmt[0].value.as_deref(), Some("pretty"));
        assert!(env.iter().any(|e| e.name == "API_ONLY"));
        let url = env
            .iter()
            .find(|e| e.name == contract::ENV_REDIS_URL)
            .unwrap();
        let sel = url
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((sel.name.as_str(), sel.key.as_str()), ("redis-url", "url"));
    }
}
