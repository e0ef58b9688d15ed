//! Step 2b of a reconcile: the operator writes and deletes only objects
//! this PymService controls. An existing object with a child's name that
//! is not controlled by this PymService's uid (a user's Service named like
//! the PymService, another PymService's child) is refused before anything
//! is applied: the reconcile fails with `NameConflict`, nothing is touched,
//! and deleting the PymService leaves the object alone (it never got an
//! owner reference).

use super::Context;
use crate::children::{Cached, Child};
use crate::crd::PymService;
use crate::desired::Desired;
use crate::error::{Error, Result};
use futures::future::{BoxFuture, FutureExt, try_join_all};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::Api;

/// Pure: whether `meta`'s controller owner reference is the PymService `uid`.
pub(super) fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Pure: who controls `meta`, in words, for the error message.
pub(super) fn holder(meta: &ObjectMeta) -> String {
    let controller = meta.owner_references.iter().flatten();
    match controller.into_iter().find(|o| o.controller == Some(true)) {
        Some(o) => format!("controlled by {} {}", o.kind, o.name),
        None => "not created by this PymService".into(),
    }
}

/// Refuses an existing object this PymService does not control.
pub(super) fn ensure_ours(svc: &PymService, meta: &ObjectMeta, kind: &'static str) -> Result<()> {
    let uid = svc.metadata.uid.as_deref().unwrap_or_default();
    if controlled_by(meta, uid) {
        return Ok(());
    }
    Err(Error::NotOwned {
        kind,
        namespace: svc.namespace().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        holder: holder(meta),
    })
}

/// Every child in `d` either does not exist yet or is this PymService's.
/// Children in the watch cache cost nothing; the others (about to be
/// created, or foreign: the cache holds only the operator's) are read.
pub(super) async fn ensure_free(
    svc: &PymService,
    ctx: &Context,
    ns: &str,
    d: &Desired,
) -> Result<()> {
    let mut checks: Vec<BoxFuture<'_, Result<()>>> = vec![
        check(svc, ctx, ns, &d.config_map),
        check(svc, ctx, ns, &d.api_deployment),
        check(svc, ctx, ns, &d.api_service),
    ];
    if let Some(s) = &d.task_secret {
        checks.push(check(svc, ctx, ns, s));
    }
    if let Some(w) = &d.worker_deployment {
        checks.push(check(svc, ctx, ns, w));
    }
    if let Some(r) = &d.managed_redis {
        checks.push(check(svc, ctx, ns, &r.secret));
        checks.push(check(svc, ctx, ns, &r.deployment));
        checks.push(check(svc, ctx, ns, &r.service));
        checks.push(check(svc, ctx, ns, &r.network_policy));
        if let Some(pvc) = &r.pvc {
            checks.push(check(svc, ctx, ns, pvc));
        }
    }
    try_join_all(checks).await.map(drop)
}

fn check<'a, K: Child>(
    svc: &'a PymService,
    ctx: &'a Context,
    ns: &'a str,
    obj: &'a K,
) -> BoxFuture<'a, Result<()>> {
    async move {
        let name = obj.meta().name.as_deref().unwrap_or_default();
        match live_meta::<K>(ctx, ns, name).await? {
            Some(meta) => ensure_ours(svc, &meta, kind::<K>()),
            None => Ok(()),
        }
    }
    .boxed()
}

/// The metadata of an existing object: from the watch cache, else read.
pub(super) async fn live_meta<K: Child>(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<ObjectMeta>> {
    match ctx.applied.lookup::<K>(ns, name) {
        Cached::Present(meta) => Ok(Some(*meta)),
        Cached::Absent | Cached::NoCache => {
            let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
            Ok(api.get_metadata_opt(name).await?.map(|m| m.metadata))
        }
    }
}

pub(super) fn kind<K: Child>() -> &'static str {
    <K as k8s_openapi::Resource>::KIND
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owned(uid: &str, controller: Option<bool>) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                kind: "PymService".into(),
                name: "other".into(),
                uid: uid.into(),
                controller,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_controller_uid_counts() {
        // (metadata, controlled by "u1", holder)
        let rows = [
            (
                ObjectMeta::default(),
                false,
                "not created by this PymService",
            ),
            (
                owned("u1", Some(true)),
                true,
                "controlled by PymService other",
            ),
            (
                owned("u2", Some(true)),
                false,
                "controlled by PymService other",
            ),
            (owned("u1", None), false, "not created by this PymService"),
            (
                owned("u1", Some(false)),
                false,
                "not created by this PymService",
            ),
        ];
        for (meta, want, words) in rows {
            assert_eq!(controlled_by(&meta, "u1"), want, "{meta:?}");
            assert_eq!(holder(&meta), words, "{meta:?}");
        }
    }
}
