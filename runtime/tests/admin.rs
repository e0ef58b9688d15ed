//! The admin API on real service processes: this test binary runs itself
//! as `svc serve`, `svc worker` and `svc token` (the ignored test `child`,
//! chosen by `ADMIN_TEST_CHILD`), on a real redis-server.
//!
//! Covered: roles (no token 401, no role 403, read, operate) in the
//! standard error JSON; dead letters listed with filters, shown decoded
//! without the token, replayed one / a filtered set / all, purged likewise,
//! and nothing touched by a read token; delayed and in-flight tasks with
//! the caller's user id and request id and no token; a tracked task's
//! record read and the task cancelled by id; the admin port.

use pym_core::context::{self, Context};
use pym_runtime::testing::{RedisServer, free_port};
use pym_runtime::{App, Queue, TaskError, asynctask};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "admin-test-secret-of-at-least-32-bytes";
const CHILD: &str = "ADMIN_TEST_CHILD";
const QUEUE: &str = "adm";

#[asynctask(queue = "adm")]
async fn doomed_a(n: u32) -> Result<(), TaskError> {
    Err(TaskError::fatal(format!("a{n} cannot be done")))
}

#[asynctask(queue = "adm")]
async fn doomed_b(n: u32) -> Result<(), TaskError> {
    Err(TaskError::fatal(format!("b{n} cannot be done")))
}

#[asynctask(queue = "adm")]
async fn slow(ms: u64) -> Result<(), TaskError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

/// A tracked task, for `GET /_pym/admin/tasks/{id}`: returns its double.
#[asynctask(queue = "adm", track)]
async fn doubled(n: u32) -> Result<u32, TaskError> {
    Ok(n * 2)
}

/// A periodic task, for the schedules view (due once a year: it never
/// fires while the tests run).
#[asynctask(queue = "adm", cron = "0 0 3 1 1 *", tz = "Europe/Paris")]
async fn yearly_report() -> Result<(), TaskError> {
    Ok(())
}

const SPEC: &str = "openapi: 3.1.0\ninfo: {title: svc, version: '1'}\npaths: {}\n";

