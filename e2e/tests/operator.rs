//! Operator e2e: the pym-operator binary as a local process against the real
//! control plane (`e2e/cluster up`), kwok running the pods.
//!
//! Build the operator first: `cargo build -p pym-operator` (see
//! `pym_e2e::operator` for why), then `cargo test -p pym-e2e --test operator`.
//! Each test has its own namespace and its own operator process(es) scoped to
//! it (`--namespace`), so tests run in parallel.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use pym_e2e::objects::{
    first_container, secret_env_ref, secret_value, template_annotation, template_spec,
};
use pym_e2e::operator::{Launch, Operator, install_crd, prepare};
use pym_e2e::pymservice::{
    apply_hello, condition, create_pym, kubectl_get_pym, pym_api, wait_condition, wait_pym_ready,
};
use pym_e2e::{Cluster, Result, wait};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn invalid_specs_are_rejected_with_field_names() -> Result<()> {
    let (cluster, ns) = prepare("op-invalid").await?;
    let dir = pym_e2e::workspace_root().join("operator/tests/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "at least 10 invalid fixtures in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)?;
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: first line must be `# expect: <text>`", f.display()))
            .to_string();
        let out = cluster
            .kubectl()
            .args(["apply", "-n", ns.name(), "-f"])
            .arg(f)
            .output()
            .await?;
        if out.success() {
            failures.push(format!("{}: accepted", f.display()));
        } else if !out.stderr.contains(&expect) {
            failures.push(format!(
                "{}: rejected, but without {expect:?}: {}",
                f.display(),
                out.stderr.trim()
            ));
        } else {
            eprintln!(
                "ok {}: {}",
                f.file_name().unwrap().to_string_lossy(),
                out.stderr.trim()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn kubectl_explain_documents_the_fields() -> Result<()> {
    let cluster = Cluster::connect().await;
    install_crd(&cluster).await?;
    let out = cluster
        .kubectl()
        .args(["explain", "pymservice.spec.workers"])
        .run()
        .await?;
    for field in [
        "minReplicas",
        "maxReplicas",
        "concurrency",
        "queues",
        "autoscaling",
    ] {
        assert!(out.contains(field), "explain lists {field}: {out}");
    }
    assert!(out.contains("Tasks in flight per worker pod"), "{out}");
    let out = cluster
        .kubectl()
        .args(["explain", "pymservice.spec.workers.autoscaling"])
        .run()
        .await?;
    for field in [
        "targetPerWorker",
        "activationThreshold",
        "scaleDownWindowSeconds",
        "pollIntervalSeconds",
        "targetLatencySeconds",
    ] {
        assert!(out.contains(field), "explain lists {field}: {out}");
    }
    Ok(())
}

#[tokio::test]
async fn hello_lifecycle() -> Result<()> {
    let (cluster, ns) = prepare("op-hello").await?;
    let client = cluster.client();
    let n = ns.name();
    let op = Launch::scoped(&cluster, n, &format!("hello-{n}")).start()?;
    op.wait_ready().await?;
    op.wait_leader(Duration::from_secs(30)).await?;

    // Apply → children within ~1 s.
    let applied = Instant::now();
    apply_hello(&cluster, n).await?;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), n);
    let svcs: Api<Service> = Api::namespaced(client.clone(), n);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), n);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), n);
    let created = wait::until("children of hello", Duration::from_secs(30), || async {
        let all = [
            deps.get_opt("hello-api").await?.is_some(),
            deps.get_opt("hello-worker").await?.is_some(),
            deps.get_opt("hello-redis").await?.is_some(),
            svcs.get_opt("hello").await?.is_some(),
            svcs.get_opt("hello-redis").await?.is_some(),
            cms.get_opt("hello-config").await?.is_some(),
            secrets.get_opt("hello-redis").await?.is_some(),
            nps.get_opt("hello-redis").await?.is_some(),
        ];
        Ok::<_, kube::Error>(all.iter().all(|x| *x).then(Instant::now))
    })
    .await?;
    let children_after = created - applied;
    eprintln!("children created {children_after:?} after kubectl apply");
    assert!(
        children_after < Duration::from_secs(5),
        "children took {children_after:?}"
    );

    let pym = pym_api(&client, n);
    let ready = wait_pym_ready(&pym, "hello", wait::TIMEOUT).await?;
    eprintln!("Ready {:?} after kubectl apply", applied.elapsed());
    let st = &ready.data["status"];
    assert_eq!(st["api"]["summary"], "2/2", "{st}");
    assert_eq!(st["workers"]["summary"], "1/1", "{st}");
    assert_eq!(
        st["redisEndpoint"],
        format!("hello-redis.{n}.svc:6379"),
        "{st}"
    );
    wait::pods_running(
        &client,
        n,
        "app.kubernetes.io/instance=hello,app.kubernetes.io/component=api",
        2,
    )
    .await?;

    // kubectl get pym shows the columns.
    let table = kubectl_get_pym(
        &cluster,
        n,
        &["NAME", "READY", "API", "WORKERS", "QUEUE", "AGE"],
    )
    .await?;
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("True") && row.contains("2/2") && row.contains("1/1"),
        "{row}"
    );

    // The managed Redis is password-protected and the pods get its URL from the Secret.
    let rs = secrets.get("hello-redis").await?;
    let pw = secret_value(&rs, "password").ok_or("key password in Secret hello-redis")?;
    assert!(pw.len() >= 32);
    let api_dep = deps.get("hello-api").await?;
    let c = first_container(&api_dep);
    assert_eq!(c.args.as_deref(), Some(&["serve".to_string()][..]));
    assert_eq!(
        secret_env_ref(template_spec(&api_dep), "PYM_REDIS_URL").map(|(name, _)| name),
        Some("hello-redis".to_string())
    );

    // Edit config → pod template hash changes → rollout.
    let hash0 = template_annotation(&api_dep, "pym.dev/config-hash").unwrap();
    pym.patch(
        "hello",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"config": {"name": "hello", "jwt_issuer": "https://other.example", "jwt_audience": "hello"}}})),
    )
    .await?;
    let rolled = wait::deployment(&client, n, "hello-api", "new config hash", |d| {
        template_annotation(d, "pym.dev/config-hash").is_some_and(|h| h != hash0)
    })
    .await?;
    let cm = cms.get("hello-config").await?;
    assert!(cm.data.unwrap()["pym-config.yaml"].contains("other.example"));
    assert!(template_annotation(&rolled, "pym.dev/config-hash").is_some());
    wait_pym_ready(&pym, "hello", wait::TIMEOUT).await?;

    // Drift: delete a child → restored; edit a child → reverted.
    let uid0 = svcs.get("hello").await?.metadata.uid;
    svcs.delete("hello", &DeleteParams::default()).await?;
    wait::until("Service hello restored", wait::TIMEOUT, || async {
        let s = svcs.get_opt("hello").await?;
        Ok::<_, kube::Error>(s.filter(|s| s.metadata.uid != uid0).map(|_| ()))
    })
    .await?;
    deps.patch(
        "hello-api",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await?;
    wait::deployment(&client, n, "hello-api", "replicas back to 2", |d| {
        d.spec.as_ref().and_then(|s| s.replicas) == Some(2)
    })
    .await?;

    // withAsync off → worker Deployment removed.
    pym.patch(
        "hello",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"withAsync": false, "workers": null}})),
    )
    .await?;
    wait::deleted(&deps, "hello-worker").await?;
    let ready = wait_pym_ready(&pym, "hello", wait::TIMEOUT).await?;
    assert!(
        ready.data["status"].get("workers").is_none(),
        "{}",
        ready.data["status"]
    );

    // Delete → everything garbage-collected through owner references.
    pym.delete("hello", &DeleteParams::foreground()).await?;
    for d in ["hello-api", "hello-redis"] {
        wait::deleted(&deps, d).await?;
    }
    wait::deleted(&svcs, "hello").await?;
    wait::deleted(&svcs, "hello-redis").await?;
    wait::deleted(&cms, "hello-config").await?;
    wait::deleted(&secrets, "hello-redis").await?;
    wait::deleted(&nps, "hello-redis").await?;
    wait::no_pods(&client, n, "app.kubernetes.io/instance=hello").await?;
    assert!(
        secrets.get_opt("hello-jwt").await?.is_some(),
        "user Secret kept"
    );

    let m = op.get("/metrics").await?.1;
    assert!(m.contains("pym_operator_reconcile_total"), "{m}");
    assert!(
        !op.logs().contains(&pw),
        "the Redis password never appears in logs"
    );
    Ok(())
}

