//! Chart e2e: `helm install` charts/pym-operator on the real control plane,
//! then run the pym-operator binary **as the chart's ServiceAccount**
//! (impersonated, with exactly the flags of the installed Deployment) and
//! reconcile the example PymService end to end — proving the chart's RBAC is
//! sufficient — and check that verbs the chart does not grant are refused.
//! `helm test`, `helm upgrade` with other values and `helm uninstall` (CRD kept).
//!
//! kwok fakes the chart's operator pods (they never run), so the real
//! operator process is the local binary: build it first with
//! `cargo build -p pym-operator`, then `cargo test -p pym-e2e --test chart`.
//!
//! The cluster-wide install runs the operator without `--namespace`, as the
//! chart does, so it also sees PymServices of other tests: the tests of this
//! file take turns (SERIAL) and each runs its operator only as long as needed.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::{Client, ResourceExt};
use pym_e2e::cluster::service_account_user;
use pym_e2e::objects::{first_container, template_spec};
use pym_e2e::operator::{Launch, Operator, operator_binary};
use pym_e2e::pymservice::{apply_hello, pym_api, pym_resource, wait_pym_ready};
use pym_e2e::{Cluster, Result, run_dir, wait, workspace_root};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The tests of this file run one at a time (see the module docs).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const RELEASE: &str = "pym";
/// `helm install pym charts/pym-operator` names its objects `pym-operator`.
const FULLNAME: &str = "pym-operator";
const CRD: &str = "pymservices.pym.dev";

fn chart_dir() -> String {
    workspace_root()
        .join("charts/pym-operator")
        .display()
        .to_string()
}

fn is_forbidden<T: std::fmt::Debug>(r: &kube::Result<T>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403)
}

/// `helm <verb> pym charts/pym-operator -n <ns> --wait <extra>`.
async fn helm_release(cluster: &Cluster, verb: &str, ns: &str, extra: &[&str]) -> Result<String> {
    cluster
        .helm()
        .args([verb, RELEASE, &chart_dir(), "--namespace", ns])
        .args(["--wait", "--timeout", "120s"])
        .args(extra)
        .run()
        .await
}

/// `helm uninstall pym -n <ns> --wait` (uninstall takes no chart path).
async fn helm_uninstall(cluster: &Cluster, ns: &str) -> Result<String> {
    cluster
        .helm()
        .args(["uninstall", RELEASE, "--namespace", ns])
        .args(["--wait", "--timeout", "120s"])
        .run()
        .await
}

/// The installed operator Deployment's only container: (args, env name → value).
fn container_of(dep: &Deployment) -> (Vec<String>, Vec<(String, String)>) {
    let c = first_container(dep);
    let env = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    (c.args.clone().unwrap_or_default(), env)
}

/// Starts `pym-operator` with the args and env of the installed Deployment,
/// as its pod would (POD_NAMESPACE from the downward API), except that it
/// listens on a free loopback port and uses a kubeconfig that impersonates
/// `system:serviceaccount:<release ns>:<serviceAccountName>`: the operator
/// binary run with the chart's flags, as the chart's ServiceAccount.
fn start_as_chart(cluster: &Cluster, dep: &Deployment, tag: &str) -> Result<Operator> {
    let ns = dep.namespace().unwrap();
    let sa = template_spec(dep).service_account_name.clone().unwrap();
    let kubeconfig = impersonating_kubeconfig(cluster, &ns, &sa)?;
    let (args, env) = container_of(dep);
    Launch::new(operator_binary(), &kubeconfig, &format!("chart-{tag}"))
        .args(args.into_iter().filter(|a| !a.starts_with("--http-addr=")))
        .envs(env)
        .env("POD_NAMESPACE", &ns)
        .log_name(format!("chart-operator-{tag}.log"))
        .start()
}

/// Waits for the probe paths of the Deployment to answer 200 (the chart's
/// probes really hit the operator's endpoints) and for the Lease.
async fn wait_ready_and_leading(op: &Operator, dep: &Deployment) -> Result<()> {
    let c = first_container(dep);
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
            .expect("httpGet probe")
    };
    for path in [
        probe_path(&c.liveness_probe),
        probe_path(&c.readiness_probe),
    ] {
        op.wait_ok(&path).await?;
    }
    op.wait_leader(Duration::from_secs(40)).await
}

