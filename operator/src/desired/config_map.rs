//! The pym-config ConfigMap: `spec.config` rendered as YAML, checked against
//! the env the operator injects, and the volume that mounts it in the pods.

use super::labels::Component;
use super::meta::Ctx;
use super::{DesiredError, names};
use crate::crd::PymServiceSpec;
use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, EnvVar, Volume, VolumeMount};
use pym_core::contract;
use std::collections::BTreeMap;

const CONFIG_VOLUME: &str = "pym-config";

/// The pym-config rendered as YAML. `with_async` is filled in from
/// `spec.withAsync` when the config does not set it.
pub fn render_config(spec: &PymServiceSpec) -> Result<String, DesiredError> {
    let mut cfg = match &spec.config {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => return Err(DesiredError::Config("it must be an object".into())),
    };
    cfg.entry(contract::CONFIG_WITH_ASYNC)
        .or_insert(serde_json::Value::Bool(spec.with_async));
    yaml_serde::to_string(&cfg).map_err(|e| DesiredError::Config(e.to_string()))
}

/// Refuses a `spec.config` that renames a variable the operator sets in the
/// pods (`ours`: the operator's env), e.g. `jwt_secret_env: OTHER` while
/// `PYM_JWT_SECRET` comes from `jwtSecretRef`: the runtime would read
/// `$OTHER` and ignore ours. The keys are the runtime's
/// ([`contract::CONFIG_KEYS_RENAMING_ENV`]). Setting a key to the very
/// variable it defaults to, or renaming one the operator does not set, is fine.
pub fn check_config(spec: &PymServiceSpec, ours: &[EnvVar]) -> Result<(), DesiredError> {
    let Some(serde_json::Value::Object(cfg)) = &spec.config else {
        return Ok(());
    };
    for &(key, var) in contract::CONFIG_KEYS_RENAMING_ENV {
        let Some(v) = cfg.get(key) else { continue };
        if v.as_str() != Some(var) && ours.iter().any(|e| e.name == var) {
            return Err(DesiredError::RenamesInjectedEnv {
                key,
                value: v.to_string(),
                var,
            });
        }
    }
    Ok(())
}

/// The ConfigMap holding the rendered config, and the config's hash (the
/// pod template annotation that rolls the pods on a config change).
pub(super) fn config_map(
    ctx: &Ctx,
    spec: &PymServiceSpec,
) -> Result<(ConfigMap, String), DesiredError> {
    let config_yaml = render_config(spec)?;
    let config_hash = super::short_hash(config_yaml.as_bytes());
    let config_map = ConfigMap {
        metadata: ctx.meta(names::config_map(ctx.name), Component::Config),
        data: Some(BTreeMap::from([(
            contract::CONFIG_FILE_NAME.to_string(),
            config_yaml,
        )])),
        ..Default::default()
    };
    Ok((config_map, config_hash))
}

/// The volume of the ConfigMap and its read-only mount in the container.
pub(super) fn config_volume(ctx: &Ctx) -> (Volume, VolumeMount) {
    (
        Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(ctx.name),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            name: CONFIG_VOLUME.into(),
            mount_path: contract::CONFIG_MOUNT_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::desired::fixtures::{EXTERNAL, HELLO, MINIMAL, inputs, svc_from_yaml};
    use crate::desired::{DesiredError, desired};

    #[test]
    fn config_may_not_rename_injected_variables() {
        // (fixture, spec.config, Some(renamed key) when refused)
        let cases: &[(&str, &str, Option<&str>)] = &[
            (HELLO, "{jwt_secret_env: MY_JWT}", Some("jwt_secret_env")),
            (HELLO, "{redis_url_env: MY_REDIS}", Some("redis_url_env")),
            (EXTERNAL, "{redis_url_env: MY_REDIS}", Some("redis_url_env")),
            (HELLO, "{jwt_secret_env: 5}", Some("jwt_secret_env")),
            // the very variable the operator sets: fine
            (
                HELLO,
                "{jwt_secret_env: PYM_JWT_SECRET, redis_url_env: PYM_REDIS_URL}",
                None,
            ),
            // no jwtSecretRef: the operator sets no PYM_JWT_SECRET, the user may name theirs
            (EXTERNAL, "{jwt_secret_env: MY_JWT}", None),
            // no redis: no PYM_REDIS_URL from the operator
            (MINIMAL, "{redis_url_env: MY_REDIS}", None),
            // keys that name variables the operator never sets
            (HELLO, "{jwt_public_key_env: PEM, name: x}", None),
        ];
        for (yaml, config, refused) in cases {
            let mut svc = svc_from_yaml(yaml);
            svc.spec.config = Some(yaml_serde::from_str(config).unwrap());
            let got = desired(&svc, &inputs());
            match refused {
                None => assert!(got.is_ok(), "{config}: {got:?}"),
                Some(key) => {
                    let err = got.unwrap_err();
                    let msg = err.to_string();
                    assert!(
                        matches!(err, DesiredError::RenamesInjectedEnv { key: k, .. } if k == *key),
                        "{config}: {msg}"
                    );
                    assert!(msg.starts_with(&format!("spec.config.{key} is ")), "{msg}");
                    assert!(
                        msg.contains(&format!("remove {key} from spec.config")),
                        "{msg}"
                    );
                    let e = crate::Error::from(err);
                    assert_eq!(e.reason(), "InvalidSpec");
                }
            }
        }
        let mut svc = svc_from_yaml(HELLO);
        svc.spec.config = Some(serde_json::json!({"jwt_secret_env": "MY_JWT"}));
        assert_eq!(
            desired(&svc, &inputs()).unwrap_err().to_string(),
            "spec.config.jwt_secret_env is \"MY_JWT\": the pods would read that variable and \
             ignore PYM_JWT_SECRET, which the operator sets; remove jwt_secret_env from spec.config"
        );
    }
}
