//! The managed Redis Service (port 6379 to the pod's `redis` port).

use super::super::labels::Component;
use super::super::meta::Ctx;
use super::REDIS_PORT;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub(super) fn redis_service(ctx: &Ctx, name: String) -> Service {
    Service {
        metadata: ctx.meta(name, Component::Redis),
        spec: Some(ServiceSpec {
            selector: Some(ctx.selector(Component::Redis)),
            ports: Some(vec![ServicePort {
                name: Some("redis".into()),
                port: REDIS_PORT,
                target_port: Some(IntOrString::String("redis".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