/// No request of the operator was refused by RBAC.
fn assert_nothing_forbidden(op: &Operator) {
    let logs = op.logs();
    let refused: Vec<&str> = logs
        .lines()
        // An RBAC refusal: `... is forbidden: User "system:serviceaccount:..."
        // cannot <verb> resource ...` (not e.g. a namespace being terminated).
        .filter(|l| l.contains("is forbidden: User ") && l.contains(" cannot "))
        .collect();
    assert!(
        refused.is_empty(),
        "the chart's RBAC refused requests of the operator:\n{}",
        refused.join("\n")
    );
}

/// A copy of the admin kubeconfig whose user impersonates the ServiceAccount
/// (`as:` in kubeconfig terms), so every request of the operator is
/// authorized exactly as the chart's ServiceAccount.
fn impersonating_kubeconfig(cluster: &Cluster, ns: &str, sa: &str) -> Result<PathBuf> {
    let mut kc = Kubeconfig::read_from(cluster.kubeconfig_path())?;
    for ai in &mut kc.auth_infos {
        if let Some(a) = ai.auth_info.as_mut() {
            a.impersonate = Some(service_account_user(ns, sa));
        }
    }
    let path = run_dir().join(format!("kubeconfig-as-{ns}-{sa}"));
    std::fs::write(&path, yaml_serde::to_string(&kc)?)?;
    set_private(&path)?;
    Ok(path)
}

fn set_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

async fn wait_crd_established(cluster: &Cluster) -> Result<()> {
    cluster
        .kubectl()
        .args([
            "wait",
            "--for=condition=Established",
            &format!("crd/{CRD}"),
            "--timeout=60s",
        ])
        .run()
        .await?;
    Ok(())
}

/// The security settings a platform team expects of the operator pods.
fn assert_hardened(dep: &Deployment) {
    let spec = dep.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let c = &pod.containers[0];
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    let res = c.resources.as_ref().expect("resources");
    assert!(
        res.requests
            .as_ref()
            .is_some_and(|r| r.contains_key("memory"))
    );
    assert!(
        res.limits
            .as_ref()
            .is_some_and(|r| r.contains_key("memory"))
    );
    assert!(c.liveness_probe.is_some() && c.readiness_probe.is_some());
}

