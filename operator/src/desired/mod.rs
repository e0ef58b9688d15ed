//! Pure: `PymService` spec (+ a few resolved inputs) → the objects that
//! should exist. No I/O here; `reconcile` applies what this returns.
//!
//! Worker replicas: the worker Deployment is applied **without**
//! `spec.replicas` by the main field manager, so the autoscaler (issue #7,
//! writing the Deployment's `/scale` subresource under its own field manager)
//! owns the count. [`worker_replicas`] only decides when the operator itself
//! must set the count: at creation (to `minReplicas`) and, when the
//! autoscaler does not run, to clamp it back into `[minReplicas,
//! maxReplicas]` when the spec bounds move. That write
//! goes through a second field manager ([`REPLICAS_FIELD_MANAGER`]) so that
//! the main apply never owns, and therefore never resets, `spec.replicas`.
//!
//! One mechanism per file: [`names`], `labels`, `meta` (metadata, owner
//! reference), `hash`, `env`, `pod` (security, probes, Deployment wrapper),
//! `config_map`, `api`, `worker`, `task_secret`, and `redis/` (the managed
//! Redis, one file per kind).

mod api;
mod config_map;
mod env;
#[cfg(test)]
mod fixtures;
mod hash;
mod labels;
mod meta;
pub mod names;
mod pod;
mod redis;
mod schedules;
mod task_secret;
mod worker;

pub use config_map::{check_config, render_config};
pub use hash::{secrets_hash, short_hash};
pub use labels::{
    Component, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, LABEL_PART_OF,
    MANAGED_BY, parse_labels,
};
pub use pod::{ANNOTATION_CONFIG_HASH, ANNOTATION_SECRETS_HASH, APP_UID};
pub use redis::{
    ManagedRedisObjects, NAMESPACE_NAME_LABEL, OperatorPods, REDIS_PORT, REDIS_SECRET_PASSWORD_KEY,
    REDIS_SECRET_URL_KEY, managed_redis_url,
};
pub use task_secret::TASK_SECRET_KEY;
pub use worker::worker_replicas;

use crate::crd::PymService;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use meta::Ctx;

/// Field manager of every server-side apply the reconciler does.
pub const FIELD_MANAGER: &str = "pym-operator";
/// Field manager that sets worker replicas at creation / when out of bounds.
pub const REPLICAS_FIELD_MANAGER: &str = "pym-operator-replicas";

/// Values the reconciler resolves (I/O) before calling [`desired`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    /// Managed Redis password: the one already in the Secret, or a new one.
    pub redis_password: Option<String>,
    /// Generated task secret (`withAsync` without `taskSecretRef`): the one
    /// already in the Secret, or a new one.
    pub task_secret: Option<String>,
    /// Hash over the versions of referenced Secrets (see [`secrets_hash`]).
    pub secrets_hash: String,
    /// The operator's pods, admitted to the managed Redis (the autoscaler's
    /// reads). None when the operator runs outside the cluster or without
    /// the autoscaler.
    pub operator_pods: Option<OperatorPods>,
}

/// Everything that should exist for one PymService.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub config_map: ConfigMap,
    pub api_deployment: Deployment,
    pub api_service: Service,
    /// Worker Deployment without `spec.replicas` (see the module doc).
    pub worker_deployment: Option<Deployment>,
    pub managed_redis: Option<ManagedRedisObjects>,
    /// The generated task Secret (`withAsync` without `taskSecretRef`). Never
    /// deleted by the operator: it goes with the PymService (owner reference),
    /// so turning `withAsync` off and on again keeps the key.
    pub task_secret: Option<Secret>,
    /// `host:port` of the Redis in use (managed only; external is parsed from the URL).
    pub redis_endpoint: Option<String>,
}

/// Errors of the pure step (a spec the schema let through but that cannot be built).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DesiredError {
    #[error("metadata.{0} is missing (the object was not read from the apiserver)")]
    MissingMetadata(&'static str),
    #[error("spec.config cannot be rendered as YAML: {0}")]
    Config(String),
    #[error("managed Redis needs a password input (reconciler bug)")]
    MissingRedisPassword,
    #[error("withAsync needs a task secret input (reconciler bug)")]
    MissingTaskSecret,
    #[error(
        "spec.config.{key} is {value}: the pods would read that variable and ignore {var}, \
         which the operator sets; remove {key} from spec.config"
    )]
    RenamesInjectedEnv {
        key: &'static str,
        value: String,
        var: &'static str,
    },
    #[error("spec.workers.schedules.{name}: {reason}")]
    Schedule { name: String, reason: String },
}

