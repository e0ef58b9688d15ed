//! Smoke tests proving the e2e ground: a real apiserver with RBAC and admission,
//! controllers and scheduler, kwok nodes running pods, kubectl and helm.
//!
//! Needs `e2e/cluster up` first; every test fails (not skips) without it.
//! Each test uses its own namespace (and unique cluster-scoped names), so
//! they run in parallel and can be re-run.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use pym_e2e::cluster::{client_from_kubeconfig, create_service_account, service_account_user};
use pym_e2e::{Cluster, RedisServer, Result, pinned_version, testdata, unique_suffix, wait};
use serde_json::json;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 3
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
      - name: hello
        image: registry.invalid/pym/hello:1.0   # never pulled: kwok fakes the pods
"#;

#[tokio::test]
async fn apiserver_runs_the_pinned_version() -> Result<()> {
    let cluster = Cluster::connect().await;
    let pinned =
        pinned_version("KUBERNETES_VERSION").expect("KUBERNETES_VERSION in e2e/versions.env");
    let info = cluster.client().apiserver_version().await?;
    assert_eq!(info.git_version, pinned, "apiserver /version");
    let minor = pinned.split('.').nth(1).unwrap();
    assert_eq!(info.minor, minor);
    let client = cluster
        .kubectl()
        .args(["version", "--client", "-o", "json"])
        .run()
        .await?;
    assert!(
        client.contains(&format!("\"gitVersion\": \"{pinned}\"")),
        "kubectl version: {client}"
    );
    Ok(())
}

#[tokio::test]
async fn deployment_pods_run_on_kwok_and_scale() -> Result<()> {
    let cluster = Cluster::connect().await;
    let client = cluster.client();
    let ns = cluster.namespace("smoke-deploy").await?;
    let kubectl = cluster.kubectl().args(["-n", ns.name()]);

    kubectl
        .clone()
        .args(["apply", "-f", "-"])
        .stdin(DEPLOYMENT)
        .run()
        .await?;
    let pods = wait::pods_running(&client, ns.name(), "app=hello", 3).await?;
    for pod in &pods {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(
            node.starts_with("kwok-node-"),
            "scheduled to a kwok node, got {node:?}"
        );
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        assert!(
            ip.starts_with("10.244."),
            "pod IP from the kwok pod CIDR, got {ip:?}"
        );
    }
    kubectl
        .clone()
        .args(["rollout", "status", "deployment/hello", "--timeout=60s"])
        .run()
        .await?;

    kubectl
        .clone()
        .args(["scale", "deployment/hello", "--replicas=0"])
        .run()
        .await?;
    wait::no_pods(&client, ns.name(), "app=hello").await?;

    kubectl
        .clone()
        .args(["scale", "deployment/hello", "--replicas=3"])
        .run()
        .await?;
    wait::pods_running(&client, ns.name(), "app=hello", 3).await?;
    Ok(())
}

#[tokio::test]
async fn crd_objects_are_validated_by_openapi_schema() -> Result<()> {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("smoke-crd").await?;
    // CRDs are cluster-scoped: a unique group keeps parallel runs and re-runs apart.
    let group = format!("e2e-{}.pym.example", unique_suffix());
    let crd_name = format!("widgets.{group}");
    let crd = format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {crd_name}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{type: integer, minimum: 1, maximum: 10}}
              color: {{type: string, enum: [red, green, blue]}}
