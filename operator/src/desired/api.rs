//! The API: its Deployment (`serve`, HTTP probes, the config volume) and the
//! Service named after the PymService.

use super::config_map::config_volume;
use super::env::{merge_env, plain_env};
use super::labels::Component;
use super::meta::Ctx;
use super::names;
use super::pod::{deployment, http_probe, non_empty, pod_spec};
use crate::crd::{ProbesSpec, PymServiceSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use pym_core::contract;
use std::collections::BTreeMap;

pub(super) fn api_deployment(
    ctx: &Ctx,
    spec: &PymServiceSpec,
    mut ours: Vec<EnvVar>,
    annotations: &BTreeMap<String, String>,
) -> Deployment {
    let api = &spec.api;
    ours.push(plain_env(contract::ENV_PORT, api.port.to_string()));
    let env = merge_env(ours, &[&spec.env, &api.env]);
    let (vol, mount) = config_volume(ctx);
    let probes = api.probes.clone().unwrap_or(ProbesSpec {
        liveness: None,
        readiness: None,
        startup: None,
    });
    let container = Container {
        name: Component::Api.as_str().into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(vec![contract::CMD_SERVE.to_string()]),
        env: Some(env),
        env_from: non_empty([spec.env_from.clone(), api.env_from.clone()].concat()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: api.port,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: api.resources.clone(),
        liveness_probe: Some(
            probes
                .liveness
                .unwrap_or_else(|| http_probe(contract::PATH_HEALTHZ, "http")),
        ),
        readiness_probe: Some(
            probes
                .readiness
                .unwrap_or_else(|| http_probe(contract::PATH_READYZ, "http")),
        ),
        startup_probe: probes.startup,
        volume_mounts: Some(vec![mount]),
        ..Default::default()
    };
    deployment(
        ctx,
        names::api_deployment(ctx.name),
        Component::Api,
        Some(api.replicas),
        pod_spec(spec, container, vec![vol]),
        annotations,
        false,
    )
}

/// The API Service: port `spec.api.port` to the pods' `http` port.
pub(super) fn api_service(ctx: &Ctx, spec: &PymServiceSpec) -> Service {
    Service {
        metadata: ctx.meta(names::api_service(ctx.name), Component::Api),
        spec: Some(ServiceSpec {
            selector: Some(ctx.selector(Component::Api)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: spec.api.port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
