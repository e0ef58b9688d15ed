//! The pym-operator binary as a local process against the test cluster: which
//! binary, the CRD it needs, how it is launched and how a test talks to it.
//!
//! The binary: `$PYM_OPERATOR_BIN` if set, else `<target dir>/debug/pym-operator`
//! ([`operator_binary`]), which must be built first (`cargo build -p pym-operator`).
//! A test cannot run cargo itself (the outer `cargo test` holds the build
//! lock) and `CARGO_BIN_EXE_*` only exists for a package's own binaries, so a
//! missing or stale binary (older than a source file it was built from, as
//! cargo's dep-info `pym-operator.d` lists them) fails the test with the
//! command to run.
//!
//! ```no_run
//! use pym_e2e::operator::{self, Launch};
//! # async fn example(cluster: &pym_e2e::Cluster) -> pym_e2e::Result<()> {
//! operator::install_crd(cluster).await?;
//! let op = Launch::scoped(cluster, "my-ns", "op-a").start()?;
//! op.wait_leader(std::time::Duration::from_secs(30)).await?;
//! # Ok(())
//! # }
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Cluster, Result, TestNamespace, free_port, run_dir, target_dir, wait, workspace_root};

/// How long [`Operator::terminate`] waits for the process to exit after SIGTERM.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(20);

/// `$PYM_OPERATOR_BIN`, if set.
fn binary_override() -> Option<PathBuf> {
    std::env::var_os("PYM_OPERATOR_BIN").map(PathBuf::from)
}

/// Path of a fresh debug pym-operator binary (or `$PYM_OPERATOR_BIN`), or a
/// panic that says how to build it.
pub fn operator_binary() -> PathBuf {
    if let Some(p) = binary_override() {
        return p;
    }
    let bin = target_dir().join("debug").join("pym-operator");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} not found: run `cargo build -p pym-operator` before the operator e2e tests",
                bin.display()
            )
        });
    let dep_info = bin.with_extension("d");
    let deps = std::fs::read_to_string(&dep_info).unwrap_or_else(|e| {
        panic!(
            "cannot tell whether {} is up to date ({}: {e}): run `cargo build -p pym-operator`",
            bin.display(),
            dep_info.display()
        )
    });
    let main_rs = workspace_root().join("operator/src/main.rs");
    if let Some(why) = stale_reason(&dep_info_sources(&deps), built, &main_rs, modified) {
        panic!("{} {why}: run `cargo build -p pym-operator`", bin.display());
    }
    bin
}

/// Why a binary built at `built` from `sources` is not this checkout's
/// operator as it is now (`main_rs`: this checkout's operator/src/main.rs),
/// or `None` if it is. A shared target directory may hold a binary built
/// from another checkout.
fn stale_reason(
    sources: &[PathBuf],
    built: SystemTime,
    main_rs: &Path,
    modified: impl Fn(&Path) -> SystemTime,
) -> Option<String> {
    if !sources.iter().any(|s| s == main_rs) {
        return Some(format!(
            "was not built from {} (its sources: {:?}...)",
            main_rs.display(),
            sources.first()
        ));
    }
    let newer: Vec<&PathBuf> = sources.iter().filter(|s| modified(s) > built).collect();
    (!newer.is_empty()).then(|| format!("is older than {newer:?}"))
}

/// For benchmarks: `$PYM_OPERATOR_BIN`, else the release binary if built,
/// else the debug one (not checked for freshness).
pub fn operator_binary_prefer_release() -> PathBuf {
    if let Some(p) = binary_override() {
        return p;
    }
    let release = target_dir().join("release/pym-operator");
    if release.exists() {
        release
    } else {
        target_dir().join("debug/pym-operator")
    }
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The source files of a cargo dep-info file (`<target>: <dep> <dep> ...`,
/// spaces in paths escaped as `\ `).
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let Some(line) = text.lines().next() else {
        return Vec::new();
    };
    let Some((_, deps)) = line.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' if !current.is_empty() => out.push(PathBuf::from(std::mem::take(&mut current))),
            ' ' => {}
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(PathBuf::from(current));
    }
    out
}

