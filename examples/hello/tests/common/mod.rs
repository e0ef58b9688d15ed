//! What the process tests of hello share: children killed on drop, a
//! minimal HTTP client, starting `hello` with an environment, polling, and
//! reading the task report (`HELLO_TASK_REPORT`, one JSON line per run).
// Each test binary uses part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hello");
/// How long one request may take (connect, write, read) before it fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A token for `args` (`USER [--claims JSON]`), minted by `hello token`
/// with the JWT secret `secret`.
pub fn mint_token(secret: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("token")
        .args(args)
        .env("PYM_JWT_SECRET", secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Children killed (by their own handle) when the test ends, pass or fail.
pub struct Procs(pub Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` every 50 ms; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Minimal HTTP/1.1 client (Connection: close); every step within
/// [`REQUEST_TIMEOUT`], else an error.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Reply> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(Reply { status, body })
}

/// `hello ARGS` with `env` (and no PYM_CONFIG), stderr to `log`.
pub fn spawn_hello(args: &[&str], env: &[(&str, String)], log: &Path) -> Child {
    let f = std::fs::File::create(log).unwrap();
    let mut c = Command::new(BIN);
    c.args(args)
        .stdout(Stdio::null())
        .stderr(f)
        .env_remove("PYM_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// The JSON lines of the task report at `path` (none if it is not there).
pub fn report_lines(path: &Path) -> Vec<Value> {
    match std::fs::File::open(path) {
        Err(_) => Vec::new(),
        Ok(f) => std::io::BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect(),
    }
}

/// `hello serve` on `api` and `hello worker` on `worker` (their health
/// port), both on the broker at `redis_url`, JSON logs in `dir`, the task
/// report in `report`; returns once both answer /readyz (within `ready`).
pub fn start_api_and_worker(
    procs: &mut Procs,
    redis_url: String,
    secret: &str,
    (api, worker): (u16, u16),
    (dir, report): (&Path, &Path),
    ready: Duration,
) -> Vec<(&'static str, String)> {
    let env = vec![
        ("PYM_REDIS_URL", redis_url),
        ("PYM_JWT_SECRET", secret.to_string()),
        ("PYM_PORT", api.to_string()),
        ("PYM_WORKER_PORT", worker.to_string()),
        ("PYM_LOG_FORMAT", "json".to_string()),
        ("PYM_LOG", "info".to_string()),
        ("HELLO_TASK_REPORT", report.display().to_string()),
    ];
    procs
        .0
        .push(spawn_hello(&["worker"], &env, &dir.join("worker.log")));
    procs
        .0
        .push(spawn_hello(&["serve"], &env, &dir.join("api.log")));
    for (what, port) in [("API /readyz", api), ("worker /readyz", worker)] {
        wait_for(what, ready, || {
            http(port, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
        });
    }
    env
}
