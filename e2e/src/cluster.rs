//! Connecting to the e2e cluster, acting as other identities, and per-test namespaces.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::tools::Tool;
use crate::{Result, run_dir, wait};

/// What a test prints when there is no cluster to talk to.
pub const NOT_UP: &str = "the e2e cluster is not up: run `e2e/cluster up` first \
     (it prints `export KUBECONFIG=...`), then `cargo test -p pym-e2e`";

/// A connection to the e2e cluster as its admin (group `system:masters`).
///
/// Create one per test: a [`kube::Client`] belongs to the tokio runtime it was
/// created on, and every `#[tokio::test]` has its own.
pub struct Cluster {
    kubeconfig_path: PathBuf,
    kubeconfig: Kubeconfig,
    client: Client,
}

impl Cluster {
    /// Connects, or panics with a message that says to run `e2e/cluster up`.
    /// Tests must fail, not silently pass, when there is no cluster.
    pub async fn connect() -> Cluster {
        match Self::try_connect().await {
            Ok(cluster) => cluster,
            Err(e) => panic!("{NOT_UP}\n  cause: {e}"),
        }
    }

    /// Connects and checks that the apiserver answers.
    pub async fn try_connect() -> Result<Cluster> {
        let kubeconfig_path = kubeconfig_path().ok_or_else(|| {
            format!(
                "no kubeconfig: {} does not exist and KUBECONFIG is not set",
                run_dir().join("kubeconfig").display()
            )
        })?;
        let kubeconfig = Kubeconfig::read_from(&kubeconfig_path)
            .map_err(|e| format!("reading {}: {e}", kubeconfig_path.display()))?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default())
                .await?;
        let url = config.cluster_url.clone();
        let client = Client::try_from(config)?;
        match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(
                    format!("apiserver {url} from {}: {e}", kubeconfig_path.display()).into(),
                );
            }
            Err(_) => return Err(format!("apiserver {url} did not answer within 10s").into()),
        }
        Ok(Cluster {
            kubeconfig_path,
            kubeconfig,
            client,
        })
    }

    /// The admin client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The kubeconfig in use (admin credentials).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// A client that acts as `user` (and `groups`) through impersonation, so
    /// RBAC is really evaluated for that identity. The admin may impersonate anyone.
    pub async fn impersonate(&self, user: &str, groups: &[&str]) -> Result<Client> {
        let mut config =
            Config::from_custom_kubeconfig(self.kubeconfig.clone(), &KubeConfigOptions::default())
                .await?;
        config.auth_info.impersonate = Some(user.to_string());
        if !groups.is_empty() {
            config.auth_info.impersonate_groups =
                Some(groups.iter().map(|g| g.to_string()).collect());
        }
        Ok(Client::try_from(config)?)
    }

    /// A client acting as ServiceAccount `namespace/name`. The apiserver adds
    /// the ServiceAccount groups (`system:serviceaccounts`, `system:serviceaccounts:<ns>`).
    pub async fn as_service_account(&self, namespace: &str, name: &str) -> Result<Client> {
        self.impersonate(&service_account_user(namespace, name), &[])
            .await
    }

    /// Writes a kubeconfig that authenticates as ServiceAccount `namespace/name`
    /// with a real bound token (TokenRequest API, signed with the cluster's
    /// ServiceAccount key), valid for `duration`. Unlike impersonation, this is
    /// exactly what an in-cluster process would use: start the operator (or any
    /// process) with `KUBECONFIG=<this file>` to test its RBAC for real.
    /// The file goes to `<run dir>/kubeconfigs/<namespace>.<name>.yaml` (mode 0600).
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        duration: Duration,
    ) -> Result<PathBuf> {
        let token = self
            .kubectl()
            .args(["create", "token", name, "-n", namespace])
            .arg(format!("--duration={}s", duration.as_secs()))
            .run()
            .await?;
        let context = self
            .kubeconfig
            .current_context
            .as_deref()
            .and_then(|c| self.kubeconfig.contexts.iter().find(|n| n.name == c))
            .and_then(|n| n.context.as_ref())
            .ok_or("admin kubeconfig has no current context")?;
        let cluster = self
            .kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .ok_or("admin kubeconfig has no cluster for its context")?;
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\n\
             contexts:\n- name: e2e\n  context: {{cluster: e2e, user: {user}, namespace: {namespace}}}\n\
             current-context: e2e\n",
            server = cluster.server.as_deref().unwrap_or_default(),
            ca = cluster
                .certificate_authority_data
                .as_deref()
                .unwrap_or_default(),
            user = service_account_user(namespace, name),
            token = token.trim(),
        );
        let dir = run_dir().join("kubeconfigs");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{namespace}.{name}.yaml"));
        write_private(&path, yaml.as_bytes())?;
        Ok(path)
    }

    /// `kubectl --kubeconfig <admin kubeconfig>`; add `--as=...` to act as someone else.
    pub fn kubectl(&self) -> Tool {
        kubectl_tool(&self.kubeconfig_path)
    }

    /// The messages of the Events in `ns` with this `reason`, one a line
    /// (an events.k8s.io `note` or a core `message`).
    pub async fn event_messages(&self, ns: &str, reason: &str) -> Result<String> {
        self.kubectl()
            .args([
                "get",
                "events",
                "-n",
                ns,
                "--field-selector",
                &format!("reason={reason}"),
            ])
            .args([
                "-o",
                "jsonpath={range .items[*]}{.note}{.message}{\"\\n\"}{end}",
            ])
            .run()
            .await
    }

    /// `helm` with `KUBECONFIG` set and its config/cache/data dirs under the run dir.
    pub fn helm(&self) -> Tool {
        let home = run_dir().join("helm");
        Tool::new(tool_path("helm"))
            .env("KUBECONFIG", &self.kubeconfig_path)
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
    }

    /// Creates a fresh namespace `<prefix>-<unique suffix>` (so tests can run in
    /// parallel and be re-run) and waits until its `default` ServiceAccount
    /// exists (pods are rejected before that). Deleted when dropped, unless
    /// the test panicked: then it is kept for debugging and its name printed.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        let prefix: String = prefix.chars().take(40).collect();
        let name = format!("{prefix}-{}", unique_suffix());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("pym.e2e/test".to_string(), prefix)].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &ns)
            .await?;
        let guard = TestNamespace {
            name,
            kubeconfig_path: self.kubeconfig_path.clone(),
        };
        wait::default_service_account(&self.client(), guard.name()).await?;
        Ok(guard)
    }
}