/// The service binary, when this process is a child.
#[test]
#[ignore = "run by the other tests as their service process"]
fn child() {
    let Ok(args) = std::env::var(CHILD) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let code = App::new("svc")
        .service(|b| b.spec_str("openapi.yaml", SPEC))
        .run_from(std::iter::once("svc".to_string()).chain(args));
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// Children killed when the test ends.
struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `svc ARGS` with the broker at `redis` and `env`.
fn svc(args: &[&str], redis: &str, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["child", "--exact", "--ignored", "--nocapture", "--quiet"])
        .env(CHILD, serde_json::to_string(args).unwrap())
        .env("PYM_REDIS_URL", redis)
        .env("PYM_JWT_SECRET", SECRET)
        .env("PYM_JWT_ISSUER", "https://svc.test")
        .env("PYM_JWT_AUDIENCE", "svc")
        .env("PYM_LOG_FORMAT", "json")
        .env("PYM_LOG", "warn,pym_runtime::admin=info")
        .env_remove("PYM_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// A token for `user` with `claims`, minted by `svc token`.
fn token(redis: &str, user: &str, claims: Value) -> String {
    let out = svc(
        &["token", user, "--claims", &claims.to_string()],
        redis,
        &[],
    )
    .stderr(Stdio::inherit())
    .output()
    .unwrap();
    assert!(out.status.success(), "svc token failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("ey"))
        .expect("a token on stdout")
        .to_string()
}

/// A running `svc serve` (admin enabled) and, when asked, `svc worker`.
struct Svc {
    /// The environment of `svc serve`, given to workers too.
    env: Vec<(&'static str, String)>,
    /// `svc serve`'s log.
    log: tempfile::NamedTempFile,
    _redis: RedisServer,
    url: String,
    port: u16,
    read: String,
    operate: String,
    plain: String,
    procs: Procs,
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(env: &[(&'static str, String)]) -> Svc {
    let redis = RedisServer::start();
    let url = redis.url();
    let port = free_port();
    let mut env = env.to_vec();
    env.push(("PYM_PORT", port.to_string()));
    env.push(("PYM_ADMIN_ENABLED", "true".into()));
    let log = tempfile::NamedTempFile::new().unwrap();
    let serve = svc(&["serve"], &url, &env)
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let s = Svc {
        env: env.clone(),
        log,
        read: token(&url, "rita", json!({"pym_admin": "read"})),
        operate: token(&url, "otto", json!({"pym_admin": "operate"})),
        plain: token(&url, "paul", json!({})),
        _redis: redis,
        url,
        port,
        procs: Procs(vec![serve]),
    };
    wait_for("svc serve", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", None, "").0 == 200
    });
    s
}

impl Svc {
    fn worker(&mut self) {
        let wport = free_port();
        let mut env = self.env.clone();
        env.push(("PYM_WORKER_PORT", wport.to_string()));
        let w = svc(&["worker"], &self.url, &env)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.procs.0.push(w);
        wait_for("svc worker", Duration::from_secs(30), || {
            http(wport, "GET", "/readyz", None, "").0 == 200
        });
    }

    fn stop_workers(&mut self) {
        for mut c in self.procs.0.drain(1..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `method path` with `token`; (status, JSON body).
    fn call(&self, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
        let (status, text) = http(self.port, method, path, Some(token), body);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> Value {
        let (status, v) = self.call("GET", path, &self.read, "");
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    fn queue(&self) -> Value {
        self.get(&format!("/_pym/admin/queues/{QUEUE}"))
    }

    async fn queue_handle(&self) -> Queue {
        let shards = self.env.iter().find(|(k, _)| *k == "PYM_QUEUE_SHARDS");
        let shards = pym_broker::shards::parse(shards.map_or("", |(_, v)| v.as_str())).unwrap();
        let bc = pym_broker::BrokerConfig::new(&self.url, SECRET.as_bytes().to_vec())
            .with_shards(shards);
        Queue::connect(&bc).await.unwrap()
    }
}

/// HTTP/1.1 `method path` (Connection: close); (status, body).
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A caller context, as a request of `user` would give its tasks.
fn caller(user: &str, request: &str) -> Arc<Context> {
    Arc::new(Context {
        user_id: Some(user.into()),
        request_id: Some(request.into()),
        token: Some("secret-token-never-shown".into()),
        ..Context::default()
    })
}

#[test]
fn roles_answer_in_the_standard_error_json() {
    let s = start(&[]);
    // No token: 401; a token without the role: 403; both standard errors.
    let (status, body) = http(s.port, "GET", "/_pym/admin/queues", None, "");
    assert_eq!(status, 401, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["status"], 401);
    assert!(
        e["error"].is_string() && e["error_description"].is_string(),
        "{e}"
    );
    let (status, e) = s.call("GET", "/_pym/admin/queues", &s.plain, "");
    assert_eq!(status, 403, "{e}");
    assert_eq!(e["status"], 403);
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("pym_admin"),
        "{e}"
    );
    // A read token looks; /me says who and which request.
    let me = s.get("/_pym/admin/me");
    assert_eq!(
        (me["user_id"].as_str(), me["role"].as_str()),
        (Some("rita"), Some("read"))
    );
    assert!(
        me["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{me}"
    );
    assert!(s.get("/_pym/admin/queues")["queues"].is_array());
    assert!(s.get("/_pym/admin/workers")["workers"].is_array());
    // A read token may not operate.
    for (method, path) in [
        ("POST", format!("/_pym/admin/queues/{QUEUE}/dead/purge")),
        ("POST", format!("/_pym/admin/queues/{QUEUE}/dead/replay")),
        ("DELETE", format!("/_pym/admin/queues/{QUEUE}/dead/x")),
        ("POST", format!("/_pym/admin/queues/{QUEUE}/dead/x/replay")),
    ] {
        let (status, e) = s.call(method, &path, &s.read, r#"{"all":true}"#);
        assert_eq!(status, 403, "{method} {path}: {e}");
        assert!(
            e["error_description"].as_str().unwrap().contains("operate"),
            "{e}"
        );
    }
    let (status, me) = s.call("GET", "/_pym/admin/me", &s.operate, "");
    assert_eq!((status, me["role"].as_str()), (200, Some("operate")));
    // The document and the dashboard need no token.
    let (status, doc) = http(s.port, "GET", "/_pym/admin/openapi.yaml", None, "");
    assert_eq!(status, 200);
    assert!(doc.contains("operationId: pym_admin_dead_replay"), "{doc}");
    let (status, page) = http(s.port, "GET", "/_pym/", None, "");
    assert_eq!(status, 200);
    assert!(page.contains("assets/app.js"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_filtered_replayed_and_purged() {
    let mut s = tokio::task::spawn_blocking(|| {
        let mut s = start(&[]);
        s.worker();
        s
    })
    .await
    .unwrap();
    let q = s.queue_handle().await;
    let before = pym_broker::envelope::now_ms();
    context::scope(caller("alice", "req-a"), async {
        for n in 0..3 {
            doomed_a::spawn(&q, n).await.unwrap();
        }
        for n in 0..2 {
            doomed_b::spawn(&q, n).await.unwrap();
        }
    })
    .await;
    let s = tokio::task::spawn_blocking(move || {
        wait_for("5 dead letters", Duration::from_secs(30), || {
            s.queue()["dead"] == 5
        });
        s.stop_workers();
        s
    })
    .await
    .unwrap();
    let path = format!("/_pym/admin/queues/{QUEUE}/dead");
    let list = |query: &str| {
        s.get(&format!("{path}?{query}"))["dead"]
            .as_array()
            .unwrap()
            .clone()
    };
    // Filters: task, reason, time, and paging.
    assert_eq!(list("").len(), 5);
    assert_eq!(list("task=doomed_a").len(), 3);
    assert_eq!(list("task=doomed_b&reason=fatal").len(), 2);
    assert_eq!(list("reason=retries_exhausted").len(), 0);
    assert_eq!(list(&format!("since_ms={before}")).len(), 5);
    assert_eq!(list(&format!("until_ms={before}")).len(), 0);
    assert_eq!(list("limit=2&offset=4").len(), 1);
    let first = &list("task=doomed_b")[0];
    assert_eq!(first["user_id"], "alice");
    assert_eq!(first["request_id"], "req-a");
    // Show one: the message decoded, no token anywhere.
    let id = first["id"].as_str().unwrap();
    let one = s.get(&format!("{path}/{id}"));
    assert_eq!(one["envelope"]["task"], "doomed_b");
    assert_eq!(one["envelope"]["ctx"]["user_id"], "alice");
    assert!(one["envelope"]["ctx"].get("token").is_none(), "{one}");
    assert!(one.get("message").is_none(), "{one}");
    let (status, _) = s.call("GET", &format!("{path}/no-such"), &s.read, "");
    assert_eq!(status, 404);
    // A read token deletes nothing.
    for (m, p) in [
        ("POST", format!("{path}/purge")),
        ("DELETE", format!("{path}/{id}")),
    ] {
        assert_eq!(s.call(m, &p, &s.read, r#"{"all":true}"#).0, 403);
    }
    assert_eq!(s.queue()["dead"], 5);
    // Replay one: it is ready again, with an action id.
    let (status, done) = s.call("POST", &format!("{path}/{id}/replay"), &s.operate, "");
    assert_eq!((status, done["done"].as_u64()), (200, Some(1)), "{done}");
    let action = done["action_id"].as_str().unwrap();
    // Logged with the caller's user id under the action id, token-free.
    let logged = || {
        let log = std::fs::read_to_string(s.log.path()).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains(action) && l.contains("dead.replay"));
        line.is_some_and(|l| l.contains(r#""user_id":"otto""#))
    };
    wait_for("the action's log line", Duration::from_secs(10), logged);
    let log = std::fs::read_to_string(s.log.path()).unwrap();
    assert!(!log.contains(&s.operate), "the log holds a token");
    let v = s.queue();
    assert_eq!(
        (v["dead"].as_u64(), v["ready"].as_u64()),
        (Some(4), Some(1)),
        "{v}"
    );
    assert_eq!(v["priorities"]["normal"]["ready"], 1, "{v}");
    // A set needs a filter or all.
    let (status, e) = s.call("POST", &format!("{path}/replay"), &s.operate, "{}");
    assert_eq!(status, 400, "{e}");
    // Replay the filtered set: the other doomed_b.
    let (_, done) = s.call(
        "POST",
        &format!("{path}/replay"),
        &s.operate,
        r#"{"task":"doomed_b"}"#,
    );
    assert_eq!(done["done"], 1, "{done}");
    // Purge a filtered set, then all.
    let (_, done) = s.call(
        "POST",
        &format!("{path}/purge"),
        &s.operate,
        r#"{"task":"doomed_a","since_ms":0}"#,
    );
    assert_eq!(done["done"], 3, "{done}");
    assert_eq!(s.queue()["dead"], 0);
    assert_eq!(s.queue()["ready"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn delayed_and_in_flight_tasks_show_the_caller_not_the_token() {
    let s = tokio::task::spawn_blocking(|| start(&[])).await.unwrap();
    let q = s.queue_handle().await;
    context::scope(caller("bob", "req-b"), async {
        slow::spawn_in(&q, Duration::from_secs(3600), 1)
            .await
            .unwrap();
        slow::spawn(&q, 30_000).await.unwrap();
    })
    .await;
    let mut s = tokio::task::spawn_blocking(move || {
        let mut s = s;
        s.worker();
        s
    })
    .await
    .unwrap();
    let delayed = s.get(&format!("/_pym/admin/queues/{QUEUE}/delayed"));
    let text = delayed.to_string();
    let t = &delayed["tasks"][0];
    assert_eq!(
        (t["task"].as_str(), t["user_id"].as_str()),
        (Some("slow"), Some("bob")),
        "{delayed}"
    );
    assert_eq!(t["request_id"], "req-b");
    assert!(t["due_in_ms"].as_u64().unwrap() > 3_500_000, "{delayed}");
    let path = format!("/_pym/admin/queues/{QUEUE}/in-flight");
    wait_for("the slow task in flight", Duration::from_secs(30), || {
        !s.get(&path)["tasks"].as_array().unwrap().is_empty()
    });
    let flying = s.get(&path);
    let t = &flying["tasks"][0];
    assert_eq!(
        (t["task"].as_str(), t["user_id"].as_str()),
        (Some("slow"), Some("bob")),
        "{flying}"
    );
    assert!(
        t["worker"].as_str().is_some_and(|w| !w.is_empty()),
        "{flying}"
    );
    for body in [text, flying.to_string()] {
        assert!(
            !body.contains("secret-token") && !body.contains("\"token\""),
            "{body}"
        );
    }
    let workers = s.get("/_pym/admin/workers");
    assert_eq!(workers["workers"].as_array().unwrap().len(), 1, "{workers}");
    // The worker declared its periodic task: the schedules view shows it.
    let schedules = s.get("/_pym/admin/schedules");
    let yearly = schedules["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["task"] == "yearly_report")
        .unwrap_or_else(|| panic!("no yearly_report in {schedules}"));
    assert_eq!(
        (
            yearly["queue"].as_str(),
            yearly["cron"].as_str(),
            yearly["tz"].as_str()
        ),
        (Some(QUEUE), Some("0 0 3 1 1 *"), Some("Europe/Paris")),
        "{schedules}"
    );
    assert!(yearly["next_ms"].as_u64().is_some(), "{schedules}");
    assert!(yearly["last_run_ms"].is_null(), "{schedules}");
    assert_eq!(s.queue()["in_flight"], 1);
    s.stop_workers();
}

#[test]
fn admin_port_serves_it_apart_from_the_api() {
    let admin = free_port();
    let s = start(&[("PYM_ADMIN_PORT", admin.to_string())]);
    wait_for("the admin port", Duration::from_secs(10), || {
        http(admin, "GET", "/_pym/admin/openapi.yaml", None, "").0 == 200
    });
    let (status, body) = http(admin, "GET", "/_pym/admin/queues", Some(&s.read), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        http(s.port, "GET", "/_pym/admin/queues", Some(&s.read), "").0,
        404
    );
    assert_eq!(http(s.port, "GET", "/_pym/", None, "").0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_queues_dead_letters_are_found_and_replayed_in_every_shard() {
    let shards = [("PYM_QUEUE_SHARDS", format!("{QUEUE}=2"))];
    let mut s = tokio::task::spawn_blocking(move || {
        let mut s = start(&shards);
        s.worker();
        s
    })
    .await
    .unwrap();
    let q = s.queue_handle().await;
    for n in 0..4 {
        doomed_a::spawn(&q, n).await.unwrap();
    }
    let s = tokio::task::spawn_blocking(move || {
        wait_for("4 dead letters", Duration::from_secs(30), || {
            s.queue()["dead"] == 4
        });
        s.stop_workers();
        s
    })
    .await
    .unwrap();
    let path = format!("/_pym/admin/queues/{QUEUE}/dead");
    let list = s.get(&path);
    assert_eq!(list["dead"].as_array().unwrap().len(), 4, "{list}");
    let id = list["dead"][0]["id"].as_str().unwrap().to_string();
    let shown = s.get(&format!("{path}/{id}"));
    assert_eq!(shown["envelope"]["queue"], QUEUE, "{shown}");
    let (_, done) = s.call(
        "POST",
        &format!("{path}/replay"),
        &s.operate,
        r#"{"task":"doomed_a"}"#,
    );
    assert_eq!(
        (done["done"].as_u64(), done["refused"].as_u64()),
        (Some(4), Some(0)),
        "{done}"
    );
    let v = s.queue();
    assert_eq!(
        (v["dead"].as_u64(), v["ready"].as_u64()),
        (Some(0), Some(4)),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tracked_task_is_shown_and_cancelled_by_id() {
    let mut s = start(&[]);
    let q = s.queue_handle().await;
    let h = doubled::spawn(&q, 21).await.unwrap();
    let path = format!("/_pym/admin/tasks/{}", h.id());
    let r = s.get(&path);
    assert_eq!(
        (r["task"].as_str(), r["state"].as_str(), r["queue"].as_str()),
        (Some("doubled"), Some("queued"), Some(QUEUE)),
        "{r}"
    );
    // Bad ids and unknown ids, in the standard error JSON.
    let (status, e) = s.call("GET", "/_pym/admin/tasks/nope", &s.read, "");
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("INVALID_PARAMETER")),
        "{e}"
    );
    let unknown = uuid::Uuid::now_v7();
    let (status, e) = s.call("GET", &format!("/_pym/admin/tasks/{unknown}"), &s.read, "");
    assert_eq!(status, 404, "{e}");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("not tracked"),
        "{e}"
    );
    // Cancelling takes the operate role.
    let cancel = format!("{path}/cancel");
    let (status, _) = s.call("POST", &cancel, &s.read, "");
    assert_eq!(status, 403);
    let (status, v) = s.call("POST", &cancel, &s.operate, "");
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("before_start")),
        "{v}"
    );
    assert!(v["action_id"].is_string(), "{v}");
    assert_eq!(s.get(&path)["state"], "cancelled");
    let (_, again) = s.call("POST", &cancel, &s.operate, "");
    assert_eq!(
        (again["outcome"].as_str(), again["state"].as_str()),
        (Some("already_finished"), Some("cancelled")),
        "{again}"
    );
    // An untracked task has no record: its queue is needed to mark it.
    let untracked = slow::spawn(&q, 1).await.unwrap();
    let cancel = format!("/_pym/admin/tasks/{}/cancel", untracked.id());
    let (status, e) = s.call("POST", &cancel, &s.operate, "");
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error_description"].as_str().unwrap().contains("queue"),
        "{e}"
    );
    let (status, v) = s.call(
        "POST",
        &cancel,
        &s.operate,
        &json!({"queue": QUEUE}).to_string(),
    );
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("marked")),
        "{v}"
    );
    // A worker never runs the cancelled one; a new one succeeds with its result.
    s.worker();
    let done = doubled::spawn(&q, 4).await.unwrap();
    let path = format!("/_pym/admin/tasks/{}", done.id());
    wait_for("the task to succeed", Duration::from_secs(20), || {
        s.get(&path)["state"] == "succeeded"
    });
    let r = s.get(&path);
    assert_eq!(r["result"], 8, "{r}");
    assert!(r["started_ms"].is_u64() && r["finished_ms"].is_u64(), "{r}");
    assert_eq!(
        s.get(&format!("/_pym/admin/tasks/{}", h.id()))["state"],
        "cancelled"
    );
    s.stop_workers();
}
