//! Reconcile scenarios against the fake API server of [`super::fixtures`]:
//! what one reconcile reads and writes for a given PymService and cluster.

use super::fixtures::{
    ApiServer, NS, mk_context, mk_meta, mk_pymservice, mk_secret, mk_store, path, path_of,
};
use super::{observe, reconcile_inner};
use crate::children::Stores;
use crate::crd::PymService;
use crate::desired::{REDIS_SECRET_PASSWORD_KEY, REPLICAS_FIELD_MANAGER, TASK_SECRET_KEY, names};
use http::Method;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use kube::runtime::controller::Action;
use serde_json::Value;
use std::sync::Arc;

/// Async with managed Redis (persistent), a JWT Secret and 2..5 workers.
const HELLO: &str = "
  image: pym/hello:dev
  withAsync: true
  jwtSecretRef: {name: hello-jwt, key: secret}
  workers: {minReplicas: 2, maxReplicas: 5}
  redis:
    managed:
      persistence: {size: 1Gi}
";

/// Async on an external Redis whose URL is in Secret `redis-url`.
const EXTERNAL: &str = "
  image: pym/hello:dev
  withAsync: true
  redis:
    external:
      urlSecretRef: {name: redis-url, key: url}
";

fn hello() -> PymService {
    mk_pymservice("hello", HELLO)
}

/// `hello`'s cluster before its first reconcile: the PymService and its JWT Secret.
fn cluster_with_jwt() -> Arc<ApiServer> {
    let server = ApiServer::new();
    server.insert(&hello());
    server.insert(&mk_secret("hello-jwt", "secret", "s3cret", None));
    server
}

fn apply_path<K: kube::Resource<DynamicType = ()>>(name: &str) -> String {
    format!("PATCH {}", path::<K>(name))
}

fn secret_text(server: &ApiServer, name: &str, key: &str) -> String {
    let v = server.object(&path::<Secret>(name)).expect("secret stored");
    let s: Secret = serde_json::from_value(v).unwrap();
    super::secret::secret_value(&s, key).expect("key present")
}

#[tokio::test]
async fn a_new_service_gets_every_child_then_its_status() {
    let server = cluster_with_jwt();
    let ctx = mk_context(&server).with_autoscaler(true);
    let svc = hello();
    let action = reconcile_inner(&svc, &ctx).await.unwrap();
    // Its Secrets are polled (no Secret watch by default).
    assert_eq!(action, Action::requeue(super::DEFAULT_SECRET_POLL));

    let (redis, worker) = (names::redis("hello"), names::worker_deployment("hello"));
    let mut want = vec![
        apply_path::<Secret>(&redis),
        apply_path::<PersistentVolumeClaim>(&names::redis_pvc("hello")),
        apply_path::<Deployment>(&redis),
        apply_path::<Service>(&redis),
        apply_path::<NetworkPolicy>(&redis),
        apply_path::<ConfigMap>(&names::config_map("hello")),
        apply_path::<Deployment>(&names::api_deployment("hello")),
        apply_path::<Service>(&names::api_service("hello")),
        apply_path::<Secret>(&names::task_secret("hello")),
        // created with the main manager, then the replicas manager takes the count
        apply_path::<Deployment>(&worker),
        apply_path::<Deployment>(&worker),
        format!("PATCH {}/status", path::<PymService>("hello")),
    ];
    want.sort();
    assert_eq!(server.writes(), want);

    let w = server.object(&path::<Deployment>(&worker)).unwrap();
    assert_eq!(w["spec"]["replicas"], 2, "created at minReplicas");
    let pw = secret_text(&server, &redis, REDIS_SECRET_PASSWORD_KEY);
    assert!(pw.len() == 32 && pw.chars().all(|c| c.is_ascii_alphanumeric()));
    let ts = secret_text(&server, &names::task_secret("hello"), TASK_SECRET_KEY);
    assert_eq!(ts.len(), 64);

    let status = status_written(&server);
    assert_eq!(status["status"]["observedGeneration"], 1);
    let ready = condition(&status["status"], "Ready");
    assert_eq!(ready["status"], "False", "no pod is ready yet: {status}");
}