/// Applies hello, waits until Ready, then drives the operator through the
/// code paths whose verbs the chart grants: Warning events (a PymService
/// whose Secret is missing) and deletes (switching managed Redis and workers off).
async fn reconcile_hello_end_to_end(
    cluster: &Cluster,
    op: &Operator,
    dep: &Deployment,
    sa: &Client,
    ns: &str,
) -> Result<()> {
    let client = cluster.client();
    apply_hello(cluster, ns).await?;
    let pym = pym_api(&client, ns);
    let ready = wait_ready_as_sa(op, &pym, "hello").await?;
    eprintln!("hello Ready: {}", ready.data["status"]);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for d in ["hello-api", "hello-worker", "hello-redis"] {
        assert!(deps.get_opt(d).await?.is_some(), "Deployment {d}");
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    assert!(secrets.get_opt("hello-redis").await?.is_some());
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    assert_redis_admits_the_operator(&nps.get("hello-redis").await?, dep);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    assert!(cms.get_opt("hello-config").await?.is_some());
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    assert!(svcs.get_opt("hello").await?.is_some());
    // The autoscaler's write (autoscaler.rs scale_to): it needs a reachable
    // Redis to decide, which a host process does not have here, so the grant
    // is exercised directly as the ServiceAccount.
    let workers: Api<Deployment> = Api::namespaced(sa.clone(), ns);
    let scale = workers.get_scale("hello-worker").await;
    assert!(is_forbidden(&scale), "get deployments/scale is not granted");
    let replicas = deps.get("hello-worker").await?.spec.unwrap().replicas;
    workers
        .patch_scale(
            "hello-worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    // Before a scale-down (poll.rs mark_deletion_costs): the worker pods
    // listed by the Deployment's selector, and a pod's deletion cost set.
    let pods: Api<Pod> = Api::namespaced(sa.clone(), ns);
    let selector = "app.kubernetes.io/instance=hello,app.kubernetes.io/component=worker";
    let pod = wait::until(
        "a hello-worker pod, listed as the chart's ServiceAccount",
        wait::TIMEOUT,
        || async {
            let listed = pods
                .list_metadata(&ListParams::default().labels(selector))
                .await?;
            Ok::<_, kube::Error>(listed.items.first().map(|p| p.name_any()))
        },
    )
    .await?;
    let cost =
        json!({"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "0"}}});
    pods.patch_metadata(&pod, &PatchParams::default(), &Patch::Merge(&cost))
        .await?;

    // A PymService whose JWT Secret is missing: Degraded + a Warning Event
    // (events.k8s.io create) from pym-operator.
    let broken = json!({
        "apiVersion": "pym.dev/v1alpha1", "kind": "PymService",
        "metadata": {"name": "broken"},
        "spec": {"image": "pym/hello:dev", "jwtSecretRef": {"name": "absent", "key": "secret"}}
    });
    cluster
        .kubectl()
        .args(["apply", "-n", ns, "-f", "-"])
        .stdin(broken.to_string())
        .run()
        .await?;
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    wait::until("a Warning Event for broken", wait::TIMEOUT, || async {
        assert_nothing_forbidden(op);
        let list = events.list(&ListParams::default()).await?;
        let found = list.items.iter().any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                && e.type_.as_deref() == Some("Warning")
                && e.reporting_controller.as_deref() == Some("pym-operator")
        });
        Ok::<_, kube::Error>(found.then_some(()))
    })
    .await?;

    // Managed Redis and workers off: the operator deletes their objects.
    pym.patch(
        "hello",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"withAsync": false, "workers": null, "redis": null}})),
    )
    .await?;
    wait::until(
        "hello's Redis and workers deleted",
        wait::TIMEOUT,
        || async {
            let gone = deps.get_opt("hello-worker").await?.is_none()
                && deps.get_opt("hello-redis").await?.is_none()
                && svcs.get_opt("hello-redis").await?.is_none()
                && nps.get_opt("hello-redis").await?.is_none();
            Ok::<_, kube::Error>(gone.then_some(()))
        },
    )
    .await?;
    // The Redis Secret stays (no delete on Secrets): it goes with the PymService.
    let kept = secrets.get("hello-redis").await?;
    let owner = kept.metadata.owner_references.unwrap_or_default();
    assert!(
        owner
            .iter()
            .any(|o| o.kind == "PymService" && o.name == "hello"),
        "{owner:?}"
    );
    wait_ready_as_sa(op, &pym, "hello").await?;
    assert_nothing_forbidden(op);
    Ok(())
}

/// The operator run as the chart's ServiceAccount (see [`start_as_chart`])
/// reconciles hello in `ns` end to end and stops; then what the chart does
/// not grant is refused to that ServiceAccount. Returns its client.
async fn operate_as_the_chart(cluster: &Cluster, dep: &Deployment, ns: &str) -> Result<Client> {
    let release_ns = dep.namespace().unwrap();
    let mut op = start_as_chart(cluster, dep, &release_ns)?;
    wait_ready_and_leading(&op, dep).await?;
    let sa = cluster.as_service_account(&release_ns, FULLNAME).await?;
    reconcile_hello_end_to_end(cluster, &op, dep, &sa, ns).await?;
    op.stop();
    assert_refused(&sa, ns).await?;
    assert_lease_rules(&sa, &release_ns).await?;
    Ok(sa)
}