/// The task secret the operator generates for a `withAsync` PymService
/// without `taskSecretRef` (`<name>-pym-task`, key `secret`): owned by the
/// PymService, wired into API and worker pods as `PYM_TASK_SECRET`, never
/// regenerated (not by a reconcile that rolls the pods, not by a new operator
/// process: queued tasks signed with it must still verify), and
/// garbage-collected with the PymService.
#[tokio::test]
async fn generated_task_secret_is_owned_kept_and_collected() -> Result<()> {
    const TASK_SECRET: &str = "hello-pym-task";
    const CONFIG_HASH: &str = "pym.dev/config-hash";
    const SECRETS_HASH: &str = "pym.dev/secrets-hash";
    let (cluster, ns) = prepare("op-task").await?;
    let client = cluster.client();
    let n = ns.name();
    let mut op = Launch::scoped(&cluster, n, &format!("task-a-{n}")).start()?;
    op.wait_leader(Duration::from_secs(30)).await?;
    apply_hello(&cluster, n).await?;
    let pym = pym_api(&client, n);
    let ready = wait_pym_ready(&pym, "hello", wait::TIMEOUT).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), n);
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);

    // Owned by the PymService (controller, blockOwnerDeletion), one key.
    let secret = secrets.get(TASK_SECRET).await?;
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    let o = &owners[0];
    assert_eq!(
        (o.api_version.as_str(), o.kind.as_str(), o.name.as_str()),
        ("pym.dev/v1alpha1", "PymService", "hello"),
        "{o:?}"
    );
    assert_eq!(Some(&o.uid), ready.metadata.uid.as_ref(), "{o:?}");
    assert_eq!(o.controller, Some(true), "{o:?}");
    assert_eq!(o.block_owner_deletion, Some(true), "{o:?}");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let value_of = |s: &Secret| -> String {
        let data = s.data.clone().unwrap_or_default();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            vec!["secret"],
            "the task Secret has one key"
        );
        String::from_utf8(data["secret"].0.clone()).expect("UTF-8 task secret")
    };
    let value = value_of(&secret);
    assert!(
        value.len() >= 32 && value.chars().all(|c| c.is_ascii_alphanumeric()),
        "a generated secret, {} characters",
        value.len()
    );
    let uid = secret.metadata.uid.clone();
    let want_ref = Some((TASK_SECRET.to_string(), "secret".to_string()));

    // API and worker pod templates, and the pods made from them, read it.
    let api_dep = deps.get("hello-api").await?;
    let worker_dep = deps.get("hello-worker").await?;
    for d in [&api_dep, &worker_dep] {
        assert_eq!(
            secret_env_ref(template_spec(d), "PYM_TASK_SECRET"),
            want_ref,
            "{:?}",
            d.metadata.name
        );
    }
    let secrets_hash0 = template_annotation(&api_dep, SECRETS_HASH).unwrap();
    let task_secret_of_pods = |component: &'static str, hash: String, count: usize| {
        let pods = pods.clone();
        let want_ref = want_ref.clone();
        async move {
            let sel =
                format!("app.kubernetes.io/instance=hello,app.kubernetes.io/component={component}");
            let lp = ListParams::default().labels(&sel);
            wait::until(
                format!("{count} {component} pod(s) with config hash {hash}"),
                wait::TIMEOUT,
                || async {
                    let list = pods.list(&lp).await.map_err(|e| e.to_string())?.items;
                    let live: Vec<&Pod> = list
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .collect();
                    let rolled = live.len() == count
                        && live.iter().all(|p| {
                            p.metadata
                                .annotations
                                .as_ref()
                                .and_then(|a| a.get(CONFIG_HASH))
                                == Some(&hash)
                        });
                    if !rolled {
                        return Err(format!("{} live pod(s)", live.len()));
                    }
                    for p in live {
                        let got = secret_env_ref(p.spec.as_ref().unwrap(), "PYM_TASK_SECRET");
                        assert_eq!(got, want_ref, "pod {:?}", p.metadata.name);
                    }
                    Ok(Some(()))
                },
            )
            .await
        }
    };
    let hash0 = template_annotation(&api_dep, CONFIG_HASH).unwrap();
    task_secret_of_pods("api", hash0.clone(), 2).await?;
    task_secret_of_pods(
        "worker",
        template_annotation(&worker_dep, CONFIG_HASH).unwrap(),
        1,
    )
    .await?;

    // A config edit rolls API and worker pods: the secret stays, and so does
    // the pods' secrets hash (a new value would roll them a second time).
    pym.patch(
        "hello",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"config": {"name": "hello", "jwt_issuer": "https://rolled.example", "jwt_audience": "hello"}}})),
    )
    .await?;
    let mut rolled = Vec::new();
    for d in ["hello-api", "hello-worker"] {
        let dep = wait::deployment(&client, n, d, "new config hash", |d| {
            template_annotation(d, CONFIG_HASH).is_some_and(|h| h != hash0)
        })
        .await?;
        assert_eq!(
            template_annotation(&dep, SECRETS_HASH).as_ref(),
            Some(&secrets_hash0),
            "{d}: same secrets hash after the config edit"
        );
        assert_eq!(
            secret_env_ref(template_spec(&dep), "PYM_TASK_SECRET"),
            want_ref
        );
        rolled.push(template_annotation(&dep, CONFIG_HASH).unwrap());
    }
    wait_pym_ready(&pym, "hello", wait::TIMEOUT).await?;
    task_secret_of_pods("api", rolled[0].clone(), 2).await?;
    task_secret_of_pods("worker", rolled[1].clone(), 1).await?;
    let after_roll = secrets.get(TASK_SECRET).await?;
    assert_eq!(after_roll.metadata.uid, uid, "the same Secret object");
    assert!(
        value_of(&after_roll) == value,
        "the value survives a rollout"
    );

    // A new operator process (nothing cached) reconciles a new generation:
    // it reads the Secret back instead of generating another one.
    assert_eq!(op.terminate(), Some(0), "SIGTERM exits 0");
    drop(op);
    let op = Launch::scoped(&cluster, n, &format!("task-b-{n}")).start()?;
    op.wait_leader(Duration::from_secs(30)).await?;
    api_replicas_converge_through(&pym, &op, 3).await?;
    let after_restart = secrets.get(TASK_SECRET).await?;
    assert_eq!(after_restart.metadata.uid, uid, "the same Secret object");
    assert!(
        value_of(&after_restart) == value,
        "the value survives an operator restart"
    );
    for d in ["hello-api", "hello-worker"] {
        let dep = deps.get(d).await?;
        assert_eq!(
            template_annotation(&dep, SECRETS_HASH).as_ref(),
            Some(&secrets_hash0),
            "{d}: same secrets hash after the restart"
        );
    }
    assert!(
        !op.logs().contains("generating the task secret"),
        "the new process did not generate a task secret:\n{}",
        op.logs()
    );

    // kubectl delete pym (background propagation): kube-controller-manager's
    // garbage collector removes the Secret through its owner reference.
    let deleted = Instant::now();
    cluster
        .kubectl()
        .args(["delete", "pym", "hello", "-n", n, "--wait=false"])
        .run()
        .await?;
    wait::deleted(&secrets, TASK_SECRET).await?;
    eprintln!(
        "task Secret collected {:?} after kubectl delete pym",
        deleted.elapsed()
    );
    for d in ["hello-api", "hello-worker"] {
        wait::deleted(&deps, d).await?;
    }
    assert!(
        secrets.get_opt("hello-jwt").await?.is_some(),
        "the user's Secret is kept"
    );
    assert!(
        !op.logs().contains(&value),
        "the task secret never appears in logs"
    );
    Ok(())
}