/// Installs (server-side apply) the generated CRD and waits until it is Established.
pub async fn install_crd(cluster: &Cluster) -> Result<()> {
    let crd = workspace_root().join("crds/pymservice.yaml");
    cluster
        .kubectl()
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&crd)
        .run()
        .await?;
    // `kubectl wait` fails while the new CRD has no status yet: retry.
    wait::until(
        "CRD pymservices.pym.dev Established",
        Duration::from_secs(60),
        || async {
            cluster
                .kubectl()
                .args([
                    "wait",
                    "--for=condition=Established",
                    "crd/pymservices.pym.dev",
                    "--timeout=10s",
                ])
                .run()
                .await
                .map(|_| Some(()))
        },
    )
    .await?;
    Ok(())
}

/// The start of an operator test: the cluster, the CRD installed, and a
/// namespace of the test's own (see [`Cluster::namespace`]).
pub async fn prepare(prefix: &str) -> Result<(Cluster, TestNamespace)> {
    let cluster = Cluster::connect().await;
    install_crd(&cluster).await?;
    let ns = cluster.namespace(prefix).await?;
    Ok((cluster, ns))
}

/// How to run the operator: the binary, its arguments and environment, and
/// the log file (`<run dir>/logs/<name>`) that takes its stdout and stderr.
/// It always gets `--kubeconfig`, `--identity` and `--http-addr` on a free
/// loopback port; the rest of the environment is the test's.
pub struct Launch {
    binary: PathBuf,
    kubeconfig: PathBuf,
    identity: String,
    log_name: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Launch {
    /// Just the binary, the kubeconfig and the identity; the log file is
    /// `operator-<identity>.log`.
    pub fn new(binary: PathBuf, kubeconfig: &Path, identity: &str) -> Launch {
        Launch {
            binary,
            kubeconfig: kubeconfig.to_path_buf(),
            identity: identity.to_string(),
            log_name: format!("operator-{identity}.log"),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// What the operator tests run: [`operator_binary`] watching `namespace`
    /// and holding its Lease there, with a short Lease (4 s, grace 2 s) so
    /// failover is quick, pretty logs at `info,pym_operator=debug`.
    pub fn scoped(cluster: &Cluster, namespace: &str, identity: &str) -> Launch {
        Launch::new(operator_binary(), cluster.kubeconfig_path(), identity)
            .args(["--namespace", namespace])
            .args(["--lease-namespace", namespace])
            .args([
                "--lease-duration-seconds",
                "4",
                "--lease-grace-seconds",
                "2",
            ])
            .args(["--log-format", "pretty"])
            .env("RUST_LOG", "info,pym_operator=debug")
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Launch {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Launch {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Launch
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The log file's name under `<run dir>/logs/`.
    pub fn log_name(mut self, name: impl Into<String>) -> Launch {
        self.log_name = name.into();
        self
    }

    /// Spawns the process (it is not waited for: see [`Operator::wait_ready`]).
    /// [`Launch::start`], then waits (30 s at most) until it leads.
    pub async fn start_leading(self) -> Result<Operator> {
        let op = self.start()?;
        op.wait_leader(Duration::from_secs(30)).await?;
        Ok(op)
    }

    pub fn start(self) -> Result<Operator> {
        let http_port = free_port();
        let logs = run_dir().join("logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(&self.log_name);
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--identity", &self.identity])
            .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
            .args(&self.args)
            .envs(self.env)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        eprintln!("running {cmd:?}");
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the operator: {e}"))?;
        Ok(Operator {
            child: Some(child),
            http_port,
            log,
            identity: self.identity,
            binary: self.binary,
        })
    }
}

/// A pym-operator process; killed (SIGKILL) when dropped, its log printed if
/// the test is panicking.
pub struct Operator {
    child: Option<Child>,
    pub http_port: u16,
    pub log: PathBuf,
    pub identity: String,
    /// The binary it runs.
    pub binary: PathBuf,
}

impl Operator {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, no cleanup (the Lease stays held until it expires).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (up to 20 s) for exit; returns the exit code, `None`
    /// if it did not exit (the process is left running).
    pub fn terminate(&mut self) -> Option<i32> {
        let c = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// SIGTERM (it releases the Lease), then SIGKILL if it did not exit in time.
    pub fn stop(&mut self) {
        self.terminate();
        self.kill9();
    }

    /// GET a path of the operator's HTTP server; (status code, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.http_port)).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await?;
        let code = buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
        Ok((code, body.unwrap_or_default()))
    }

    /// Value of an unlabelled metric (e.g. `pym_operator_leader`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await.ok()?;
        body.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 30 s) until `path` answers 200.
    pub async fn wait_ok(&self, path: &str) -> Result<()> {
        wait::until(
            format!("operator {} {path}", self.identity),
            Duration::from_secs(30),
            || async {
                match self.get(path).await {
                    Ok((200, _)) => Ok(Some(())),
                    Ok((c, b)) => Err(format!("{c} {b}")),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) -> Result<()> {
        self.wait_ok("/readyz").await
    }

    /// Waits until this process holds the Lease.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<()> {
        wait::until(
            format!("operator {} to lead", self.identity),
            timeout,
            || async {
                match self.metric("pym_operator_leader").await {
                    Some(1.0) => Ok(Some(())),
                    v => Err(format!("leader={v:?}")),
                }
            },
        )
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("operator log {}:\n{}", self.log.display(), self.logs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{dep_info_sources, stale_reason};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_binary_is_stale_when_a_source_is_newer_or_another_checkout_built_it() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        // Source files and their modification times (seconds).
        let mtime = |p: &Path| match p.to_str() {
            Some("/r/operator/src/main.rs") => at(10),
            Some("/r/runtime/core/src/contract.rs") => at(20),
            Some("/other/operator/src/main.rs") => at(5),
            _ => SystemTime::UNIX_EPOCH,
        };
        let main_rs = Path::new("/r/operator/src/main.rs");
        // (sources, built at, stale because)
        let cases: [(&[&str], u64, Option<&str>); 5] = [
            (
                &["/r/operator/src/main.rs", "/r/runtime/core/src/contract.rs"],
                30,
                None,
            ),
            (
                &["/r/operator/src/main.rs", "/r/runtime/core/src/contract.rs"],
                20,
                None,
            ),
            (
                &["/r/operator/src/main.rs", "/r/runtime/core/src/contract.rs"],
                15,
                Some("older than"),
            ),
            (&["/r/operator/src/main.rs", "/r/gone.rs"], 15, None),
            (
                &["/other/operator/src/main.rs"],
                30,
                Some("not built from /r/operator/src/main.rs"),
            ),
        ];
        for (sources, built, want) in cases {
            let sources: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
            let got = stale_reason(&sources, at(built), main_rs, mtime);
            match (&got, want) {
                (None, None) => {}
                (Some(why), Some(part)) if why.contains(part) => {}
                _ => panic!("{sources:?} built at {built}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn dep_info_lists_the_sources_after_the_target() {
        let cases: [(&str, &[&str]); 5] = [
            (
                "/t/debug/pym-operator: /r/operator/src/main.rs /r/runtime/core/src/lib.rs\n",
                &["/r/operator/src/main.rs", "/r/runtime/core/src/lib.rs"],
            ),
            (
                "/t/pym-operator: /my\\ dir/a.rs  /b.rs",
                &["/my dir/a.rs", "/b.rs"],
            ),
            ("/t/pym-operator:", &[]),
            ("/t/pym-operator: ", &[]),
            ("", &[]),
        ];
        for (text, want) in cases {
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(dep_info_sources(text), want, "{text:?}");
        }
    }
}
