//! The managed Redis (`spec.redis.managed`): its objects, one builder file
//! per kind, and the Redis endpoint and URL helpers.

mod deployment;
mod network_policy;
mod pvc;
mod secret;
mod service;

pub use network_policy::{NAMESPACE_NAME_LABEL, OperatorPods};

use super::meta::Ctx;
use super::{DesiredError, Inputs, names};
use crate::crd::{ManagedRedis, PymServiceSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;

/// Redis port (managed Redis).
pub const REDIS_PORT: i32 = 6379;
/// Keys of the managed Redis Secret.
pub const REDIS_SECRET_PASSWORD_KEY: &str = "password";
pub const REDIS_SECRET_URL_KEY: &str = "url";
/// Key of the managed Redis Secret holding `redis.conf` (`requirepass`),
/// mounted into the Redis pod: the password is never on a command line.
pub const REDIS_SECRET_CONF_KEY: &str = "redis.conf";
/// Where the Redis container reads its `redis.conf`.
const REDIS_CONF_DIR: &str = "/etc/redis";
/// Non-root uid/gid of the official Redis images.
const REDIS_UID: i64 = 999;

/// The managed Redis objects.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedRedisObjects {
    pub secret: Secret,
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: NetworkPolicy,
    pub pvc: Option<PersistentVolumeClaim>,
}

/// The managed Redis objects and its `host:port`, when `spec.redis.managed`
/// is set (then the password input is required).
pub(super) fn managed(
    ctx: &Ctx,
    spec: &PymServiceSpec,
    inputs: &Inputs,
) -> Result<(Option<ManagedRedisObjects>, Option<String>), DesiredError> {
    let managed = spec.redis.as_ref().and_then(|r| r.managed.as_ref());
    Ok(match managed {
        Some(m) => {
            let password = inputs
                .redis_password
                .as_deref()
                .ok_or(DesiredError::MissingRedisPassword)?;
            (
                Some(managed_redis(
                    ctx,
                    spec,
                    m,
                    password,
                    inputs.operator_pods.as_ref(),
                )),
                Some(managed_redis_endpoint(ctx.name, ctx.ns)),
            )
        }
        None => (None, None),
    })
}

fn managed_redis(
    ctx: &Ctx,
    spec: &PymServiceSpec,
    m: &ManagedRedis,
    password: &str,
    operator: Option<&OperatorPods>,
) -> ManagedRedisObjects {
    let name = names::redis(ctx.name);
    ManagedRedisObjects {
        secret: secret::redis_secret(ctx, name.clone(), password),
        deployment: deployment::redis_deployment(ctx, spec, m, &name, password),
        service: service::redis_service(ctx, name),
        network_policy: network_policy::redis_network_policy(ctx, operator),
        pvc: pvc::redis_pvc(ctx, m),
    }
}

/// The in-cluster URL of a managed Redis (with its password).
pub fn managed_redis_url(svc: &str, ns: &str, password: &str) -> String {
    format!("redis://:{password}@{}/0", managed_redis_endpoint(svc, ns))
}

fn managed_redis_endpoint(svc: &str, ns: &str) -> String {
    format!("{}.{ns}.svc:{REDIS_PORT}", names::redis(svc))
}

#[cfg(test)]
mod tests {
    use super::{REDIS_SECRET_CONF_KEY, REDIS_SECRET_URL_KEY};
    use crate::desired::fixtures::{HELLO, inputs, svc_from_yaml};
    use crate::desired::{DesiredError, Inputs, desired};

    #[test]
    fn managed_redis_is_locked_down() {
        let d = desired(&svc_from_yaml(HELLO), &inputs()).unwrap();
        let r = d.managed_redis.unwrap();
        let pod = r.deployment.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        // The password reaches the pod only through the mounted redis.conf:
        // not in the args (visible in `ps`), not in the env.
        let args = c.args.as_ref().unwrap();
        assert_eq!(args[0], "/etc/redis/redis.conf");
        assert!(
            !args
                .iter()
                .any(|a| a.contains("test-password") || a == "--requirepass")
        );
        assert!(c.env.is_none());
        let conf = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "conf");
        assert_eq!(
            conf.map(|m| (m.mount_path.as_str(), m.read_only)),
            Some(("/etc/redis", Some(true)))
        );
        let data = r.secret.data.as_ref().unwrap();
        assert_eq!(
            data[REDIS_SECRET_CONF_KEY].0,
            b"requirepass test-password\n"
        );
        let url =
            String::from_utf8(r.secret.data.unwrap()[REDIS_SECRET_URL_KEY].0.clone()).unwrap();
        assert_eq!(url, "redis://:test-password@hello-redis.demo.svc:6379/0");
        let np = r.network_policy.spec.unwrap();
        assert_eq!(np.policy_types.unwrap(), vec!["Ingress".to_string()]);
    }

    #[test]
    fn managed_redis_without_password_is_an_error() {
        let no_password = Inputs {
            redis_password: None,
            ..inputs()
        };
        let err = desired(&svc_from_yaml(HELLO), &no_password).unwrap_err();
        assert_eq!(err, DesiredError::MissingRedisPassword);
    }
}