/// The managed Redis NetworkPolicy admits, on 6379 only, the service's own
/// pods and the chart's operator pods: their namespace (the release's, from
/// POD_NAMESPACE) and the Deployment's selector labels (--operator-pod-labels),
/// where the in-cluster autoscaler reads queue statistics from.
fn assert_redis_admits_the_operator(np: &NetworkPolicy, dep: &Deployment) {
    let spec = np.spec.as_ref().expect("NetworkPolicy spec");
    let rules = spec.ingress.as_ref().expect("ingress rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let ports: Vec<_> = rules[0]
        .ports
        .iter()
        .flatten()
        .map(|p| (p.port.clone(), p.end_port))
        .collect();
    assert_eq!(
        ports,
        vec![(Some(IntOrString::Int(6379)), None)],
        "the Redis port only"
    );
    let from = rules[0].from.as_ref().expect("from");
    assert_eq!(from.len(), 2, "own pods and the operator's: {from:?}");
    let selector = dep.spec.as_ref().unwrap().selector.match_labels.clone();
    assert!(selector.as_ref().is_some_and(|s| !s.is_empty()));
    let release_ns = dep.namespace().unwrap();
    let operator = &from[1];
    assert_eq!(
        operator
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(
            [(
                "kubernetes.io/metadata.name".to_string(),
                release_ns.clone()
            )]
            .into()
        ),
        "{operator:?}"
    );
    let pods = operator.pod_selector.as_ref().expect("podSelector");
    assert_eq!(pods.match_labels, selector, "{operator:?}");
    assert_eq!(pods.match_expressions, None, "{operator:?}");
    let own = from[0].pod_selector.as_ref().expect("own podSelector");
    assert!(
        from[0].namespace_selector.is_none(),
        "own pods: this namespace"
    );
    assert_eq!(
        own.match_labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/instance")),
        Some(&"hello".to_string())
    );
}

/// Waits until the PymService is Ready; fails at once (with the refused
/// requests) when the operator's log shows RBAC refusing something.
async fn wait_ready_as_sa(
    op: &Operator,
    pym: &Api<DynamicObject>,
    name: &str,
) -> Result<DynamicObject> {
    let deadline = Instant::now() + wait::TIMEOUT;
    loop {
        assert_nothing_forbidden(op);
        match wait_pym_ready(pym, name, Duration::from_secs(2)).await {
            Ok(o) => return Ok(o),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
    }
}

/// The first PymService that NOTES.txt tells the user to write is valid
/// (server-side dry run against the installed CRD), so the notes cannot rot.
async fn assert_notes_example_is_valid(
    cluster: &Cluster,
    release_ns: &str,
    ns: &str,
) -> Result<()> {
    let notes = cluster
        .helm()
        .args(["get", "notes", RELEASE, "--namespace", release_ns])
        .run()
        .await?;
    let start = notes
        .find("<<'YAML'")
        .ok_or_else(|| format!("no PymService example in NOTES.txt:\n{notes}"))?;
    let body = &notes[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body
        .find("\n     YAML")
        .ok_or("unterminated YAML example in NOTES.txt")?;
    let yaml: String = body[..end]
        .lines()
        .map(|l| l.strip_prefix("     ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("<registry>", "registry.example.com");
    assert!(yaml.contains("kind: PymService"), "{yaml}");
    dry_run_strict(cluster, ns, yaml)
        .await
        .map_err(|e| format!("the NOTES.txt example is not a valid PymService: {e}"))?;
    Ok(())
}

/// `kubectl apply --dry-run=server --validate=strict -n <ns> -f -`: the
/// apiserver validates `manifests` strictly and stores nothing.
async fn dry_run_strict(cluster: &Cluster, ns: &str, manifests: String) -> Result<String> {
    cluster
        .kubectl()
        .args(["apply", "--dry-run=server", "--validate=strict"])
        .args(["-n", ns, "-f", "-"])
        .stdin(manifests)
        .run()
        .await
}

/// What the chart does not grant is refused to its ServiceAccount in `ns`.
async fn assert_refused(sa: &Client, ns: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(sa.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "not-allowed"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))?;
    assert!(
        is_forbidden(&pods.create(&PostParams::default(), &pod).await),
        "create pods"
    );
    assert!(
        is_forbidden(&pods.delete("not-allowed", &DeleteParams::default()).await),
        "delete pods"
    );
    assert!(
        is_forbidden(&pods.get("not-allowed").await),
        "get pods (list + patch only, for the deletion cost)"
    );
    let pym = pym_api(sa, ns);
    assert!(
        is_forbidden(&pym.delete("hello", &DeleteParams::default()).await),
        "delete pymservices"
    );
    assert!(
        is_forbidden(
            &pym.patch(
                "hello",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}))
            )
            .await
        ),
        "patch pymservices (only the status)"
    );
    let cms: Api<ConfigMap> = Api::namespaced(sa.clone(), ns);
    // get is granted (children.rs confirms a child exists); update is not.
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("hello-config".into());
    assert!(
        is_forbidden(
            &cms.replace("hello-config", &PostParams::default(), &cm)
                .await
        ),
        "update configmaps"
    );
    assert!(
        is_forbidden(&cms.delete("hello-config", &DeleteParams::default()).await),
        "delete configmaps"
    );
    let deps: Api<Deployment> = Api::namespaced(sa.clone(), ns);
    let d = deps.get("hello-api").await?; // granted
    assert!(
        is_forbidden(&deps.replace("hello-api", &PostParams::default(), &d).await),
        "update (PUT) deployments"
    );
    // Secrets: get, create and patch only (no list, watch or delete).
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), ns);
    let all_secrets: Api<Secret> = Api::all(sa.clone());
    assert!(
        is_forbidden(&secrets.list(&ListParams::default()).await),
        "list secrets"
    );
    assert!(
        is_forbidden(&all_secrets.list(&ListParams::default()).await),
        "list all secrets"
    );
    assert!(
        is_forbidden(
            &secrets
                .delete("hello-redis", &DeleteParams::default())
                .await
        ),
        "delete secrets"
    );
    let watch = secrets.watch(&kube::api::WatchParams::default(), "0").await;
    assert!(
        matches!(&watch, Err(kube::Error::Api(s)) if s.code == 403),
        "watch secrets"
    );
    let roles: Api<Role> = Api::namespaced(sa.clone(), ns);
    assert!(
        is_forbidden(&roles.list(&ListParams::default()).await),
        "list roles"
    );
    let crbs: Api<ClusterRoleBinding> = Api::all(sa.clone());
    let crb: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("escalate-{ns}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "x"}]
    }))?;
    assert!(
        is_forbidden(&crbs.create(&PostParams::default(), &crb).await),
        "create clusterrolebindings"
    );
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(sa.clone());
    assert!(
        is_forbidden(&nodes.list(&ListParams::default()).await),
        "list nodes"
    );
    Ok(())
}

