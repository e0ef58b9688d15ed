//! Fields of Kubernetes objects that tests read: a Deployment's pod
//! template and first container, a Secret's key.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret};

/// The pod template spec of a Deployment.
pub fn template_spec(d: &Deployment) -> &PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("Deployment has a pod template")
}

/// The first container of a Deployment's pod template.
pub fn first_container(d: &Deployment) -> &Container {
    template_spec(d)
        .containers
        .first()
        .expect("the pod template has a container")
}

/// An annotation of a Deployment's pod template.
pub fn template_annotation(d: &Deployment, key: &str) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

/// (Secret name, key) that `var` of the first container comes from, if a secretKeyRef.
pub fn secret_env_ref(pod: &PodSpec, var: &str) -> Option<(String, String)> {
    let e = pod.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == var)?;
    let s = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some((s.name.clone(), s.key.clone()))
}

/// The value of `key` in a Secret's data, if present and UTF-8.
pub fn secret_value(s: &Secret, key: &str) -> Option<String> {
    String::from_utf8(s.data.as_ref()?.get(key)?.0.clone()).ok()
}
