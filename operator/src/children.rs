//! Child objects: metadata caches fed by the controller's watches, and an
//! apply that skips objects already in the desired state.
//!
//! Every change of a child (a Deployment's status, above all) re-triggers
//! the owner's reconcile, so re-applying all children every time would cost
//! ~8 server-side applies per status tick. Instead [`apply`] remembers, per
//! child, the hash of what it last applied and the child's version right
//! after (`metadata.generation` when the kind has one, else
//! `resourceVersion`). When the desired hash and the live version in the
//! watch cache are both unchanged, the apply is skipped. Any outside edit
//! changes the version (a spec edit bumps a Deployment's generation; any
//! edit changes a Service's resourceVersion), and a deleted child leaves the
//! cache, so drift is still repaired at once (except a child deleted within
//! [`WATCH_LAG`] of its creation: repaired at the next resync). Metadata-only edits of a
//! Deployment (labels) do not bump its generation; they are repaired when an
//! entry expires ([`ENTRY_TTL`]).

use crate::desired::{FIELD_MANAGER, short_hash};
use crate::error::Result;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a "nothing to do" decision is trusted without re-applying.
pub const ENTRY_TTL: Duration = Duration::from_secs(300);

/// How long after an apply a child may still be missing from the watch cache.
pub const WATCH_LAG: Duration = Duration::from_secs(3);

/// Metadata caches of the children, one per kind.
#[derive(Clone, Default)]
pub struct Stores {
    pub deployments: Option<Store<PartialObjectMeta<Deployment>>>,
    pub services: Option<Store<PartialObjectMeta<Service>>>,
    pub config_maps: Option<Store<PartialObjectMeta<ConfigMap>>>,
    pub secrets: Option<Store<PartialObjectMeta<Secret>>>,
    pub network_policies: Option<Store<PartialObjectMeta<NetworkPolicy>>>,
    pub pvcs: Option<Store<PartialObjectMeta<PersistentVolumeClaim>>>,
}

/// A kind the operator creates.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + k8s_openapi::Resource
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    fn store(s: &Stores) -> Option<&Store<PartialObjectMeta<Self>>>;
}

macro_rules! child {
    ($t:ty, $f:ident) => {
        impl Child for $t {
            fn store(s: &Stores) -> Option<&Store<PartialObjectMeta<Self>>> {
                s.$f.as_ref()
            }
        }
    };
}
child!(Deployment, deployments);
child!(Service, services);
child!(ConfigMap, config_maps);
child!(Secret, secrets);
child!(NetworkPolicy, network_policies);
child!(PersistentVolumeClaim, pvcs);

/// `generation` when the kind has one, else `resourceVersion`.
pub fn version_of(meta: &ObjectMeta) -> Option<String> {
    match meta.generation {
        Some(g) if g > 0 => Some(format!("g{g}")),
        _ => meta.resource_version.as_ref().map(|rv| format!("rv{rv}")),
    }
}

/// Pure: may the apply be skipped?
pub fn up_to_date(
    cached: Option<&Entry>,
    desired_hash: &str,
    live_version: Option<&str>,
    now: Instant,
) -> bool {
    match (cached, live_version) {
        (Some(e), Some(v)) => {
            e.hash == desired_hash && e.version == v && now.duration_since(e.at) < ENTRY_TTL
        }
        // Just applied, and the watch has not delivered it yet: its ADDED
        // event is on the way and will trigger a reconcile of its own, which
        // then sees it in the cache. (Re-applying would double the cost of
        // the slowest call, a Service's ClusterIP allocation.)
        (Some(e), None) => e.hash == desired_hash && now.duration_since(e.at) < WATCH_LAG,
        _ => false,
    }
}

/// A child in the watch cache. The cache holds only objects labelled as
/// the operator's, so `Absent` does not mean that no object has the name.
#[derive(Clone, Debug)]
pub enum Cached {
    /// No watch cache of this kind yet (the controller is starting).
    NoCache,
    Absent,
    Present(Box<ObjectMeta>),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub hash: String,
    pub version: String,
    pub at: Instant,
}