/// The Lease rules: only the release's own Lease can be read or renewed.
async fn assert_lease_rules(sa: &Client, release_ns: &str) -> Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(sa.clone(), release_ns);
    assert!(leases.get(FULLNAME).await.is_ok(), "get own Lease");
    assert!(
        is_forbidden(&leases.get("someone-else").await),
        "get another Lease"
    );
    assert!(
        is_forbidden(&leases.list(&ListParams::default()).await),
        "list leases"
    );
    assert!(
        is_forbidden(&leases.delete(FULLNAME, &DeleteParams::default()).await),
        "delete the Lease"
    );
    Ok(())
}

#[tokio::test]
async fn cluster_wide_install_reconciles_as_its_service_account_then_upgrades_and_uninstalls()
-> Result<()> {
    let _turn = SERIAL.lock().await;
    let cluster = Cluster::connect().await;
    let client = cluster.client();
    let release_ns = cluster.namespace("chart-system").await?;
    let rns = release_ns.name();
    let apps = cluster.namespace("chart-apps").await?;
    let ans = apps.name();

    // helm install pym charts/pym-operator (default values).
    helm_release(&cluster, "install", rns, &[]).await?;
    wait_crd_established(&cluster).await?;
    let sa_name = FULLNAME;
    Api::<ServiceAccount>::namespaced(client.clone(), rns)
        .get(sa_name)
        .await?;
    let cluster_name = format!("{rns}-{FULLNAME}");
    let cr = Api::<ClusterRole>::all(client.clone())
        .get(&cluster_name)
        .await?;
    assert!(!cr.rules.unwrap_or_default().is_empty());
    let crb = Api::<ClusterRoleBinding>::all(client.clone())
        .get(&cluster_name)
        .await?;
    let subject = &crb.subjects.unwrap()[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        (sa_name, Some(rns))
    );
    Api::<Role>::namespaced(client.clone(), rns)
        .get(&format!("{FULLNAME}-leader-election"))
        .await?;
    let dep = Api::<Deployment>::namespaced(client.clone(), rns)
        .get(FULLNAME)
        .await?;
    assert_eq!(dep.spec.as_ref().unwrap().replicas, Some(2));
    assert_hardened(&dep);
    Api::<Service>::namespaced(client.clone(), rns)
        .get(&format!("{FULLNAME}-metrics"))
        .await?;
    let (args, _) = container_of(&dep);
    assert!(
        !args.iter().any(|a| a.starts_with("--namespace")),
        "{args:?}"
    );
    assert_notes_example_is_valid(&cluster, rns, ans).await?;

    // The operator as the chart's ServiceAccount, cluster-wide.
    let sa = operate_as_the_chart(&cluster, &dep, ans).await?;
    // Cluster-wide: it lists PymServices everywhere (but not Pods).
    let all = Api::<DynamicObject>::all_with(sa.clone(), &pym_resource());
    all.list(&ListParams::default().limit(1)).await?;

    // helm test: the Job hook runs (kwok completes its pod).
    cluster
        .helm()
        .args(["test", RELEASE, "--namespace", rns, "--timeout", "120s"])
        .run()
        .await?;

    // helm upgrade with other values: namespace scope, 3 replicas, pretty logs.
    helm_release(
        &cluster,
        "upgrade",
        rns,
        &[
            "--set",
            "scope=namespace",
            "--set",
            &format!("watchNamespace={ans}"),
            "--set",
            "replicaCount=3",
            "--set",
            "logging.format=pretty",
        ],
    )
    .await?;
    let dep = Api::<Deployment>::namespaced(client.clone(), rns)
        .get(FULLNAME)
        .await?;
    assert_eq!(dep.spec.as_ref().unwrap().replicas, Some(3));
    let (args, _) = container_of(&dep);
    assert!(args.contains(&format!("--namespace={ans}")), "{args:?}");
    assert!(
        args.contains(&"--log-format=pretty".to_string()),
        "{args:?}"
    );
    wait::until(
        "ClusterRole removed by the upgrade",
        wait::TIMEOUT,
        || async {
            let gone = Api::<ClusterRole>::all(client.clone())
                .get_opt(&cluster_name)
                .await?
                .is_none()
                && Api::<ClusterRoleBinding>::all(client.clone())
                    .get_opt(&cluster_name)
                    .await?
                    .is_none();
            Ok::<_, kube::Error>(gone.then_some(()))
        },
    )
    .await?;
    Api::<Role>::namespaced(client.clone(), ans)
        .get(FULLNAME)
        .await?;
    Api::<RoleBinding>::namespaced(client.clone(), ans)
        .get(FULLNAME)
        .await?;
    // Now confined: no PymServices outside the watched namespace.
    assert!(is_forbidden(
        &all.list(&ListParams::default().limit(1)).await
    ));

    // helm uninstall: everything of the release goes, the CRD (and so the
    // PymServices) stays, as Helm does with crds/.
    helm_uninstall(&cluster, rns).await?;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), rns);
    wait::deleted(&deps, FULLNAME).await?;
    assert!(
        Api::<ServiceAccount>::namespaced(client.clone(), rns)
            .get_opt(sa_name)
            .await?
            .is_none()
    );
    assert!(
        Api::<Role>::namespaced(client.clone(), ans)
            .get_opt(FULLNAME)
            .await?
            .is_none()
    );
    cluster.kubectl().args(["get", "crd", CRD]).run().await?;
    assert!(
        pym_api(&client, ans).get_opt("hello").await?.is_some(),
        "PymService kept"
    );
    Ok(())
}