/// The body of the reconcile's status apply.
fn status_written(server: &ApiServer) -> Value {
    let seen = server.seen();
    let write = seen.iter().rfind(|s| s.path.ends_with("/status"));
    write.expect("a status write").body.clone()
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

#[tokio::test]
async fn generated_secrets_are_kept_across_reconciles() {
    let server = cluster_with_jwt();
    let ctx = mk_context(&server);
    reconcile_inner(&hello(), &ctx).await.unwrap();
    let redis = names::redis("hello");
    let task = names::task_secret("hello");
    let first = (
        secret_text(&server, &redis, REDIS_SECRET_PASSWORD_KEY),
        secret_text(&server, &task, TASK_SECRET_KEY),
    );
    // A new operator (empty caches) reconciles the same service again.
    let ctx = mk_context(&server);
    reconcile_inner(&hello(), &ctx).await.unwrap();
    let second = (
        secret_text(&server, &redis, REDIS_SECRET_PASSWORD_KEY),
        secret_text(&server, &task, TASK_SECRET_KEY),
    );
    assert_eq!(first, second);
}

/// Inputs are read before anything is written: a bad reference writes nothing.
#[tokio::test]
async fn bad_inputs_fail_before_any_write() {
    type Setup = fn(&ApiServer);
    let no_setup: Setup = |_| {};
    let cases: [(&str, &str, Setup, &str); 7] = [
        ("jwt Secret missing", HELLO, no_setup, "SecretNotFound"),
        (
            "jwt Secret without the key",
            HELLO,
            |s| s.insert(&mk_secret("hello-jwt", "other", "x", None)),
            "SecretKeyMissing",
        ),
        (
            "a foreign Secret has the managed Redis name",
            HELLO,
            |s| {
                s.insert(&mk_secret("hello-jwt", "secret", "x", None));
                s.insert(&mk_secret("hello-redis", "password", "x", None));
            },
            "NameConflict",
        ),
        (
            "external Redis URL is not a Redis URL",
            EXTERNAL,
            |s| s.insert(&mk_secret("redis-url", "url", "http://r:6379", None)),
            "BadRedisUrl",
        ),
        (
            "external Redis URL is a Sentinel URL without a master name",
            EXTERNAL,
            |s| {
                s.insert(&mk_secret(
                    "redis-url",
                    "url",
                    "redis-sentinel://:pw@s1,s2",
                    None,
                ))
            },
            "BadRedisUrl",
        ),
        (
            "external Redis URL is a Cluster URL with a database",
            EXTERNAL,
            |s| {
                s.insert(&mk_secret(
                    "redis-url",
                    "url",
                    "redis-cluster://a:7000/2",
                    None,
                ))
            },
            "BadRedisUrl",
        ),
        (
            "external Redis Secret missing",
            EXTERNAL,
            no_setup,
            "SecretNotFound",
        ),
    ];
    for (what, spec, setup, reason) in cases {
        let server = ApiServer::new();
        setup(&server);
        let ctx = mk_context(&server);
        let err = reconcile_inner(&mk_pymservice("hello", spec), &ctx)
            .await
            .expect_err(what);
        assert_eq!(err.reason(), reason, "{what}: {err}");
        assert_eq!(server.writes(), Vec::<String>::new(), "{what}");
    }
}

/// Every URL form the broker accepts is accepted from the external Redis
/// Secret: the status shows where it points, and no write carries the
/// password.
#[tokio::test]
async fn every_external_redis_url_form_is_accepted() {
    let cases = [
        // (URL in the Secret, status.redisEndpoint)
        ("redis://:hunter2@r.example:6380/0", "r.example:6380"),
        ("rediss://bob:hunter2@r.example/1", "r.example:6379"),
        (
            "redis-sentinel://:hunter2@s1,s2:26380,s3/0?sentinelPassword=hunter2#mymaster\n",
            "sentinel s1:26379,s2:26380,s3:26379 master mymaster",
        ),
        (
            "rediss-sentinel://bob:hunter2@s1:26379#m",
            "sentinel s1:26379 master m",
        ),
        (
            "redis-cluster://:hunter2@n1:7000,n2:7001,n3:7002",
            "cluster n1:7000,n2:7001,n3:7002",
        ),
    ];
    for (url, want) in cases {
        let server = ApiServer::new();
        server.insert(&mk_secret("redis-url", "url", url, None));
        let svc = mk_pymservice("hello", EXTERNAL);
        server.insert(&svc);
        reconcile_inner(&svc, &mk_context(&server))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = status_written(&server);
        assert_eq!(status["status"]["redisEndpoint"], want, "{url}");
        for w in server.seen().iter().filter(|s| s.method != Method::GET) {
            assert!(
                !w.body.to_string().contains("hunter2"),
                "{url}: {} carries the password",
                w.line()
            );
        }
    }
}

/// A malformed Sentinel URL in the external Redis Secret: the PymService is
/// Degraded (`BadRedisUrl`) with what is wrong, the Warning Event says the
/// same, and neither shows the password.
#[tokio::test]
async fn a_malformed_sentinel_url_degrades_the_service_with_the_reason() {
    let server = ApiServer::new();
    server.insert(&mk_secret(
        "redis-url",
        "url",
        "redis-sentinel://:hunter2@s1:26379,s2:x/0#mymaster",
        None,
    ));
    let svc = mk_pymservice("hello", EXTERNAL);
    server.insert(&svc);
    let ctx = Arc::new(mk_context(&server));
    let err = super::reconcile(Arc::new(svc), ctx)
        .await
        .expect_err("a bad URL fails the reconcile");
    assert_eq!(err.reason(), "BadRedisUrl", "{err}");

    let status = status_written(&server);
    let degraded = condition(&status["status"], "Degraded");
    assert_eq!(degraded["status"], "True", "{status}");
    assert_eq!(degraded["reason"], "BadRedisUrl", "{status}");
    let message = degraded["message"].as_str().unwrap_or_default();
    for part in [
        "spec.redis.external.urlSecretRef",
        &format!("Secret {NS}/redis-url key \"url\""),
        "Sentinel",
        "bad port `x` of sentinel host `s2`",
    ] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    let event = server
        .seen()
        .into_iter()
        .find(|s| s.method == Method::POST)
        .expect("a Warning Event");
    assert_eq!(event.body["reason"], "BadRedisUrl", "{}", event.body);
    assert_eq!(event.body["note"], message, "{}", event.body);
    for w in server.seen().iter().filter(|s| s.method != Method::GET) {
        assert!(
            !w.body.to_string().contains("hunter2"),
            "{} carries the password",
            w.line()
        );
    }
}

#[tokio::test]
async fn the_managed_secret_of_this_service_is_reused() {
    let server = cluster_with_jwt();
    let svc = hello();
    server.insert(&mk_secret(
        "hello-redis",
        "password",
        "Kept1234",
        Some(&svc),
    ));
    reconcile_inner(&svc, &mk_context(&server)).await.unwrap();
    let pw = secret_text(&server, "hello-redis", REDIS_SECRET_PASSWORD_KEY);
    assert_eq!(pw, "Kept1234");
}

/// A worker Deployment that exists with `replicas`.
fn live_workers(replicas: i32) -> Deployment {
    Deployment {
        metadata: mk_meta(&names::worker_deployment("hello"), Some(&hello())),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: None,
    }
}

/// Applies under the replicas field manager, and the replicas they set.
fn replica_writes(server: &ApiServer) -> Vec<Value> {
    server
        .seen()
        .into_iter()
        .filter(|s| {
            s.method == Method::PATCH
                && s.query
                    .contains(&format!("fieldManager={REPLICAS_FIELD_MANAGER}"))
        })
        .map(|s| s.body["spec"]["replicas"].clone())
        .collect()
}

#[tokio::test]
async fn worker_replicas_of_a_live_deployment_have_one_owner() {
    // (live replicas, autoscaler running, replicas the reconcile writes)
    let cases: [(i32, bool, Vec<Value>); 5] = [
        (9, true, vec![]), // the autoscaler's: it bounds them itself
        (0, true, vec![]),
        (9, false, vec![5.into()]), // no autoscaler: back inside 2..5
        (0, false, vec![2.into()]),
        (3, false, vec![]), // inside the bounds: a user's scale stays
    ];
    for (live, autoscaler, want) in cases {
        let server = cluster_with_jwt();
        server.insert(&live_workers(live));
        let ctx = mk_context(&server).with_autoscaler(autoscaler);
        reconcile_inner(&hello(), &ctx).await.unwrap();
        assert_eq!(
            replica_writes(&server),
            want,
            "live {live}, autoscaler {autoscaler}"
        );
        let w = server.object(&path_of(&live_workers(live))).unwrap();
        let replicas = want.first().cloned().unwrap_or(live.into());
        assert_eq!(
            w["spec"]["replicas"], replicas,
            "live {live}, autoscaler {autoscaler}"
        );
    }
}

#[tokio::test]
async fn a_deleted_service_is_left_to_the_garbage_collector() {
    let server = ApiServer::new();
    let mut svc = hello();
    svc.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    let action = reconcile_inner(&svc, &mk_context(&server)).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(server.seen().is_empty(), "no API call");
}

/// Leaving managed Redis deletes its objects but its Secret, and only those the watch
/// caches hold (a steady state costs no API call; without a cache of a kind,
/// every delete is tried, see `children::Applied::exists`).
#[tokio::test]
async fn leaving_managed_redis_deletes_what_the_caches_hold() {
    let server = ApiServer::new();
    server.insert(&mk_secret(
        "redis-url",
        "url",
        "redis://:pw@r.example:6380/0",
        None,
    ));
    let svc = mk_pymservice("hello", EXTERNAL);
    server.insert(&svc);
    let redis = names::redis("hello");
    let old_dep = Deployment {
        metadata: mk_meta(&redis, Some(&svc)),
        ..Default::default()
    };
    let old_secret = mk_secret(&redis, REDIS_SECRET_PASSWORD_KEY, "pw", Some(&svc));
    server.insert(&old_dep);
    server.insert(&old_secret);
    let ctx = mk_context(&server);
    ctx.applied.reset(Stores {
        deployments: Some(mk_store(std::slice::from_ref(&old_dep))),
        secrets: Some(mk_store(std::slice::from_ref(&old_secret))),
        services: Some(mk_store::<Service>(&[])),
        config_maps: Some(mk_store::<ConfigMap>(&[])),
        network_policies: Some(mk_store::<NetworkPolicy>(&[])),
        pvcs: Some(mk_store::<PersistentVolumeClaim>(&[])),
    });
    reconcile_inner(&svc, &ctx).await.unwrap();
    let deletes: Vec<String> = server
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("DELETE"))
        .collect();
    // Not the Secret: it goes with the PymService (no `delete` on Secrets).
    assert_eq!(deletes, [format!("DELETE {}", path::<Deployment>(&redis))]);
    assert!(server.object(&path::<Secret>(&redis)).is_some());
    assert!(server.object(&path::<Deployment>(&redis)).is_none());
    let status = status_written(&server);
    assert_eq!(
        status["status"]["redisEndpoint"], "r.example:6380",
        "{status}"
    );
}

