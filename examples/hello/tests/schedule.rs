//! hello's periodic task `nightly_cleanup` on real processes: two `hello
//! worker` processes, its schedule overridden through `PYM_SCHEDULES` to
//! every second, run each tick once between them; `hello stats
//! --schedules --json` shows the override, the next tick and the last run.

mod common;

use common::{BIN, Procs, report_lines, spawn_hello, wait_for};
use pym_runtime::testing::{RedisServer, free_port};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn nightly_cleanup_overridden_to_every_second_runs_each_tick_once_on_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let report = dir.path().join("report.jsonl");
    let env = |port: u16| {
        vec![
            ("PYM_REDIS_URL", redis.url()),
            ("PYM_JWT_SECRET", "s".repeat(32)),
            ("PYM_WORKER_PORT", port.to_string()),
            ("HELLO_TASK_REPORT", report.display().to_string()),
            (
                "PYM_SCHEDULES",
                r#"{"nightly_cleanup": {"cron": "* * * * * *", "tz": "UTC"}}"#.to_string(),
            ),
        ]
    };
    let mut procs = Procs(Vec::new());
    for i in 0..2 {
        let log = dir.path().join(format!("worker{i}.log"));
        procs
            .0
            .push(spawn_hello(&["worker"], &env(free_port()), &log));
    }
    let ticks = || {
        report_lines(&report)
            .iter()
            .filter(|l| l["task"] == "nightly_cleanup")
            .map(|l| l["tick"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    wait_for("five ticks", Duration::from_secs(30), || ticks().len() >= 5);
    let mut per_tick: BTreeMap<u64, u32> = BTreeMap::new();
    for t in ticks() {
        *per_tick.entry(t).or_default() += 1;
    }
    assert!(
        per_tick.values().all(|n| *n == 1),
        "a tick ran twice: {per_tick:?}"
    );
    let out = std::process::Command::new(BIN)
        .args(["stats", "--schedules", "--json"])
        .env("PYM_REDIS_URL", redis.url())
        .env("PYM_JWT_SECRET", "s".repeat(32))
        .env_remove("PYM_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v.as_array().unwrap()[0];
    assert_eq!(s["task"], "nightly_cleanup");
    assert_eq!(
        (s["cron"].as_str(), s["tz"].as_str()),
        (Some("* * * * * *"), Some("UTC"))
    );
    assert_eq!(s["missed"], "once");
    assert!(
        s["next_ms"].as_u64().is_some() && s["last_run_ms"].as_u64().is_some(),
        "{s}"
    );
}