/// An edit of a Secret a PymService references rolls its pods: at once with
/// `--watch-secrets=true` (a Secret watch), within `--secret-poll-seconds`
/// without one (the chart's default: the operator has no list/watch on
/// Secrets).
#[tokio::test]
async fn a_referenced_secret_edit_rolls_the_pods_with_or_without_a_watch() -> Result<()> {
    for (tag, flag) in [
        ("watch", "--watch-secrets=true"),
        ("poll", "--secret-poll-seconds=5"),
    ] {
        let (cluster, ns) = prepare(&format!("op-secret-{tag}")).await?;
        let client = cluster.client();
        let n = ns.name();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
        let jwt: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "edit-jwt"},
            "stringData": {"secret": "first-secret-of-32-bytes-or-more!"}
        }))?;
        secrets.create(&PostParams::default(), &jwt).await?;
        let launch = Launch::scoped(&cluster, n, &format!("{tag}-{n}")).arg(flag);
        let op = launch.start_leading().await?;
        let pym = pym_api(&client, n);
        let spec = json!({"image": "pym/hello:dev", "jwtSecretRef": {"name": "edit-jwt", "key": "secret"}});
        create_pym(&pym, "edit", spec).await?;
        wait_pym_ready(&pym, "edit", wait::TIMEOUT).await?;
        let deps: Api<Deployment> = Api::namespaced(client.clone(), n);
        let hash = |d: &Deployment| template_annotation(d, "pym.dev/secrets-hash");
        let before = hash(&deps.get("edit-api").await?);
        assert!(before.is_some(), "{tag}: the pods carry the Secrets' hash");
        let edit = json!({"stringData": {"secret": "second-secret-of-32-bytes-or-more"}});
        secrets
            .patch("edit-jwt", &PatchParams::default(), &Patch::Merge(&edit))
            .await?;
        let started = Instant::now();
        wait::deployment(&client, n, "edit-api", "a new secrets hash", |d| {
            hash(d) != before
        })
        .await?;
        eprintln!(
            "{tag}: the edit rolled the pods after {:?}",
            started.elapsed()
        );
        drop(op);
    }
    Ok(())
}