/// A Deployment of generation 1 that wants 1 replica and has `ready` ready.
fn api_deployment(ready: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("hello-api".into()),
            namespace: Some(NS.into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(1),
            ready_replicas: Some(ready),
            updated_replicas: Some(1),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn counts_trust_a_rolled_out_snapshot_and_read_again_otherwise() {
    // (live ready, the apply's snapshot, ready counted, reads)
    let cases: [(i32, Option<i32>, i32, usize); 3] = [
        (0, Some(1), 1, 0), // rolled out: no API call
        (1, Some(0), 1, 1), // the snapshot is older than the live object
        (0, None, 0, 1),    // the apply was skipped
    ];
    for (live, snapshot, ready, reads) in cases {
        let server = ApiServer::new();
        server.insert(&api_deployment(live));
        let seen = snapshot.map(api_deployment);
        let c = observe::counts(&server.client(), NS, "hello-api", seen)
            .await
            .unwrap();
        assert_eq!(c.ready, ready, "{live} {snapshot:?}");
        assert_eq!(server.seen().len(), reads, "{live} {snapshot:?}");
    }
}

/// An object with a child's name that this PymService does not control
/// (a user's, another PymService's child) is refused before any write, and
/// stays as it was.
#[tokio::test]
async fn names_held_by_another_owner_are_refused_untouched() {
    let other = mk_pymservice("hello-redis", HELLO);
    let mut other_uid = other.clone();
    other_uid.metadata.uid = Some("uid-of-another-pymservice".into());
    type Existing = fn(&PymService) -> (String, Value);
    let cases: [(&str, Existing, &str); 3] = [
        (
            "a user's Service named like the PymService",
            |_| {
                object(&Service {
                    metadata: mk_meta("hello", None),
                    ..Default::default()
                })
            },
            "Service demo/hello exists and is not created by this PymService",
        ),
        (
            "the Redis Deployment name, held by another PymService",
            |o| {
                object(&Deployment {
                    metadata: mk_meta("hello-redis", Some(o)),
                    ..Default::default()
                })
            },
            "Deployment demo/hello-redis exists and is controlled by PymService hello-redis",
        ),
        (
            "the worker Deployment name, held by a user's object",
            |_| {
                object(&Deployment {
                    metadata: mk_meta("hello-worker", None),
                    ..Default::default()
                })
            },
            "Deployment demo/hello-worker exists and is not created by this PymService",
        ),
    ];
    for (what, existing, message) in cases {
        let server = cluster_with_jwt();
        let (path, before) = existing(&other_uid);
        server.insert_value(&path, before.clone());
        let err = reconcile_inner(&hello(), &mk_context(&server))
            .await
            .expect_err(what);
        assert_eq!(err.reason(), "NameConflict", "{what}");
        assert!(err.to_string().starts_with(message), "{what}: {err}");
        assert_eq!(
            server.writes(),
            Vec::<String>::new(),
            "{what}: nothing written"
        );
        assert_eq!(server.object(&path), Some(before), "{what}: untouched");
    }
}

/// (API path, stored JSON) of an object, as [`ApiServer::insert`] stores it.
fn object<K: kube::Resource<DynamicType = ()> + serde::Serialize>(obj: &K) -> (String, Value) {
    let server = ApiServer::new();
    server.insert(obj);
    let path = path_of(obj);
    let v = server.object(&path).unwrap();
    (path, v)
}

/// Leaving managed Redis never deletes an object another owner controls.
#[tokio::test]
async fn objects_of_another_owner_are_not_deleted() {
    let server = ApiServer::new();
    server.insert(&mk_secret("redis-url", "url", "redis://r:6379", None));
    let svc = mk_pymservice("hello", EXTERNAL);
    server.insert(&svc);
    let foreign = Deployment {
        metadata: mk_meta(&names::redis("hello"), None),
        ..Default::default()
    };
    server.insert(&foreign);
    let ctx = mk_context(&server); // no watch caches: every name is read
    reconcile_inner(&svc, &ctx).await.unwrap();
    assert!(
        !server.writes().iter().any(|w| w.starts_with("DELETE")),
        "{:?}",
        server.writes()
    );
    assert!(server.object(&path_of(&foreign)).is_some());
}

/// `spec.workers.schedules` reaches the worker pods as `PYM_SCHEDULES`;
/// without overrides the variable is absent.
#[tokio::test]
async fn schedule_overrides_reach_the_workers_as_pym_schedules() {
    let worker_env = |server: &ApiServer| -> Vec<Value> {
        let w = server
            .object(&path::<Deployment>(&names::worker_deployment("hello")))
            .unwrap();
        w["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone()
    };
    let schedules = |env: &[Value]| {
        env.iter()
            .find(|e| e["name"] == pym_core::contract::ENV_SCHEDULES)
            .map(|e| e["value"].as_str().unwrap().to_owned())
    };
    let server = cluster_with_jwt();
    reconcile_inner(&hello(), &mk_context(&server))
        .await
        .unwrap();
    assert_eq!(schedules(&worker_env(&server)), None);

    let spec = HELLO.replace(
        "workers: {minReplicas: 2, maxReplicas: 5}",
        "workers:\n    minReplicas: 2\n    schedules:\n      nightly_cleanup: {cron: \"0 30 4 * * *\", tz: Europe/Paris}\n      report: {enabled: false}",
    );
    let svc = mk_pymservice("hello", &spec);
    let server = ApiServer::new();
    server.insert(&svc);
    server.insert(&mk_secret("hello-jwt", "secret", "s3cret", None));
    reconcile_inner(&svc, &mk_context(&server)).await.unwrap();
    assert_eq!(
        schedules(&worker_env(&server)).as_deref(),
        Some(
            r#"{"nightly_cleanup":{"cron":"0 30 4 * * *","tz":"Europe/Paris"},"report":{"enabled":false}}"#
        )
    );
}

/// A bad cron expression in `spec.workers.schedules` fails the reconcile
/// before any write, naming the schedule, instead of crash-looping workers.
#[tokio::test]
async fn a_bad_schedule_override_fails_before_any_write() {
    let spec = HELLO.replace(
        "workers: {minReplicas: 2, maxReplicas: 5}",
        "workers:\n    schedules:\n      nightly_cleanup: {cron: \"61 * * * *\"}",
    );
    let server = cluster_with_jwt();
    let err = reconcile_inner(&mk_pymservice("hello", &spec), &mk_context(&server))
        .await
        .expect_err("a bad cron");
    assert_eq!(err.reason(), "InvalidSpec", "{err}");
    assert!(
        err.to_string()
            .contains("spec.workers.schedules.nightly_cleanup: cron expression \"61 * * * *\""),
        "{err}"
    );
    assert_eq!(server.writes(), Vec::<String>::new());
}
