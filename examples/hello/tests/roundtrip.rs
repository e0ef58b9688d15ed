//! Context round trip through a real redis-server and real `hello serve` +
//! `hello worker` processes: the task sees the caller's user id, claims,
//! request id, traceparent, method and path; its log lines carry the request
//! id; tokens never reach the logs; forged and tampered envelopes are refused
//! and dead-lettered (seen through `hello dead list`); a task calling the
//! greeter service carries its caller's user, request id and trace there.
//!
//! Needs `redis-server` on PATH (Debian package `redis-server`).

mod common;

use common::{BIN, Procs, http, report_lines, spawn_hello, start_api_and_worker, wait_for};
use pym_broker::envelope::{Envelope, Signer};
use pym_broker::keys::{FIELD_MESSAGE, QueueKeys};
use pym_runtime::testing::{RedisServer, free_port};
use pym_runtime::{Context, Priority};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SECRET: &str = "roundtrip-secret-0123456789abcdefghijk";

#[test]
fn context_round_trip_through_redis_and_a_worker_process() {
    let dir = tempfile::tempdir().unwrap();
    let dir: PathBuf = dir.path().to_path_buf();
    let redis_server = RedisServer::start();
    let mut procs = Procs(Vec::new());

    let api_port = free_port();
    let worker_port = free_port();
    let report = dir.join("report.jsonl");
    let env = start_api_and_worker(
        &mut procs,
        redis_server.url(),
        SECRET,
        (api_port, worker_port),
        (&dir, &report),
        Duration::from_secs(20),
    );
    let (worker_log, api_log) = (dir.join("worker.log"), dir.join("api.log"));

    // A token minted by the binary itself.
    let token = common::mint_token(
        SECRET,
        &["user-42", "--claims", r#"{"role":"admin","plan":"pro"}"#],
    );
    let auth = format!("Bearer {token}");
    let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    let r = http(
        api_port,
        "POST",
        "/signup",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("x-request-id", "rq-roundtrip-1"),
            ("traceparent", trace),
        ],
        r#"{"email":"ann@example.com","name":"Ann"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let signup: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(signup["referred_by"], "user-42");

    let mut lines = Vec::new();
    wait_for(
        "the task to run in the worker",
        Duration::from_secs(20),
        || {
            lines = report_lines(&report);
            !lines.is_empty()
        },
    );
    let seen = &lines[0];
    assert_eq!(seen["signup"]["email"], "ann@example.com");
    assert_eq!(seen["user_id"], "user-42");
    assert_eq!(seen["claims"]["role"], "admin");
    assert_eq!(seen["claims"]["plan"], "pro");
    assert_eq!(seen["claims"]["iss"], "https://hello.example");
    assert_eq!(seen["request_id"], "rq-roundtrip-1");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/signup");
    assert_eq!(seen["has_token"], true);
    let tp = seen["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "same trace: {tp}"
    );
    // It ran in the worker process, not inline in the API.
    let api_pid = procs.0[1].id();
    assert_ne!(seen["pid"].as_u64().unwrap() as u32, api_pid);
    assert_eq!(seen["pid"].as_u64().unwrap() as u32, procs.0[0].id());

    // Invalid signup: refused before the handler, nothing spawned.
    let r = http(
        api_port,
        "POST",
        "/signup",
        &[("content-type", "application/json")],
        r#"{"name":"x"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let e: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(e["error"], "INVALID_PARAMETER");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .starts_with("email"),
        "{e}"
    );

    // /me with the token; without, 401.
    let r = http(api_port, "GET", "/me", &[("authorization", &auth)], "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["user_id"],
        "user-42"
    );
    assert_eq!(http(api_port, "GET", "/me", &[], "").unwrap().status, 401);

    // Forged and tampered envelopes, pushed straight into the ready stream.
    let client = redis::Client::open(redis_server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys = QueueKeys::new("default");
    let envelope = |user: &str| {
        let args = serde_json::value::RawValue::from_string(
            json!({"id": "x", "email": format!("{user}@evil.test"), "name": null, "referred_by": user}).to_string(),
        )
        .unwrap();
        let ctx = Context {
            user_id: Some(user.to_string()),
            request_id: Some(format!("rq-{user}")),
            ..Context::default()
        };
        Envelope::new(
            "send_welcome_email_async",
            "default",
            Priority::Normal,
            args,
            ctx,
        )
    };
    let forged = Signer::new(b"not-the-secret").seal(&envelope("forger"));
    let genuine = Signer::new(SECRET.as_bytes()).seal(&envelope("victim"));
    let tampered = genuine.replace("\"victim\"", "\"admin1\"");
    assert_ne!(genuine, tampered);
    for m in [&forged, &tampered] {
        let _: String = redis::cmd("XADD")
            .arg(keys.ready(Priority::Normal))
            .arg("*")
            .arg(FIELD_MESSAGE)
            .arg(m)
            .query(&mut conn)
            .unwrap();
    }
    let dead_list = || {
        let out = Command::new(BIN)
            .args(["dead", "list", "--queue", "default", "--json"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PYM_LOG_FORMAT", "json")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect::<Vec<_>>()
    };
    wait_for("two dead letters", Duration::from_secs(20), || {
        dead_list().len() == 2
    });
    for d in dead_list() {
        assert_eq!(d["reason"], "bad_signature", "{d}");
    }
    // Neither ran.
    std::thread::sleep(Duration::from_millis(300));
    let lines = report_lines(&report);
    assert_eq!(
        lines.len(),
        1,
        "forged/tampered tasks must not run: {lines:?}"
    );

    // Logs: the worker's lines for the task carry the request id; no token anywhere.
    drop(procs);
    let wlog = std::fs::read_to_string(&worker_log).unwrap();
    let alog = std::fs::read_to_string(&api_log).unwrap();
    let task_lines: Vec<&str> = wlog
        .lines()
        .filter(|l| l.contains("sending welcome email"))
        .collect();
    assert!(!task_lines.is_empty(), "worker log:\n{wlog}");
    assert!(
        task_lines.iter().all(|l| l.contains("rq-roundtrip-1")),
        "{task_lines:?}"
    );
    assert!(alog.contains("rq-roundtrip-1"), "api log:\n{alog}");
    let sig = token.rsplit('.').next().unwrap();
    for (name, log) in [("worker", &wlog), ("api", &alog)] {
        assert!(
            !log.contains(&token) && !log.contains(sig),
            "{name} log leaks the token"
        );
        assert!(!log.contains(SECRET), "{name} log leaks the secret");
    }
}

/// Entry point of the greeter child process (see [`spawn_greeter`]): the
/// greeter binary, run by this test binary so no other build is needed.
#[test]
fn greeter_child_process() {
    if std::env::var_os("HELLO_TEST_GREETER").is_none() {
        return; // only meaningful when started by `spawn_greeter`
    }
    let _ = greeter::app().run_from(["greeter", "serve"]);
    std::process::exit(0);
}

/// greeter (as a child process) on `port`, appending what it saw to `report`.
fn spawn_greeter(port: u16, report: &Path, log: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "greeter_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HELLO_TEST_GREETER", "1")
        .env("PYM_PORT", port.to_string())
        .env("PYM_JWT_SECRET", SECRET)
        .env("PYM_LOG_FORMAT", "json")
        .env("GREETER_REPORT", report)
        .env_remove("PYM_CONFIG")
        // Not hello's directory: its ./pym-config.yaml would replace greeter's own.
        .current_dir(report.parent().unwrap())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// hello's welcome task calls greeter through the client generated from
/// greeter's spec: greeter sees the user id of hello's caller, the same
/// request id and the same trace. With greeter gone, the task retries,
/// then is dead-lettered with the client's error.
#[test]
fn a_task_calls_another_service_as_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let dir: PathBuf = dir.path().to_path_buf();
    let redis_server = RedisServer::start();
    let greeter_port = free_port();
    let greeter_report = dir.join("greeter.jsonl");
    let mut greeter = spawn_greeter(greeter_port, &greeter_report, &dir.join("greeter.log"));
    let mut procs = Procs(Vec::new());
    let (api_port, worker_port) = (free_port(), free_port());
    let report = dir.join("report.jsonl");
    let errors = dir.join("errors.jsonl");
    let env = vec![
        ("PYM_REDIS_URL", redis_server.url()),
        ("PYM_JWT_SECRET", SECRET.to_string()),
        ("PYM_PORT", api_port.to_string()),
        ("PYM_WORKER_PORT", worker_port.to_string()),
        ("HELLO_TASK_REPORT", report.display().to_string()),
        ("HELLO_ERROR_REPORT", errors.display().to_string()),
        (
            "PYM_API_GREETER_URL",
            format!("http://127.0.0.1:{greeter_port}"),
        ),
    ];
    procs
        .0
        .push(spawn_hello(&["worker"], &env, &dir.join("worker.log")));
    procs
        .0
        .push(spawn_hello(&["serve"], &env, &dir.join("api.log")));
    for (what, port) in [
        ("greeter", greeter_port),
        ("API", api_port),
        ("worker", worker_port),
    ] {
        wait_for(what, Duration::from_secs(20), || {
            http(port, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
        });
    }
    let out = Command::new(BIN)
        .args(["token", "user-7"])
        .env("PYM_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let signup = |request_id: &str| {
        let r = http(
            api_port,
            "POST",
            "/signup",
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {token}")),
                ("x-request-id", request_id),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
            ],
            r#"{"email":"ann@example.com","name":"Ann"}"#,
        )
        .unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
    };

    signup("rq-cross-1");
    let mut lines = Vec::new();
    wait_for("greeter's report", Duration::from_secs(20), || {
        lines = report_lines(&greeter_report);
        !lines.is_empty()
    });
    assert_eq!(
        lines[0],
        json!({
            "text": "Welcome, Ann!",
            "user_id": "user-7",
            "request_id": "rq-cross-1",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
        }),
        "greeter saw hello's caller, request and trace"
    );
    wait_for("hello's task report", Duration::from_secs(20), || {
        lines = report_lines(&report);
        !lines.is_empty()
    });
    assert_eq!(lines[0]["greeting"]["user_id"], "user-7", "{}", lines[0]);

    // greeter gone: the task retries (5 times, about 30 s), then is
    // dead-lettered with the client's error.
    let _ = greeter.kill();
    let _ = greeter.wait();
    signup("rq-cross-2");
    let dead_list = || {
        let out = Command::new(BIN)
            .args(["dead", "list", "--queue", "default", "--json"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect::<Vec<_>>()
    };
    let mut dead = Vec::new();
    wait_for("the dead letter", Duration::from_secs(90), || {
        dead = dead_list();
        !dead.is_empty()
    });
    let d = &dead[0];
    assert_eq!(d["task"], "send_welcome_email_async", "{d}");
    assert_eq!(d["attempts"], 6, "the first run and 5 retries: {d}");
    let error = d["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "failed 6 times; last error: SERVICE_UNAVAILABLE: greeter: POST /greetings: cannot connect"
        ) && error.ends_with("(4 attempts)"),
        "{error}"
    );
    assert_eq!(
        report_lines(&report).len(),
        1,
        "the second task never ran to the end"
    );
    // The service's error reporter heard of it once, with hello's caller.
    let reported = report_lines(&errors);
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0]["error_id"], d["id"]);
    assert_eq!(reported[0]["code"], "retries_exhausted");
    assert_eq!(reported[0]["user_id"], "user-7");
    assert_eq!(reported[0]["request_id"], "rq-cross-2");
}
