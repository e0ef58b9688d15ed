//! The managed Redis data PersistentVolumeClaim (`persistence` only).

use super::super::labels::Component;
use super::super::meta::Ctx;
use super::super::names;
use crate::crd::ManagedRedis;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use std::collections::BTreeMap;

pub(super) fn redis_pvc(ctx: &Ctx, m: &ManagedRedis) -> Option<PersistentVolumeClaim> {
    m.persistence.as_ref().map(|p| PersistentVolumeClaim {
        metadata: ctx.meta(names::redis_pvc(ctx.name), Component::Redis),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: p.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), p.size.clone())])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::crd::{ManagedRedis, RedisSpec};
    use crate::desired::desired;
    use crate::desired::fixtures::{HELLO, inputs, svc_from_yaml};

    #[test]
    fn persistence_adds_pvc_and_aof() {
        let mut svc = svc_from_yaml(HELLO);
        let d = desired(&svc, &inputs()).unwrap();
        assert!(d.managed_redis.as_ref().unwrap().pvc.is_some());
        svc.spec.redis = Some(RedisSpec {
            managed: Some(ManagedRedis {
                persistence: None,
                ..Default::default()
            }),
            external: None,
        });
        let d = desired(&svc, &inputs()).unwrap();
        let r = d.managed_redis.unwrap();
        assert!(r.pvc.is_none());
        let args = r.deployment.spec.unwrap().template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.windows(2).any(|w| w == ["--appendonly", "no"]));
    }
}