#[tokio::test]
async fn namespace_scoped_install_is_sufficient_and_confined() -> Result<()> {
    let _turn = SERIAL.lock().await;
    let cluster = Cluster::connect().await;
    let client = cluster.client();
    let release_ns = cluster.namespace("chart-ns-system").await?;
    let rns = release_ns.name();
    let apps = cluster.namespace("chart-ns-apps").await?;
    let ans = apps.name();
    let other = cluster.namespace("chart-ns-other").await?;

    helm_release(
        &cluster,
        "install",
        rns,
        &[
            "--set",
            "scope=namespace",
            "--set",
            &format!("watchNamespace={ans}"),
        ],
    )
    .await?;
    wait_crd_established(&cluster).await?;
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&format!("{rns}-{FULLNAME}"))
            .await?
            .is_none(),
        "no ClusterRole in namespace scope"
    );
    Api::<Role>::namespaced(client.clone(), ans)
        .get(FULLNAME)
        .await?;
    let dep = Api::<Deployment>::namespaced(client.clone(), rns)
        .get(FULLNAME)
        .await?;
    let (args, _) = container_of(&dep);
    assert!(args.contains(&format!("--namespace={ans}")), "{args:?}");

    let sa = operate_as_the_chart(&cluster, &dep, ans).await?;
    // Confined to the watched namespace: nothing elsewhere, not even reads.
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), other.name());
    assert!(
        is_forbidden(&secrets.list(&ListParams::default()).await),
        "secrets elsewhere"
    );
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), rns);
    assert!(
        is_forbidden(&secrets.list(&ListParams::default()).await),
        "secrets of the release namespace"
    );
    assert!(
        is_forbidden(
            &pym_api(&sa, other.name())
                .list(&ListParams::default())
                .await
        ),
        "PymServices elsewhere"
    );
    let all_deps: Api<Deployment> = Api::all(sa.clone());
    assert!(
        is_forbidden(&all_deps.list(&ListParams::default()).await),
        "Deployments cluster-wide"
    );

    helm_uninstall(&cluster, rns).await?;
    Ok(())
}

