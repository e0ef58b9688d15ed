//! Object metadata every child carries: name, namespace, the standard labels
//! and the controller owner reference to the PymService; Deployment selectors.

use super::DesiredError;
use super::labels::{
    Component, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, LABEL_PART_OF,
    MANAGED_BY,
};
use crate::crd::PymService;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use std::collections::BTreeMap;

/// The controller owner reference of every child (blocks owner deletion).
pub(super) fn owner_reference(svc: &PymService) -> Result<OwnerReference, DesiredError> {
    let mut o = svc
        .controller_owner_ref(&())
        .ok_or(DesiredError::MissingMetadata("uid"))?;
    o.block_owner_deletion = Some(true);
    Ok(o)
}

/// The PymService a child belongs to: its name, namespace and owner reference.
pub(super) struct Ctx<'a> {
    pub(super) name: &'a str,
    pub(super) ns: &'a str,
    pub(super) owner: &'a OwnerReference,
}

impl Ctx<'_> {
    pub(super) fn labels(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_NAME.to_string(), self.name.to_string()),
            (LABEL_INSTANCE.to_string(), self.name.to_string()),
            (LABEL_COMPONENT.to_string(), component.as_str().to_string()),
            (LABEL_PART_OF.to_string(), "pym".to_string()),
            (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        ])
    }

    /// Selector labels: a subset of [`Ctx::labels`] that never changes
    /// (Deployment selectors are immutable).
    pub(super) fn selector(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_INSTANCE.to_string(), self.name.to_string()),
            (LABEL_COMPONENT.to_string(), component.as_str().to_string()),
        ])
    }

    pub(super) fn meta(&self, name: String, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.ns.to_string()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }
}