/// A client from any kubeconfig file, e.g. one from [`Cluster::service_account_kubeconfig`].
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)
}

/// The user name of a ServiceAccount: `system:serviceaccount:<ns>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Creates a ServiceAccount (no token; use TokenRequest or impersonation).
pub async fn create_service_account(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<ServiceAccount> {
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &sa)
        .await?)
}

/// A namespace owned by one test; see [`Cluster::namespace`].
pub struct TestNamespace {
    name: String,
    kubeconfig_path: PathBuf,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "pym-e2e: test failed; keeping namespace {} for debugging",
                self.name
            );
            return;
        }
        // Synchronous and without waiting for finalization: Drop cannot be async,
        // and kwok finalizes the pods' deletion in the background.
        let _ = kubectl_tool(&self.kubeconfig_path)
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .run_blocking();
    }
}

/// The kubeconfig the tests use; see the crate docs for the order.
pub fn kubeconfig_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PYM_E2E_KUBECONFIG") {
        return Some(PathBuf::from(p));
    }
    let ours = run_dir().join("kubeconfig");
    if ours.exists() {
        return Some(ours);
    }
    let env = std::env::var_os("KUBECONFIG")?;
    std::env::split_paths(&env).next().filter(|p| p.exists())
}

/// `<run dir>/bin/<name>` (linked by `e2e/cluster up`), else `<name>` from `PATH`.
pub fn tool_path(name: &str) -> PathBuf {
    let ours = run_dir().join("bin").join(name);
    if ours.exists() {
        ours
    } else {
        PathBuf::from(name)
    }
}

fn kubectl_tool(kubeconfig: &Path) -> Tool {
    Tool::new(tool_path("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
}

/// A short suffix that is unique across processes and calls (`[0-9a-z]{8}`),
/// for names of namespaces and cluster-scoped objects.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut x = (nanos as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finalizer: spread the bits, then base-36 encode 8 digits.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| {
            let d = DIGITS[(x % 36) as usize] as char;
            x /= 36;
            d
        })
        .collect()
}
