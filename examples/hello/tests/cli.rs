//! The service binary's command line: help, config errors, `check`, `up`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hello");
/// A JWT secret long enough outside `PYM_ENV=dev` (32 bytes or more).
const SECRET: &str = "hello-cli-test-secret-0123456789abcdef";

fn hello(args: &[&str], env: &[(&str, &str)]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("PYM_CONFIG")
        .env_remove("PYM_REDIS_URL")
        .env_remove("PYM_JWT_SECRET")
        .env_remove("PYM_TASK_SECRET")
        .env_remove("PYM_ENV")
        .env("PYM_LOG_FORMAT", "pretty")
        .current_dir(cwd.path());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

use pym_runtime::testing::{RedisServer, free_port};

fn get(port: u16, path: &str, extra: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let method = if body.is_empty() { "GET" } else { "POST" };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_string()))
}

fn wait_up(port: u16) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if get(port, "/healthz", "", "").is_some_and(|(s, _)| s == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("service did not come up on {port}");
}

/// `hello <cmd>` on `port`, in `dir`, with no PYM_* settings from the
/// test's environment.
fn bare(cmd: &str, port: u16, dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg(cmd)
        .env_remove("PYM_REDIS_URL")
        .env_remove("PYM_JWT_SECRET")
        .env_remove("PYM_TASK_SECRET")
        .env_remove("PYM_ENV")
        .env_remove("PYM_CONFIG")
        .env("PYM_PORT", port.to_string())
        .current_dir(dir);
    c
}

/// Start `hello <cmd>` in the background on `port`, in `dir`, with no PYM_*
/// settings but `env`; wait until it answers /healthz. Killed when dropped.
fn start(cmd: &str, port: u16, dir: &std::path::Path, env: &[(&str, &str)]) -> Kill {
    let mut c = bare(cmd, port, dir);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let k = Kill(c.spawn().unwrap());
    wait_up(port);
    k
}