/// spec → desired objects.
pub fn desired(svc: &PymService, inputs: &Inputs) -> Result<Desired, DesiredError> {
    let name = svc
        .metadata
        .name
        .clone()
        .ok_or(DesiredError::MissingMetadata("name"))?;
    let ns = svc
        .metadata
        .namespace
        .clone()
        .ok_or(DesiredError::MissingMetadata("namespace"))?;
    let owner = meta::owner_reference(svc)?;
    let spec = &svc.spec;
    let ctx = Ctx {
        name: &name,
        ns: &ns,
        owner: &owner,
    };

    let redis_url = env::redis_url_source(spec, &name);
    let task_secret = env::task_secret_source(spec, &name);
    let env = env::common_env(spec, redis_url.as_ref(), task_secret.as_ref());
    check_config(spec, &env)?;
    schedules::check_schedules(spec)?;
    let (config_map, config_hash) = config_map::config_map(&ctx, spec)?;
    let pod_annotations = pod::pod_annotations(config_hash, &inputs.secrets_hash);

    let api_deployment = api::api_deployment(&ctx, spec, env.clone(), &pod_annotations);
    let api_service = api::api_service(&ctx, spec);
    let worker_deployment = spec
        .effective_workers()
        .map(|w| worker::worker_deployment(&ctx, spec, &w, env, &pod_annotations));
    let task_secret = task_secret::task_secret(&ctx, spec, inputs.task_secret.as_deref())?;
    let (managed_redis, redis_endpoint) = redis::managed(&ctx, spec, inputs)?;

    Ok(Desired {
        config_map,
        api_deployment,
        api_service,
        worker_deployment,
        managed_redis,
        task_secret,
        redis_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::{EXTERNAL, HELLO, MINIMAL, inputs, svc_from_yaml};
    use pym_core::contract;

    /// Renders every desired object as one multi-document YAML.
    fn render(d: &Desired) -> String {
        let mut docs: Vec<String> = Vec::new();
        let mut push = |v: serde_json::Value| docs.push(yaml_serde::to_string(&v).unwrap());
        push(serde_json::to_value(&d.config_map).unwrap());
        push(serde_json::to_value(&d.api_deployment).unwrap());
        push(serde_json::to_value(&d.api_service).unwrap());
        if let Some(w) = &d.worker_deployment {
            push(serde_json::to_value(w).unwrap());
        }
        if let Some(t) = &d.task_secret {
            push(serde_json::to_value(t).unwrap());
        }
        if let Some(r) = &d.managed_redis {
            push(serde_json::to_value(&r.secret).unwrap());
            push(serde_json::to_value(&r.deployment).unwrap());
            push(serde_json::to_value(&r.service).unwrap());
            push(serde_json::to_value(&r.network_policy).unwrap());
            if let Some(p) = &r.pvc {
                push(serde_json::to_value(p).unwrap());
            }
        }
        docs.join("---\n")
    }

    /// Compares with `operator/testdata/golden/<name>.yaml`;
    /// `UPDATE_GOLDEN=1 cargo test -p pym-operator` rewrites the files.
    fn golden(name: &str, input: &str) {
        let svc = svc_from_yaml(input);
        let got = render(&desired(&svc, &inputs()).expect("desired"));
        let path = format!("{}/testdata/golden/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{path} missing: run UPDATE_GOLDEN=1 cargo test"));
        assert_eq!(
            got, want,
            "golden {name} differs; UPDATE_GOLDEN=1 to accept"
        );
    }

    #[test]
    fn golden_minimal() {
        golden("minimal", MINIMAL);
    }

    #[test]
    fn golden_hello_managed_redis() {
        golden("hello-managed", HELLO);
    }

    #[test]
    fn golden_external_redis() {
        golden("external", EXTERNAL);
    }

    #[test]
    fn minimal_has_no_worker_and_no_redis() {
        let d = desired(&svc_from_yaml(MINIMAL), &Inputs::default()).unwrap();
        assert!(d.worker_deployment.is_none());
        assert!(d.managed_redis.is_none());
        assert_eq!(d.redis_endpoint, None);
        let c = &d
            .api_deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(
            c.args.as_deref(),
            Some(&[contract::CMD_SERVE.to_string()][..])
        );
        assert!(
            !c.env
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.name == contract::ENV_REDIS_URL),
            "no redis, no PYM_REDIS_URL"
        );
    }

    #[test]
    fn every_object_is_owned_and_labelled() {
        let d = desired(&svc_from_yaml(HELLO), &inputs()).unwrap();
        let r = d.managed_redis.clone().unwrap();
        let metas = [
            &d.config_map.metadata,
            &d.api_deployment.metadata,
            &d.api_service.metadata,
            &d.worker_deployment.as_ref().unwrap().metadata,
            &d.task_secret.as_ref().unwrap().metadata,
            &r.secret.metadata,
            &r.deployment.metadata,
            &r.service.metadata,
            &r.network_policy.metadata,
            &r.pvc.as_ref().unwrap().metadata,
        ];
        for m in metas {
            let o = &m.owner_references.as_ref().unwrap()[0];
            assert_eq!(o.kind, "PymService");
            assert_eq!(o.controller, Some(true));
            assert_eq!(m.namespace.as_deref(), Some("demo"));
            let l = m.labels.as_ref().unwrap();
            assert_eq!(l[LABEL_MANAGED_BY], MANAGED_BY);
            assert_eq!(l[LABEL_INSTANCE], "hello");
        }
    }

    #[test]
    fn config_change_changes_pod_template_hash() {
        let a = desired(&svc_from_yaml(HELLO), &inputs()).unwrap();
        let mut svc = svc_from_yaml(HELLO);
        svc.spec.config = Some(serde_json::json!({"name": "hello", "debug": true}));
        let b = desired(&svc, &inputs()).unwrap();
        let hash = |d: &Desired| {
            d.api_deployment
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[ANNOTATION_CONFIG_HASH]
                .clone()
        };
        assert_ne!(hash(&a), hash(&b));
        assert_ne!(a.config_map, b.config_map);
    }

    #[test]
    fn missing_uid_is_an_error() {
        let mut svc = svc_from_yaml(MINIMAL);
        svc.metadata.uid = None;
        assert!(desired(&svc, &Inputs::default()).is_err());
    }
}