/// #14: a PymService never takes over an object it did not create. A
/// user's Service with the PymService's name stays as it was (selector,
/// no owner), the PymService is Degraded/NameConflict with an Event naming
/// the Service, nothing else is created, and deleting the PymService
/// leaves the Service alone.
#[tokio::test]
async fn a_foreign_object_with_a_child_name_is_left_alone() -> Result<()> {
    let (cluster, ns) = prepare("op-conflict").await?;
    let client = cluster.client();
    let n = ns.name();
    let services: Api<Service> = Api::namespaced(client.clone(), n);
    let theirs: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "payments"},
        "spec": {"selector": {"app": "payments-v1"}, "ports": [{"port": 80}]}
    }))?;
    let before = services.create(&PostParams::default(), &theirs).await?;
    let op = Launch::scoped(&cluster, n, &format!("conflict-{n}"))
        .start_leading()
        .await?;
    let pym = pym_api(&client, n);
    create_pym(&pym, "payments", json!({"image": "pym/hello:dev"})).await?;
    let o = wait_condition(&pym, "payments", "Degraded", "True", "NameConflict").await?;
    let (_, _, msg) = condition(&o, "Degraded").unwrap();
    assert!(msg.contains(&format!("Service {n}/payments")), "{msg}");
    let events = cluster.event_messages(n, "NameConflict").await?;
    assert!(
        events.contains("Service"),
        "an Event names the object: {events:?}"
    );

    let after = services.get("payments").await?;
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(after.metadata.owner_references, None);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), n);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), n);
    assert!(
        deps.get_opt("payments-api").await?.is_none(),
        "nothing applied"
    );
    assert!(
        cms.get_opt("payments-config").await?.is_none(),
        "nothing applied"
    );

    pym.delete("payments", &DeleteParams::default()).await?;
    wait::until("the PymService is gone", wait::TIMEOUT, || async {
        Ok::<_, kube::Error>(pym.get_opt("payments").await?.is_none().then_some(()))
    })
    .await?;
    let kept = services.get("payments").await?;
    assert_eq!(
        kept.metadata.resource_version,
        before.metadata.resource_version
    );
    drop(op);
    Ok(())
}