"#
    );
    cluster
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(crd)
        .run()
        .await?;
    let result = async {
        cluster
            .kubectl()
            .args(["wait", "--for=condition=Established", "--timeout=60s"])
            .arg(format!("crd/{crd_name}"))
            .run()
            .await?;

        let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
        let widgets: Api<DynamicObject> = Api::namespaced_with(
            cluster.client(),
            ns.name(),
            &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
        );
        let widget = |name: &str, spec: serde_json::Value| -> Result<DynamicObject> {
            Ok(serde_json::from_value(json!({
                "apiVersion": format!("{group}/v1"),
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": spec,
            }))?)
        };

        // Discovery may lag a moment behind Established: retry the first create.
        let good = widget("good", json!({"size": 3, "color": "red"}))?;
        wait::until("creating a Widget", wait::TIMEOUT, || async {
            widgets.create(&PostParams::default(), &good).await.map(Some)
        })
        .await?;
        assert_eq!(widgets.get("good").await?.data["spec"]["size"], 3);

        // Out of range: the apiserver rejects it with 422 Invalid, naming the field.
        let err = widgets
            .create(&PostParams::default(), &widget("too-big", json!({"size": 42}))?)
            .await
            .expect_err("size 42 violates maximum 10");
        match err {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 422, "{status:?}");
                assert!(status.message.contains("spec.size"), "{}", status.message);
            }
            other => panic!("expected an API error, got {other}"),
        }

        // Same through kubectl, the way a user meets it.
        let out = cluster
            .kubectl()
            .args(["apply", "-n", ns.name(), "-f", "-"])
            .stdin(format!(
                "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: bad}}\nspec: {{size: 2, color: purple}}\n"
            ))
            .run_expect_failure()
            .await?;
        assert!(
            out.stderr.contains("spec.color") && out.stderr.contains("Unsupported value"),
            "{out}"
        );
        Ok::<_, pym_e2e::Error>(())
    }
    .await;
    cluster
        .kubectl()
        .args(["delete", "crd", &crd_name, "--wait=false"])
        .run()
        .await?;
    result
}

#[tokio::test]
async fn service_account_gets_what_its_role_grants_and_403_otherwise() -> Result<()> {
    let cluster = Cluster::connect().await;
    let admin = cluster.client();
    let ns = cluster.namespace("smoke-rbac").await?;
    create_service_account(&admin, ns.name(), "reader").await?;
    let rbac = format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: configmap-reader}}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader-reads-configmaps}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}}
subjects:
- {{kind: ServiceAccount, name: reader, namespace: {ns}}}
"#,
        ns = ns.name()
    );
    cluster
        .kubectl()
        .args(["apply", "-n", ns.name(), "-f", "-"])
        .stdin(rbac)
        .run()
        .await?;

    let reader = cluster.as_service_account(ns.name(), "reader").await?;

    // Granted: list configmaps in its namespace.
    Api::<ConfigMap>::namespaced(reader.clone(), ns.name())
        .list(&ListParams::default())
        .await?;
    // Not granted: other verbs, other resources, other namespaces.
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("nope".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    forbidden(
        Api::<ConfigMap>::namespaced(reader.clone(), ns.name())
            .create(&PostParams::default(), &cm)
            .await,
    );
    forbidden(
        Api::<Secret>::namespaced(reader.clone(), ns.name())
            .list(&ListParams::default())
            .await,
    );
    forbidden(
        Api::<ConfigMap>::namespaced(reader.clone(), "default")
            .list(&ListParams::default())
            .await,
    );

    // The same with kubectl --as, and the identity the apiserver sees.
    let user = service_account_user(ns.name(), "reader");
    let as_reader = cluster
        .kubectl()
        .args(["-n", ns.name()])
        .arg(format!("--as={user}"));
    as_reader.clone().args(["get", "configmaps"]).run().await?;
    let out = as_reader
        .clone()
        .args(["get", "secrets"])
        .run_expect_failure()
        .await?;
    assert!(
        out.stderr.contains("Forbidden") || out.stderr.contains("forbidden"),
        "{out}"
    );
    let can = as_reader
        .clone()
        .args(["auth", "can-i", "delete", "configmaps"])
        .output()
        .await?;
    assert_eq!(can.stdout.trim(), "no", "{can}");
    let whoami = as_reader
        .clone()
        .args(["auth", "whoami", "-o", "json"])
        .run()
        .await?;
    assert!(whoami.contains(&user), "{whoami}");
    assert!(whoami.contains("system:serviceaccounts"), "{whoami}");
    Ok(())
}

fn forbidden<T>(result: std::result::Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        Err(e) => panic!("expected 403 Forbidden, got {e}"),
        Ok(_) => panic!("expected 403 Forbidden, but it was allowed"),
    }
}

