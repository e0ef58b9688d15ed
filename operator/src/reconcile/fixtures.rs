//! Test fixtures: a fake API server and `mk_*` builders.
//!
//! [`ApiServer`] keeps objects in memory, keyed by their API path, and
//! answers what the reconciler sends the way the real one does: GET (200 or
//! a 404 `Status`), server-side apply (PATCH: merged into the stored object,
//! `resourceVersion` bumped, `generation` bumped when the spec changes, a
//! `uid` on creation), status apply (`…/status`), DELETE and Event POSTs.
//! Every request is recorded, so a scenario asserts on what was written as
//! well as on the result (the shape of kube-rs controller-rs's
//! `ApiServerVerifier`, without a fixed request order: the reconciler
//! applies its children concurrently).

use crate::crd::PymService;
use crate::metrics::Metrics;
use crate::reconcile::Context;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::ByteString;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use kube::client::Body;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const NS: &str = "demo";
pub const UID: &str = "00000000-0000-0000-0000-000000000001";

/// One request as the fake API server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Seen {
    /// "METHOD path", e.g. `PATCH /api/v1/namespaces/demo/secrets/hello-redis`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
pub struct ApiServer {
    objects: Mutex<BTreeMap<String, Value>>,
    seen: Mutex<Vec<Seen>>,
    version: Mutex<u64>,
}

impl ApiServer {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A kube client whose every request this server answers.
    pub fn client(self: &Arc<Self>) -> Client {
        let server = self.clone();
        let svc = tower::service_fn(move |req: Request<Body>| {
            let server = server.clone();
            async move { Ok::<_, std::convert::Infallible>(server.answer(req).await) }
        });
        Client::new(svc, "default")
    }

    /// Stores an object as if it existed before the scenario.
    pub fn insert<K: Resource<DynamicType = ()> + Serialize>(&self, obj: &K) {
        let path = path_of(obj);
        let mut v = serde_json::to_value(obj).unwrap();
        v["apiVersion"] = json!(K::api_version(&()));
        v["kind"] = json!(K::kind(&()));
        v["metadata"]["resourceVersion"] = json!(self.next_version());
        self.objects.lock().unwrap().insert(path, v);
    }

    /// Stores a JSON object at `path`, as it is.
    pub fn insert_value(&self, path: &str, v: Value) {
        self.objects.lock().unwrap().insert(path.into(), v);
    }

    /// The stored object at `path`.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// "METHOD path" of every request but GETs, sorted (the order of
    /// concurrent applies is not deterministic).
    pub fn writes(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .seen()
            .iter()
            .filter(|s| s.method != Method::GET)
            .map(Seen::line)
            .collect();
        w.sort();
        w
    }

    fn next_version(&self) -> String {
        let mut v = self.version.lock().unwrap();
        *v += 1;
        v.to_string()
    }

    async fn answer(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let seen = Seen {
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        self.seen.lock().unwrap().push(seen.clone());
        let (status, body) = self.handle(&seen);
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    fn handle(&self, req: &Seen) -> (StatusCode, Value) {
        let mut objects = self.objects.lock().unwrap();
        let path = req.path.as_str();
        match req.method {
            Method::GET => match objects.get(path) {
                Some(v) => (StatusCode::OK, v.clone()),
                None => not_found(path),
            },
            Method::PATCH => match path.strip_suffix("/status") {
                Some(base) => match objects.get_mut(base) {
                    Some(v) => {
                        v["status"] = req.body["status"].clone();
                        (StatusCode::OK, v.clone())
                    }
                    None => not_found(base),
                },
                None => {
                    let rv = self.next_version();
                    let v = objects.entry(path.to_string()).or_insert(Value::Null);
                    server_side_apply(v, &req.body, rv);
                    (StatusCode::OK, v.clone())
                }
            },
            Method::DELETE => match objects.remove(path) {
                Some(v) => (StatusCode::OK, v),
                None => not_found(path),
            },
            Method::POST => (StatusCode::CREATED, req.body.clone()),
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 405}),
            ),
        }
    }
}

/// Merges an apply into the stored object (objects field by field, the
/// rest replaced) and does what the API server does on a write.
fn server_side_apply(stored: &mut Value, patch: &Value, resource_version: String) {
    let spec_before = stored.get("spec").cloned();
    let creating = stored.is_null();
    merge(stored, patch);
    let meta = &mut stored["metadata"];
    if creating {
        meta["uid"] = json!(format!("uid-{resource_version}"));
    }
    meta["resourceVersion"] = json!(resource_version);
    if stored.get("spec") != spec_before.as_ref() || creating {
        let g = stored["metadata"]["generation"].as_i64().unwrap_or(0);
        stored["metadata"]["generation"] = json!(g + 1);
    }
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn not_found(path: &str) -> (StatusCode, Value) {
    let name = path.rsplit('/').next().unwrap_or_default();
    (
        StatusCode::NOT_FOUND,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("\"{name}\" not found"), "reason": "NotFound", "code": 404,
        }),
    )
}

/// The API path of a namespaced object.
pub fn path_of<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}",
        K::url_path(&(), obj.meta().namespace.as_deref()),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// The API path of `kind` named `name` in [`NS`].
pub fn path<K: Resource<DynamicType = ()>>(name: &str) -> String {
    format!("{}/{name}", K::url_path(&(), Some(NS)))
}

/// A reconcile context on `server`, with empty watch caches.
pub fn mk_context(server: &Arc<ApiServer>) -> Context {
    let client = server.client();
    let recorder = Recorder::new(client.clone(), "pym-operator".into());
    let metrics = Arc::new(Metrics::default());
    Context::new(client, recorder, metrics)
}

/// A PymService in [`NS`] with uid [`UID`], from a YAML `spec:` body.
pub fn mk_pymservice(name: &str, spec_yaml: &str) -> PymService {
    let yaml = format!(
        "apiVersion: pym.dev/v1alpha1\nkind: PymService\n\
         metadata: {{name: {name}, namespace: {NS}, uid: {UID}, generation: 1}}\nspec:\n{spec_yaml}"
    );
    yaml_serde::from_str(&yaml).expect("fixture parses")
}

/// Metadata of an object `name` in [`NS`], controlled by `owner` when given.
pub fn mk_meta(name: &str, owner: Option<&PymService>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        owner_references: owner.map(|o| {
            vec![OwnerReference {
                api_version: "pym.dev/v1alpha1".into(),
                kind: "PymService".into(),
                name: o.name_any(),
                uid: o.uid().unwrap_or_default(),
                controller: Some(true),
                ..Default::default()
            }]
        }),
        ..Default::default()
    }
}

/// A Secret in [`NS`] holding `key`, controlled by `owner` when given.
pub fn mk_secret(name: &str, key: &str, value: &str, owner: Option<&PymService>) -> Secret {
    Secret {
        metadata: mk_meta(name, owner),
        data: Some([(key.to_string(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Secret::default()
    }
}

/// A watch cache holding the metadata of `objs`, as the controller's watch would.
pub fn mk_store<K>(objs: &[K]) -> Store<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone,
{
    let (store, mut writer) = reflector::store();
    for o in objs {
        let meta = o.meta().clone().into_response_partial::<K>();
        writer.apply_watcher_event(&watcher::Event::Apply(meta));
    }
    store
}