#[tokio::test]
async fn missing_secret_is_degraded_then_recovers() -> Result<()> {
    let (cluster, ns) = prepare("op-secret").await?;
    let client = cluster.client();
    let n = ns.name();
    let op = Launch::scoped(&cluster, n, &format!("secret-{n}"))
        .start_leading()
        .await?;
    let pym = pym_api(&client, n);
    let spec = json!({
        "image": "pym/hello:dev",
        "jwtSecretRef": {"name": "ext-jwt", "key": "secret"},
        "withAsync": true,
        "redis": {"external": {"urlSecretRef": {"name": "ext-redis-url", "key": "url"}}}
    });
    create_pym(&pym, "ext", spec).await?;
    let o = wait_condition(&pym, "ext", "Degraded", "True", "SecretNotFound").await?;
    let (_, _, msg) = condition(&o, "Degraded").unwrap();
    assert!(
        msg.contains("spec.jwtSecretRef") && msg.contains("ext-jwt"),
        "{msg}"
    );
    let events = cluster.event_messages(n, "SecretNotFound").await?;
    assert!(!events.trim().is_empty(), "a Warning event is published");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let mk = |name: &str, key: &str, val: &str| -> Secret {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {key: val}
        }))
        .unwrap()
    };
    secrets
        .create(&PostParams::default(), &mk("ext-jwt", "secret", "s3cret"))
        .await?;
    // Still degraded: now the Redis URL Secret is missing (the Secret watch re-triggers).
    let o = wait_condition(&pym, "ext", "Degraded", "True", "SecretNotFound").await?;
    let (_, _, msg) = condition(&o, "Degraded").unwrap();
    wait::until("Degraded names the Redis Secret", wait::TIMEOUT, || async {
        let o = pym.get("ext").await?;
        let m = condition(&o, "Degraded").map(|c| c.2).unwrap_or_default();
        Ok::<_, kube::Error>(m.contains("urlSecretRef").then_some(()))
    })
    .await
    .map_err(|e| format!("{e}; last message {msg}"))?;
    secrets
        .create(
            &PostParams::default(),
            &mk("ext-redis-url", "url", "redis://:pw@redis.example:6380/0"),
        )
        .await?;
    let ready = wait_pym_ready(&pym, "ext", wait::TIMEOUT).await?;
    assert_eq!(ready.data["status"]["redisEndpoint"], "redis.example:6380");
    assert_eq!(condition(&ready, "Degraded").unwrap().0, "False");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), n);
    assert!(
        deps.get_opt("ext-redis").await?.is_none(),
        "no managed Redis for external"
    );

    // Switch to managed Redis: the pods are rewired to the generated Secret.
    pym.patch(
        "ext",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"redis": {"external": null, "managed": {}}}})),
    )
    .await?;
    wait::deployment(
        &client,
        n,
        "ext-api",
        "Redis URL from the managed Secret",
        |d| {
            d.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|p| {
                    p.containers[0].env.iter().flatten().any(|e| {
                        e.name == "PYM_REDIS_URL"
                            && e.value_from
                                .as_ref()
                                .and_then(|v| v.secret_key_ref.as_ref())
                                .is_some_and(|s| s.name == "ext-redis" && s.key == "url")
                    })
                })
        },
    )
    .await?;
    let ready = wait_pym_ready(&pym, "ext", wait::TIMEOUT).await?;
    assert_eq!(
        ready.data["status"]["redisEndpoint"],
        format!("ext-redis.{n}.svc:6379")
    );
    assert!(
        deps.get_opt("ext-redis").await?.is_some(),
        "managed Redis Deployment"
    );
    assert!(
        secrets.get_opt("ext-redis-url").await?.is_some(),
        "user Secret untouched"
    );
    drop(op);
    Ok(())
}

