//! The dashboard in headless Chromium (Debian's `chromium` and
//! `chromium-driver`) against real `hello serve`, `hello worker` and
//! redis-server: sign in with a token, watch the `default` queue fill as
//! signups arrive, look a tracked task up by id and cancel it, replay a
//! dead letter and see it run, and check that a
//! read-only token gets no enabled button. Screenshots are saved in
//! `$CARGO_TARGET_TMPDIR/dashboard/`.

mod common;

use common::{Procs, http, report_lines, spawn_hello, wait_for};
use fantoccini::{Client, ClientBuilder, Locator};
use pym_runtime::testing::{RedisServer, free_port};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "dashboard-test-secret-32-bytes-long!!";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page may take to show a change (it polls every 2 s).
const SEEN_WITHIN: Duration = Duration::from_secs(20);

fn token(user: &str, role: &str) -> String {
    common::mint_token(
        SECRET,
        &[user, "--claims", &json!({"pym_admin": role}).to_string()],
    )
}

/// Chromium, headless and offline, through chromedriver on `port`.
async fn browser(procs: &mut Procs, dir: &Path) -> Client {
    let port = free_port();
    let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
    procs.0.push(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)"),
    );
    let profile = dir.join("profile");
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let caps = json!({"goog:chromeOptions": {"binary": CHROMIUM, "args": args}});
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) if t0.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    }
}

/// Polls the page with `script` (its return value, as text) until `ok`.
async fn seen(c: &Client, what: &str, script: &str, ok: impl Fn(&str) -> bool) -> String {
    let t0 = Instant::now();
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        let text = match &v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if ok(&text) {
            return text;
        }
        assert!(
            t0.elapsed() < SEEN_WITHIN,
            "the page did not show {what}: last {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cell(queue: &str, class: &str) -> String {
    format!(
        "const td = document.querySelector('tr[data-queue=\"{queue}\"] td.{class}'); return td ? td.textContent : '';"
    )
}

async fn screenshot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Click the element of id `id`.
async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/_pym/")).await.unwrap();
    c.execute("sessionStorage.clear(); return 1;", vec![])
        .await
        .unwrap();
    c.goto(&format!("{base}/_pym/")).await.unwrap();
    let input = c.wait().for_element(Locator::Id("token")).await.unwrap();
    input.send_keys(token).await.unwrap();
    click(c, "login").await;
}