#[test]
fn help_on_every_command() {
    for cmd in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["worker", "--help"],
        vec!["up", "--help"],
        vec!["check", "--help"],
        vec!["token", "--help"],
        vec!["dead", "--help"],
        vec!["dead", "list", "--help"],
        vec!["dead", "replay", "--help"],
        vec!["dead", "purge", "--help"],
        vec!["stats", "--help"],
    ] {
        let o = hello(&cmd, &[]);
        assert!(o.status.success(), "{cmd:?}: {}", text(&o));
        assert!(text(&o).contains("Usage: hello"), "{cmd:?}: {}", text(&o));
    }
    let o = hello(&["nonsense"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_binds_and_names_missing_secret() {
    let o = hello(&["check"], &[("PYM_JWT_SECRET", SECRET)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3 operations bound"), "{}", text(&o));
    let o = hello(&["check"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("PYM_JWT_SECRET"), "{}", text(&o));
}

/// `token --claims` cannot set the claims the command sets itself (#14 item 11).
#[test]
fn token_refuses_reserved_claims() {
    let env = [("PYM_JWT_SECRET", SECRET)];
    for claim in ["sub", "exp", "iss", "aud", "iat", "nbf"] {
        let claims = format!("{{\"{claim}\":\"x\"}}");
        let o = hello(&["token", "alice", "--claims", &claims], &env);
        assert_eq!(o.status.code(), Some(2), "{claim}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{claim}: no token printed");
        assert!(
            text(&o).contains(&format!("'{claim}'")),
            "{claim}: {}",
            text(&o)
        );
    }
    let o = hello(&["token", "alice", "--claims", r#"{"role":"admin"}"#], &env);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn config_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pym-config.yaml");
    std::fs::write(&f, "name: hello\nport: 8080\nworker_concurency: 4\n").unwrap();
    let o = hello(
        &["check", "--config", f.to_str().unwrap()],
        &[("PYM_JWT_SECRET", SECRET)],
    );
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("pym-config.yaml:3") && t.contains("worker_concurency"),
        "{t}"
    );
    let o = hello(
        &["check", "--config", "/nonexistent/pym-config.yaml"],
        &[("PYM_JWT_SECRET", SECRET)],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("/nonexistent/pym-config.yaml"),
        "{}",
        text(&o)
    );
    let o = hello(
        &["check"],
        &[("PYM_JWT_SECRET", SECRET), ("PYM_PORT", "http")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("PYM_PORT"), "{}", text(&o));
}

#[test]
fn serve_and_worker_need_redis() {
    let o = hello(&["serve"], &[("PYM_JWT_SECRET", SECRET)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("PYM_REDIS_URL"), "{}", text(&o));
    let o = hello(&["worker"], &[("PYM_JWT_SECRET", SECRET)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("PYM_REDIS_URL"), "{}", text(&o));
}

/// `up` on a fresh machine (no Redis, no secret): eager tasks, on 127.0.0.1
/// only, with a random JWT secret whose token command it prints on stderr.
#[test]
fn up_runs_on_a_fresh_machine_in_eager_mode() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.jsonl");
    let (_k, printed) = start_up_printing(port, dir.path(), &report);
    assert_eq!(listen_address(port).as_deref(), Some("127.0.0.1"));
    let (s, body) = get(port, "/ping", "", "").unwrap();
    assert_eq!((s, body.as_str()), (200, "{}"));
    // The printed command: `PYM_JWT_SECRET=<secret> <bin> token alice`.
    let (assignment, command) = printed.trim().split_once(' ').unwrap();
    let secret = assignment.strip_prefix("PYM_JWT_SECRET=").unwrap();
    assert!(secret.len() >= 32, "{printed}");
    assert!(command.ends_with("token alice"), "{printed}");
    let o = hello(&["token", "dev-user"], &[("PYM_JWT_SECRET", secret)]);
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8(o.stdout).unwrap();
    let auth = format!(
        "authorization: Bearer {}\r\ncontent-type: application/json\r\nx-request-id: rq-up\r\n",
        token.trim()
    );
    let (s, body) = get(port, "/signup", &auth, r#"{"email":"d@example.com"}"#).unwrap();
    assert_eq!(s, 201, "{body}");
    // Eager: the task already ran, inline, with the caller's context.
    let seen: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&report)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(seen["user_id"], "dev-user");
    assert_eq!(seen["request_id"], "rq-up");
    let (s, _) = get(port, "/me", &auth, "").unwrap();
    assert_eq!(s, 200);
    // A token of another secret is refused.
    let o = hello(&["token", "dev-user"], &[("PYM_JWT_SECRET", SECRET)]);
    let other = String::from_utf8(o.stdout).unwrap();
    let auth = format!("authorization: Bearer {}\r\n", other.trim());
    assert_eq!(get(port, "/me", &auth, "").unwrap().0, 401);
}

/// Start `up` with no secret and no Redis; wait for it to serve and
/// return it with the token command it printed on stderr. The log lines
/// never hold the secret.
fn start_up_printing(port: u16, dir: &std::path::Path, report: &std::path::Path) -> (Kill, String) {
    use std::io::BufRead;
    let mut c = bare("up", port, dir);
    c.env("PYM_LOG_FORMAT", "json")
        .env("HELLO_TASK_REPORT", report)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let k = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.trim_start().starts_with("PYM_JWT_SECRET=") {
                let _ = tx.send((line, std::mem::take(&mut log)));
            } else {
                log.push(line);
            }
        }
    });
    let (printed, log) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("printed token command");
    let secret = printed.trim().split_once(' ').unwrap().0;
    for l in log {
        assert!(!l.contains(secret), "log line holds the secret: {l}");
    }
    wait_up(port);
    (k, printed)
}

/// The address a local TCP socket listens on at `port` (from /proc/net/tcp).
fn listen_address(port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (ip, p) = f.get(1)?.split_once(':')?;
        // State 0A = LISTEN; the IPv4 address is little-endian hex.
        (*f.get(3)? == "0A" && u16::from_str_radix(p, 16).ok()? == port).then(|| {
            let n = u32::from_str_radix(ip, 16).unwrap_or(0).to_le_bytes();
            std::net::Ipv4Addr::from(n).to_string()
        })
    })
}

#[test]
fn serve_outside_dev_refuses_short_or_empty_secrets() {
    for env in [vec![("PYM_ENV", "production")], vec![]] {
        let mut e = env.clone();
        e.push(("PYM_JWT_SECRET", "0123456789"));
        let o = hello(&["serve"], &e);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("PYM_JWT_SECRET") && t.contains("at least 32"),
            "{t}"
        );
        assert!(!t.contains("0123456789"), "the error shows no secret: {t}");
    }
    let o = hello(
        &["serve"],
        &[("PYM_JWT_SECRET", SECRET), ("PYM_TASK_SECRET", "short")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("PYM_TASK_SECRET"), "{}", text(&o));
    let o = hello(&["up"], &[("PYM_ENV", "dev"), ("PYM_JWT_SECRET", "  ")]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("PYM_JWT_SECRET") && text(&o).contains("empty"),
        "{}",
        text(&o)
    );
    // Dev mode allows a short secret (here `check`, which binds and exits).
    let o = hello(&["check"], &[("PYM_ENV", "dev"), ("PYM_JWT_SECRET", "s")]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn up_with_redis_runs_api_and_worker_in_one_process() {
    let redis = RedisServer::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.jsonl");
    let url = redis.url();
    let k = start(
        "up",
        port,
        dir.path(),
        &[
            ("PYM_REDIS_URL", url.as_str()),
            ("PYM_JWT_SECRET", SECRET),
            ("HELLO_TASK_REPORT", report.to_str().unwrap()),
        ],
    );
    let pid = k.0.id();
    let extra = "content-type: application/json\r\nx-request-id: rq-up-redis\r\n";
    let (s, body) = get(port, "/signup", extra, r#"{"email":"r@example.com"}"#).unwrap();
    assert_eq!(s, 201, "{body}");
    let t0 = Instant::now();
    let line = loop {
        if let Some(l) = std::fs::read_to_string(&report)
            .ok()
            .and_then(|t| t.lines().next().map(String::from))
        {
            break l;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "task did not run");
        std::thread::sleep(Duration::from_millis(50));
    };
    let seen: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(seen["request_id"], "rq-up-redis");
    assert_eq!(
        seen["user_id"],
        serde_json::Value::Null,
        "no token: system user"
    );
    assert_eq!(seen["pid"].as_u64().unwrap() as u32, pid);
    // Its worker beats in the registry `stats --workers` reads.
    let env = [("PYM_REDIS_URL", url.as_str()), ("PYM_JWT_SECRET", SECRET)];
    let o = hello(&["stats", "--workers", "--json"], &env);
    assert!(o.status.success(), "{}", text(&o));
    let live: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        live[0]["queues"],
        serde_json::json!(["default"]),
        "{live:?}"
    );
    assert!(live[0]["last_beat"].as_u64().unwrap() > 0, "{live:?}");
    let o = hello(&["stats", "--workers"], &env);
    assert!(
        text(&o).contains("in_flight") && text(&o).contains("default"),
        "{}",
        text(&o)
    );
}

#[test]
fn readyz_follows_the_broker() {
    let mut redis = RedisServer::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let _k = start(
        "serve",
        port,
        dir.path(),
        &[("PYM_REDIS_URL", url.as_str()), ("PYM_JWT_SECRET", SECRET)],
    );
    assert_eq!(get(port, "/readyz", "", "").unwrap().0, 200);
    redis.kill();
    let t0 = Instant::now();
    let body = loop {
        let (s, body) = get(port, "/readyz", "", "").unwrap();
        if s == 503 {
            break body;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "readyz stayed {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "SERVICE_UNAVAILABLE");
    // Liveness is not readiness.
    assert_eq!(get(port, "/healthz", "", "").unwrap().0, 200);
    // Back when Redis is back.
    redis.restart();
    let t0 = Instant::now();
    while get(port, "/readyz", "", "").unwrap().0 != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "readyz did not recover"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