type Key = (&'static str, String, String);

/// What was applied, per child.
#[derive(Default)]
pub struct Applied {
    stores: RwLock<Stores>,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Applied {
    /// New stores for a new controller run (each leadership term); forgets every entry.
    pub fn reset(&self, stores: Stores) {
        *self.stores.write().unwrap() = stores;
        self.entries.lock().unwrap().clear();
    }

    fn remember(&self, key: Key, entry: Entry) {
        let mut e = self.entries.lock().unwrap();
        if e.len() > 50_000 {
            let now = Instant::now();
            e.retain(|_, v| now.duration_since(v.at) < ENTRY_TTL);
        }
        e.insert(key, entry);
    }

    /// What the watch cache knows of a child.
    pub fn lookup<K: Child>(&self, ns: &str, name: &str) -> Cached {
        let stores = self.stores.read().unwrap();
        match K::store(&stores) {
            Some(store) => match store.get(&ObjectRef::new(name).within(ns)) {
                Some(obj) => Cached::Present(Box::new(obj.metadata.clone())),
                None => Cached::Absent,
            },
            None => Cached::NoCache,
        }
    }

    /// Forget a child (deleted by the operator, or applied by another field manager).
    pub fn forget<K: Child>(&self, ns: &str, name: &str) {
        self.entries
            .lock()
            .unwrap()
            .remove(&(kind::<K>(), ns.to_string(), name.to_string()));
    }
}

fn kind<K: Child>() -> &'static str {
    <K as k8s_openapi::Resource>::KIND
}

/// Server-side apply under [`FIELD_MANAGER`] (forcing ownership: manual
/// edits are reverted), unless the child is known to be up to date.
/// Returns the applied object, or None when skipped.
pub async fn apply<K: Child>(
    client: &Client,
    applied: &Applied,
    ns: &str,
    obj: &K,
) -> Result<Option<K>> {
    let name = obj.meta().name.clone().unwrap_or_default();
    let hash = short_hash(&serde_json::to_vec(obj).unwrap_or_default());
    let key: Key = (kind::<K>(), ns.to_string(), name.clone());
    let cached = applied.entries.lock().unwrap().get(&key).cloned();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let live = match applied.lookup::<K>(ns, &name) {
        Cached::Present(meta) => version_of(&meta),
        Cached::Absent => None,
        // A kind without a watch (Secrets, unless --watch-secrets): its
        // version is read, when there is an apply it may make unnecessary.
        Cached::NoCache if cached.as_ref().is_some_and(|e| e.hash == hash) => api
            .get_metadata_opt(&name)
            .await?
            .and_then(|m| version_of(&m.metadata)),
        Cached::NoCache => None,
    };
    if up_to_date(cached.as_ref(), &hash, live.as_deref(), Instant::now()) {
        // Trusted only on the watch's word, or, while the watch may lag
        // behind our own apply, after a cheap read: a child deleted right
        // after it was created must be restored now, not at the next resync.
        if live.is_some() || api.get_metadata_opt(&name).await?.is_some() {
            return Ok(None);
        }
    }
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let out = api.patch(&name, &pp, &Patch::Apply(obj)).await?;
    if let Some(version) = version_of(out.meta()) {
        applied.remember(
            key,
            Entry {
                hash,
                version,
                at: Instant::now(),
            },
        );
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hash: &str, version: &str, at: Instant) -> Entry {
        Entry {
            hash: hash.into(),
            version: version.into(),
            at,
        }
    }

    #[test]
    fn skips_only_when_hash_and_version_match_and_fresh() {
        let now = Instant::now();
        let e = entry("h1", "g3", now);
        assert!(up_to_date(Some(&e), "h1", Some("g3"), now));
        assert!(!up_to_date(Some(&e), "h2", Some("g3"), now), "spec changed");
        assert!(
            !up_to_date(Some(&e), "h1", Some("g4"), now),
            "edited outside"
        );
        assert!(
            !up_to_date(Some(&e), "h1", None, now + WATCH_LAG),
            "deleted or not cached yet"
        );
        assert!(!up_to_date(None, "h1", Some("g3"), now), "never applied");
        assert!(
            up_to_date(Some(&e), "h1", None, now),
            "just applied, watch lagging"
        );
        assert!(
            !up_to_date(Some(&e), "h1", Some("g3"), now + ENTRY_TTL),
            "expired"
        );
    }

    #[test]
    fn version_prefers_generation() {
        let m = ObjectMeta {
            generation: Some(2),
            resource_version: Some("77".into()),
            ..Default::default()
        };
        assert_eq!(version_of(&m).as_deref(), Some("g2"));
        let m = ObjectMeta {
            resource_version: Some("77".into()),
            ..Default::default()
        };
        assert_eq!(version_of(&m).as_deref(), Some("rv77"));
    }
}