#[tokio::test]
async fn helm_installs_and_uninstalls_a_chart() -> Result<()> {
    let cluster = Cluster::connect().await;
    let client = cluster.client();
    let ns = cluster.namespace("smoke-helm").await?;
    let chart = testdata("charts/hello");
    let helm = cluster.helm().args(["--namespace", ns.name()]);

    helm.clone()
        .args(["install", "hello"])
        .arg(&chart)
        .args(["--set", "message=hi from helm", "--wait", "--timeout", "2m"])
        .run()
        .await?;
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), ns.name());
    let cm = configmaps.get("hello-config").await?;
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("message")
            .map(String::as_str),
        Some("hi from helm")
    );
    wait::pods_running(&client, ns.name(), "app.kubernetes.io/instance=hello", 2).await?;
    let list = helm.clone().args(["list", "-o", "json"]).run().await?;
    assert!(
        list.contains("\"name\":\"hello\"") && list.contains("\"status\":\"deployed\""),
        "{list}"
    );

    helm.clone()
        .args(["uninstall", "hello", "--wait"])
        .run()
        .await?;
    wait::deleted(&configmaps, "hello-config").await?;
    wait::no_pods(&client, ns.name(), "app.kubernetes.io/instance=hello").await?;
    Ok(())
}

#[tokio::test]
async fn redis_server_starts_on_a_free_loopback_port() -> Result<()> {
    let redis = RedisServer::start();
    assert!(redis.url().starts_with("redis://127.0.0.1:"));
    let other = RedisServer::start();
    assert_ne!(redis.port(), other.port());
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_finalizes_its_pods() -> Result<()> {
    // Without a kubelet, deleted pods would keep their deletionTimestamp for
    // ever; kwok's pod-delete stage finalizes them, so namespaces go away.
    let cluster = Cluster::connect().await;
    let client = cluster.client();
    let ns = cluster.namespace("smoke-nsdel").await?;
    cluster
        .kubectl()
        .args(["apply", "-n", ns.name(), "-f", "-"])
        .stdin(DEPLOYMENT)
        .run()
        .await?;
    wait::pods_running(&client, ns.name(), "app=hello", 3).await?;
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    namespaces
        .delete(ns.name(), &DeleteParams::default())
        .await?;
    wait::deleted(&namespaces, ns.name()).await?;
    Ok(())
}

#[tokio::test]
async fn service_account_token_is_issued_and_accepted() -> Result<()> {
    // TokenRequest (signed with the cluster's ServiceAccount key) and token
    // authentication, the way an in-cluster operator authenticates.
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("smoke-token").await?;
    create_service_account(&cluster.client(), ns.name(), "robot").await?;
    let kubeconfig = cluster
        .service_account_kubeconfig(ns.name(), "robot", std::time::Duration::from_secs(600))
        .await?;
    let robot = client_from_kubeconfig(&kubeconfig).await?;
    // No Role granted: the token works (403, not 401) and RBAC denies.
    forbidden(
        Api::<ConfigMap>::namespaced(robot.clone(), ns.name())
            .list(&ListParams::default())
            .await,
    );
    let whoami = cluster
        .kubectl()
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .run()
        .await?;
    assert_eq!(whoami, service_account_user(ns.name(), "robot"));
    Ok(())
}

#[tokio::test]
async fn control_plane_components_are_not_cluster_admin() -> Result<()> {
    // The "safer layout": KCM, scheduler and kwok have their own identities,
    // limited by RBAC; only the test harness is in system:masters.
    let cluster = Cluster::connect().await;
    // `kubectl auth can-i <verb> <resource> [--subresource=..] --as=<user> -A`
    let can_i = |user: &'static str, args: &'static [&'static str]| {
        let kubectl = cluster.kubectl();
        async move {
            let out = kubectl
                .args(["auth", "can-i", "-A"])
                .args(args)
                .arg(format!("--as={user}"))
                .output()
                .await?;
            Ok::<_, pym_e2e::Error>(out.stdout.trim() == "yes")
        }
    };
    assert!(can_i("system:kwok", &["patch", "pods", "--subresource=status"]).await?);
    assert!(can_i("system:kwok", &["update", "leases.coordination.k8s.io"]).await?);
    assert!(!can_i("system:kwok", &["get", "secrets"]).await?);
    assert!(!can_i("system:kwok", &["create", "pods"]).await?);
    assert!(
        can_i(
            "system:kube-scheduler",
            &["create", "pods", "--subresource=binding"]
        )
        .await?
    );
    assert!(!can_i("system:kube-scheduler", &["delete", "namespaces"]).await?);
    assert!(
        !can_i(
            "system:kube-controller-manager",
            &["create", "clusterrolebindings"]
        )
        .await?
    );
    // The harness itself is cluster-admin through system:masters.
    let admin = cluster
        .kubectl()
        .args(["auth", "can-i", "*", "*", "-A"])
        .run()
        .await?;
    assert_eq!(admin.trim(), "yes");
    Ok(())
}
