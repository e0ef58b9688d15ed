//! `POST /me/refresh` → `refresh_profile_async` on real processes (`hello
//! serve` + two `hello worker`s on a redis-server): one pending rebuild per
//! user (asking again answers the same task id) and at most 5 starts per
//! second across both workers. Prints first-to-last; asserts counts.
//!
//! Needs `redis-server` on PATH (Debian package `redis-server`).

mod common;

use common::{Procs, http, report_lines, spawn_hello, start_api_and_worker, wait_for};
use pym_runtime::testing::{RedisServer, free_port};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

const SECRET: &str = "refresh-secret-0123456789abcdefghijklmn";

fn token(user: &str) -> String {
    common::mint_token(SECRET, &[user])
}

/// `POST /me/refresh` as the bearer of `token`: the task id answered.
fn refresh(port: u16, token: &str) -> String {
    let auth = format!("Bearer {token}");
    let r = http(port, "POST", "/me/refresh", &[("authorization", &auth)], "").unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["task_id"].as_str().unwrap().to_owned()
}

#[test]
fn rebuilds_are_one_per_user_and_five_per_second_across_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_path_buf();
    let redis_server = RedisServer::start();
    let mut procs = Procs(Vec::new());
    let (api, worker, worker2) = (free_port(), free_port(), free_port());
    let report = dir.join("report.jsonl");
    let mut env = start_api_and_worker(
        &mut procs,
        redis_server.url(),
        SECRET,
        (api, worker),
        (&dir, &report),
        Duration::from_secs(20),
    );
    for (k, v) in &mut env {
        if *k == "PYM_WORKER_PORT" {
            *v = worker2.to_string();
        }
    }
    procs
        .0
        .push(spawn_hello(&["worker"], &env, &dir.join("worker2.log")));
    wait_for("second worker /readyz", Duration::from_secs(20), || {
        http(worker2, "GET", "/readyz", &[], "").is_ok_and(|r| r.status == 200)
    });

    let tokens: Vec<String> = (0..15).map(|i| token(&format!("user-{i}"))).collect();
    let ids: Vec<String> = tokens.iter().map(|t| refresh(api, t)).collect();
    // The last user's rebuild waits for its slot (5/s): asking again now
    // answers the pending one.
    assert_eq!(
        refresh(api, &tokens[14]),
        ids[14],
        "one pending rebuild per user"
    );
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 15);

    let rebuilds = || -> Vec<Value> {
        report_lines(&report)
            .into_iter()
            .filter(|l| l["task"] == "refresh_profile_async")
            .collect()
    };
    wait_for("15 rebuilds", Duration::from_secs(30), || {
        rebuilds().len() >= 15
    });
    std::thread::sleep(Duration::from_millis(500));
    let lines = rebuilds();
    assert_eq!(lines.len(), 15, "each user's rebuild ran once");
    let users: HashSet<_> = lines.iter().map(|l| l["user_id"].clone()).collect();
    assert_eq!(users.len(), 15);
    let mut starts: Vec<u64> = lines.iter().map(|l| l["at_ms"].as_u64().unwrap()).collect();
    starts.sort_unstable();
    let pids: HashSet<_> = lines.iter().map(|l| l["pid"].clone()).collect();
    println!(
        "15 rebuilds at 5/s on two workers: {} ms first to last, run by {} worker process(es)",
        starts[14] - starts[0],
        pids.len()
    );
    let first_second = starts.iter().filter(|&&t| t < starts[0] + 1000).count();
    assert!(
        first_second <= 6,
        "{first_second} rebuilds started in the first second, the limit is 5/s"
    );
}