#[tokio::test]
async fn only_the_leader_reconciles_and_failover_converges() -> Result<()> {
    let (cluster, ns) = prepare("op-leader").await?;
    let client = cluster.client();
    let n = ns.name();
    let mut a = Launch::scoped(&cluster, n, "op-a").start()?;
    a.wait_leader(Duration::from_secs(30)).await?;
    let b = Launch::scoped(&cluster, n, "op-b").start()?;
    b.wait_ready().await?;

    apply_hello(&cluster, n).await?;
    let pym = pym_api(&client, n);
    wait_pym_ready(&pym, "hello", wait::TIMEOUT).await?;
    assert!(
        a.metric("pym_operator_reconcile_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        b.metric("pym_operator_leader").await,
        Some(0.0),
        "b stands by"
    );
    assert_eq!(
        b.metric("pym_operator_reconcile_total").await,
        Some(0.0),
        "the standby never reconciles"
    );

    // kill -9 the leader: b takes the Lease once it expires (4 s) and converges.
    a.kill9();
    let killed = Instant::now();
    b.wait_leader(Duration::from_secs(30)).await?;
    eprintln!("failover after {:?}", killed.elapsed());
    api_replicas_converge_through(&pym, &b, 3).await?;
    Ok(())
}

/// Sets `spec.api.replicas` of hello and waits until it is Ready with that
/// many API pods, reconciled by `op` (its reconcile counter moved).
async fn api_replicas_converge_through(
    pym: &Api<kube::api::DynamicObject>,
    op: &Operator,
    replicas: i32,
) -> Result<()> {
    pym.patch(
        "hello",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"api": {"replicas": replicas}}})),
    )
    .await?;
    let ready = wait_pym_ready(pym, "hello", wait::TIMEOUT).await?;
    assert_eq!(
        ready.data["status"]["api"]["summary"],
        format!("{replicas}/{replicas}")
    );
    assert!(
        op.metric("pym_operator_reconcile_total")
            .await
            .unwrap_or(0.0)
            >= 1.0,
        "{} reconciled",
        op.identity
    );
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_releases_the_lease() -> Result<()> {
    let (cluster, ns) = prepare("op-term").await?;
    let n = ns.name();
    let mut a = Launch::scoped(&cluster, n, "term-a").start()?;
    a.wait_leader(Duration::from_secs(30)).await?;
    let b = Launch::scoped(&cluster, n, "term-b").start()?;
    b.wait_ready().await?;
    let stopped = Instant::now();
    assert_eq!(a.terminate(), Some(0), "SIGTERM exits 0");
    // Released, not expired: b leads well before the 4 s lease duration would pass twice.
    b.wait_leader(Duration::from_secs(6)).await?;
    eprintln!("takeover after SIGTERM: {:?}", stopped.elapsed());
    Ok(())
}