/// The operator binary parses the args of the rendered Deployment: clap
/// rejects an unknown flag or a bad value where it meets it, so with
/// `--help` last it exits 0 only if every flag before it is valid.
fn assert_operator_accepts_args(rendered: &str, values: &[String]) {
    let mut args = Vec::new();
    let mut lines = rendered.lines().skip_while(|l| l.trim() != "args:");
    lines.next();
    for l in lines {
        match l.trim().strip_prefix("- ") {
            Some(a) if a.starts_with("--") => args.push(a.trim_matches('"').to_string()),
            _ if l.trim().starts_with('#') => {}
            _ => break,
        }
    }
    assert!(
        !args.is_empty(),
        "no args in the rendered Deployment ({values:?})"
    );
    let out = Command::new(operator_binary())
        .args(&args)
        .arg("--help")
        .output()
        .expect("run pym-operator");
    assert!(
        out.status.success(),
        "pym-operator refuses the chart's args {args:?} ({values:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("pym-operator accepts {args:?}");
}

/// `helm template` with the default and every ci/*-values.yaml passes the
/// apiserver's strict validation (`kubectl apply --dry-run=server`): no
/// unknown or misplaced field in any rendering. The ServiceMonitor is left
/// out (the Prometheus Operator CRDs are not installed here).
#[tokio::test]
async fn rendered_manifests_pass_server_side_validation() -> Result<()> {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("chart-dry-run").await?;
    let n = ns.name();
    let ci = workspace_root().join("charts/pym-operator/ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ci)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    // (values args, whether the file selects scope=namespace)
    let mut variants: Vec<(Vec<String>, bool)> = vec![(vec![], false)];
    for f in files {
        let namespaced = std::fs::read_to_string(&f)?.contains("\nscope: namespace");
        variants.push((vec!["-f".into(), f.display().to_string()], namespaced));
    }
    let kube_version = pym_e2e::pinned_version("KUBERNETES_VERSION").unwrap();
    for (values, namespaced) in variants {
        let rendered = cluster
            .helm()
            .args(["template", RELEASE, &chart_dir(), "--namespace", n])
            .args(["--kube-version", kube_version.trim_start_matches('v')])
            .args(&values)
            // The ci values name a watch namespace that does not exist here.
            .args(["--set", "metrics.serviceMonitor.enabled=false"])
            .args(if namespaced {
                vec!["--set".to_string(), format!("watchNamespace={n}")]
            } else {
                vec![]
            })
            .run()
            .await
            .map_err(|e| format!("helm template {values:?}: {e}"))?;
        assert_operator_accepts_args(&rendered, &values);
        dry_run_strict(&cluster, n, rendered)
            .await
            .map_err(|e| format!("server-side validation of {values:?}: {e}"))?;
    }
    Ok(())
}

/// #14: the chart's opt-in ValidatingAdmissionPolicy
/// (`admissionPolicy.enabled`) refuses a PymService whose ServiceAccount or
/// tolerations are not allowlisted, and admits the rest. Bound to this
/// test's namespace only (`scope: namespace`), so parallel tests are not
/// affected.
#[tokio::test]
async fn admission_policy_limits_service_accounts_and_tolerations() -> Result<()> {
    let (cluster, ns) = pym_e2e::operator::prepare("chart-vap").await?;
    let n = ns.name();
    let kube_version = pym_e2e::pinned_version("KUBERNETES_VERSION").unwrap();
    let policy = cluster
        .helm()
        .args(["template", RELEASE, &chart_dir(), "--namespace", n])
        .args(["--kube-version", kube_version.trim_start_matches('v')])
        .args(["--show-only", "templates/admissionpolicy.yaml"])
        .args([
            "--set",
            "admissionPolicy.enabled=true",
            "--set",
            "scope=namespace",
        ])
        .args(["--set", &format!("watchNamespace={n}")])
        .args(["--set", "admissionPolicy.allowedServiceAccounts={hello-sa}"])
        .args(["--set", "admissionPolicy.allowedTolerationKeys={dedicated}"])
        .run()
        .await?;
    let apply = |verb: &'static str, manifests: String| {
        let cluster = &cluster;
        async move {
            cluster
                .kubectl()
                .args([verb, "-f", "-"])
                .stdin(manifests)
                .output()
                .await
        }
    };
    apply("apply", policy.clone()).await?;
    let pym = |name: &str, extra: serde_json::Value| {
        let mut spec = json!({"image": "pym/hello:dev"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"apiVersion": "pym.dev/v1alpha1", "kind": "PymService",
               "metadata": {"name": name, "namespace": n}, "spec": spec})
        .to_string()
    };
    // (name, extra spec, refused with)
    let cases = [
        (
            "other-sa",
            json!({"serviceAccountName": "root-ish"}),
            Some("spec.serviceAccountName: root-ish is not allowed"),
        ),
        (
            "any-taint",
            json!({"tolerations": [{"operator": "Exists"}]}),
            Some("every toleration needs a key"),
        ),
        (
            "gpu-taint",
            json!({"tolerations": [{"key": "gpu", "operator": "Exists"}]}),
            Some("only the keys dedicated"),
        ),
        (
            "allowed",
            json!({"serviceAccountName": "hello-sa", "tolerations": [{"key": "dedicated", "value": "pym", "effect": "NoSchedule"}]}),
            None,
        ),
        ("plain", json!({}), None),
    ];
    // The policy takes a moment to be enforced after it is created.
    wait::until("the policy is enforced", wait::TIMEOUT, || async {
        let out = apply("create", pym("probe", json!({"serviceAccountName": "x"}))).await?;
        if out.success() {
            apply("delete", pym("probe", json!({}))).await?;
        }
        Ok::<_, pym_e2e::Error>((!out.success()).then_some(()))
    })
    .await?;
    for (name, extra, refused) in cases {
        let out = apply("create", pym(name, extra)).await?;
        match refused {
            Some(msg) => assert!(
                !out.success() && out.stderr.contains(msg),
                "{name}: want refused with {msg:?}: {}",
                out.stderr
            ),
            None => assert!(out.success(), "{name}: {}", out.stderr),
        }
    }
    apply("delete", policy).await?;
    Ok(())
}