fn signup(api: u16, n: usize) {
    let body = format!(r#"{{"email":"user{n}@example.com"}}"#);
    let r = http(
        api,
        "POST",
        "/signup",
        &[("content-type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
}

/// `hello worker` with `extra` env; returns when it answers /readyz.
fn worker(procs: &mut Procs, env: &[(&str, String)], extra: &[(&str, String)], log: PathBuf) {
    let port = free_port();
    let mut env = env.to_vec();
    env.push(("PYM_WORKER_PORT", port.to_string()));
    env.extend(extra.iter().cloned());
    procs.0.push(spawn_hello(&["worker"], &env, &log));
    wait_for("hello worker", Duration::from_secs(20), || {
        http(port, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_in_headless_chromium() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let redis = RedisServer::start();
    let api = free_port();
    let report = dir.join("report.jsonl");
    let env = vec![
        ("PYM_REDIS_URL", redis.url()),
        ("PYM_JWT_SECRET", SECRET.to_string()),
        ("PYM_PORT", api.to_string()),
        ("PYM_ADMIN_ENABLED", "true".to_string()),
        ("PYM_LOG_FORMAT", "json".to_string()),
        ("HELLO_TASK_REPORT", report.display().to_string()),
    ];
    let mut procs = Procs(Vec::new());
    procs
        .0
        .push(spawn_hello(&["serve"], &env, &dir.join("api.log")));
    wait_for("hello serve", Duration::from_secs(20), || {
        http(api, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    });
    let base = format!("http://127.0.0.1:{api}");
    let c = browser(&mut procs, &dir).await;

    // Sign in (operate); no worker yet, so signups wait in `default`.
    sign_in(&c, &base, &token("otto", "operate")).await;
    seen(
        &c,
        "who signed in",
        "return document.getElementById('who').textContent;",
        |t| t == "otto (operate)",
    )
    .await;
    signup(api, 1);
    seen(&c, "1 ready", &cell("default", "ready"), |t| t == "1").await;
    for n in 2..=4 {
        signup(api, n);
    }
    seen(&c, "the count rise to 4", &cell("default", "ready"), |t| {
        t == "4"
    })
    .await;
    screenshot(&c, &dir, "1-overview").await;

    // A tracked task by id: shown queued, cancelled from the page, shown
    // cancelled (no worker runs yet, so it has not started).
    let auth = format!("Bearer {}", token("ursula", "none"));
    let r = http(api, "POST", "/me/refresh", &[("authorization", &auth)], "").unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id: Value = serde_json::from_str(&r.body).unwrap();
    let id = id["task_id"].as_str().unwrap().to_string();
    click(&c, "tab-delayed").await;
    let input = c.wait().for_element(Locator::Id("task-id")).await.unwrap();
    input.send_keys(&id).await.unwrap();
    click(&c, "task-show").await;
    let note = "return document.getElementById('task-note').textContent;";
    seen(&c, "the task queued", note, |t| {
        t == "refresh_profile_async: queued"
    })
    .await;
    click(&c, "task-cancel").await;
    seen(&c, "the cancel's outcome", note, |t| {
        t.starts_with("cancel: before start (action ")
    })
    .await;
    let record = "return document.getElementById('task-record').textContent;";
    seen(&c, "the record cancelled", record, |t| {
        t.contains("\"state\": \"cancelled\"")
    })
    .await;
    screenshot(&c, &dir, "1-task-cancelled").await;

    // A worker whose greeter URL is wrong dead-letters all four.
    let bad = [("PYM_API_GREETER_URL", "not a url".to_string())];
    worker(&mut procs, &env, &bad, dir.join("bad-worker.log"));
    seen(&c, "4 dead", &cell("default", "dead"), |t| t == "4").await;
    let mut bad_worker = procs.0.pop().unwrap();
    bad_worker.kill().unwrap();
    bad_worker.wait().unwrap();
    assert!(report_lines(&report).is_empty());

    // A good worker; replay one dead letter from the page: it runs.
    worker(&mut procs, &env, &[], dir.join("worker.log"));
    click(&c, "tab-dead").await;
    let rows = "return document.querySelectorAll('#dead-list tbody tr').length;";
    seen(&c, "4 dead letters listed", rows, |t| t == "4").await;
    screenshot(&c, &dir, "2-dead-letters").await;
    let replay = c
        .find(Locator::Css("#dead-list tbody tr button.replay"))
        .await
        .unwrap();
    assert!(replay.is_enabled().await.unwrap());
    replay.click().await.unwrap();
    seen(
        &c,
        "the replay's action id",
        "return document.getElementById('action').textContent;",
        |t| t.starts_with("done: 1 (action "),
    )
    .await;
    wait_for("the replayed task to run", SEEN_WITHIN, || {
        report_lines(&report).len() == 1
    });
    seen(&c, "3 dead letters listed", rows, |t| t == "3").await;
    seen(&c, "3 dead", &cell("default", "dead"), |t| t == "3").await;
    screenshot(&c, &dir, "3-replayed").await;

    // Traffic on the good worker: the rates and the sparkline fill in.
    click(&c, "tab-overview").await;
    for n in 10..40 {
        signup(api, n);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    wait_for("30 more tasks run", SEEN_WITHIN, || {
        report_lines(&report).len() == 31
    });
    seen(
        &c,
        "a completion rate",
        &cell("default", "completed"),
        |t| t.starts_with(|ch: char| ch.is_ascii_digit()),
    )
    .await;
    seen(&c, "an empty queue", &cell("default", "ready"), |t| {
        t == "0"
    })
    .await;
    screenshot(&c, &dir, "0-overview-with-traffic").await;

    // Read-only: the buttons are there, none enabled.
    click(&c, "logout").await;
    sign_in(&c, &base, &token("rita", "read")).await;
    seen(
        &c,
        "the reader",
        "return document.getElementById('who').textContent;",
        |t| t == "rita (read)",
    )
    .await;
    click(&c, "tab-dead").await;
    seen(&c, "3 dead letters listed", rows, |t| t == "3").await;
    let counts = "return [document.querySelectorAll('button.operate').length, \
                  document.querySelectorAll('button.operate:not([disabled])').length].join(',');";
    let t = seen(&c, "the operate buttons", counts, |t| t.starts_with("9,")).await;
    assert_eq!(t, "9,0", "a read-only token has enabled buttons");
    screenshot(&c, &dir, "4-read-only").await;
    c.close().await.unwrap();
    drop(redis);
}
