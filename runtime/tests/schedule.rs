//! Periodic tasks on a real redis-server: three worker processes fire each
//! tick of a 1 s schedule exactly once; concurrent askers racing on one
//! tick enqueue it once; missed ticks after a downtime follow each
//! schedule's policy; `PYM_SCHEDULES` overrides change and disable a
//! schedule; `stats` sees next fire time and last run.

use pym_broker::schedule::{self, Missed, Periodic, ResolvedSchedule};
use pym_broker::worker::{Worker, WorkerConfig, WorkerError};
use pym_broker::{Broker, BrokerConfig, keys};
use pym_core::Priority;
use pym_runtime::testing::RedisServer;
use pym_runtime::{TaskError, Tick, asynctask};
use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &str = "test-secret";
const CHILD_REDIS: &str = "PYM_TEST_SCHEDULE_REDIS";

/// Every second; counts its runs per tick in the Redis of the child
/// processes (`runs` hash: tick ms → runs).
#[asynctask(queue = "every", cron = "* * * * * *")]
async fn every_second(tick: Tick) -> Result<(), TaskError> {
    let url = std::env::var(CHILD_REDIS).map_err(TaskError::fatal)?;
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let _: i64 = redis::cmd("HINCRBY")
        .arg("runs")
        .arg(tick.as_millis())
        .arg(1)
        .query_async(&mut c)
        .await?;
    Ok(())
}

/// Runs of the in-process tasks, by task name: the ticks they ran for.
static RUNS: LazyLock<Mutex<HashMap<&'static str, Vec<u64>>>> = LazyLock::new(Default::default);

fn ran(task: &'static str, tick: Option<Tick>) -> Result<(), TaskError> {
    let t = tick.map_or(0, Tick::as_millis);
    RUNS.lock().unwrap().entry(task).or_default().push(t);
    Ok(())
}

fn runs(task: &str) -> Vec<u64> {
    RUNS.lock().unwrap().get(task).cloned().unwrap_or_default()
}

#[asynctask(queue = "missed", cron = "0 0 * * * *", missed = "skip")]
async fn hourly_skip(tick: Tick) -> Result<(), TaskError> {
    ran("hourly_skip", Some(tick))
}

#[asynctask(queue = "missed", cron = "0 0 * * * *")]
async fn hourly_once(tick: Tick) -> Result<(), TaskError> {
    ran("hourly_once", Some(tick))
}

#[asynctask(
    queue = "missed",
    cron = "0 * * * *",
    missed = "all:3",
    tz = "Europe/Paris"
)]
async fn hourly_all_3(tick: Tick) -> Result<(), TaskError> {
    ran("hourly_all_3", Some(tick))
}

/// Nightly in code; the override test runs it every second, then disables it.
#[asynctask(queue = "ovr", cron = "0 0 3 * * *", tz = "Europe/Paris")]
async fn overridable() -> Result<(), TaskError> {
    ran("overridable", None)
}

fn cfg(queues: &[&str], name: &str) -> WorkerConfig {
    WorkerConfig {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        concurrency: 4,
        name: name.to_owned(),
        listen: None,
        block: Duration::from_millis(200),
        grace_period: Duration::from_secs(2),
        ..WorkerConfig::default()
    }
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), WorkerError>>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.await.unwrap().unwrap();
    }
}

async fn start_worker(url: &str, config: WorkerConfig) -> Result<Running, WorkerError> {
    let worker = Worker::connect(&BrokerConfig::new(url, SECRET), config).await?;
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    Ok(Running {
        stop: Some(tx),
        handle,
    })
}

async fn broker(url: &str) -> Broker {
    Broker::connect(&BrokerConfig::new(url, SECRET))
        .await
        .unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Entry point of a child worker process of the three-process test.
#[tokio::test]
async fn child_schedule_worker() {
    let Ok(url) = std::env::var(CHILD_REDIS) else {
        return; // only meaningful when started by `three_worker_processes_...`
    };
    let name = std::env::var("PYM_TEST_CHILD_NAME").unwrap_or_else(|_| "child".into());
    let w = start_worker(&url, cfg(&["every"], &name)).await.unwrap();
    let _ = w.handle.await;
}

fn child_worker(url: &str, name: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_schedule_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_REDIS, url)
        .env("PYM_TEST_CHILD_NAME", name)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn three_worker_processes_run_each_tick_of_a_1s_schedule_exactly_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut children: Vec<_> = (0..3)
        .map(|i| child_worker(&url, &format!("sched-{i}")))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = now_ms();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let until = now_ms();
    // Let the last ticks of the window run.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for c in &mut children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let runs: BTreeMap<u64, u32> = redis::cmd("HGETALL")
        .arg("runs")
        .query_async(&mut c)
        .await
        .unwrap();
    let window: Vec<(u64, u32)> = runs
        .iter()
        .filter(|(t, _)| (from..=until).contains(*t))
        .map(|(t, n)| (*t, *n))
        .collect();
    let want: Vec<u64> = (from.div_ceil(1000)..=until / 1000)
        .map(|s| s * 1000)
        .collect();
    let got: Vec<u64> = window.iter().map(|(t, _)| *t).collect();
    assert_eq!(got, want, "every tick of the 10 s window ran (none missed)");
    let twice: Vec<_> = window.iter().filter(|(_, n)| *n != 1).collect();
    assert!(twice.is_empty(), "ticks not run exactly once: {twice:?}");
    println!(
        "three worker processes, 1 s schedule: {} ticks in {:.1} s, each run once",
        window.len(),
        (until - from) as f64 / 1000.0
    );
}

fn resolved(name: &str, cron: &'static str, missed: Missed) -> ResolvedSchedule {
    let p = Periodic {
        cron,
        tz: "UTC",
        missed,
        takes_tick: true,
    };
    schedule::resolve(&[(name, p)], &Default::default())
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn twenty_askers_racing_on_one_tick_enqueue_it_once() {
    let redis = RedisServer::start();
    let b = broker(&redis.url()).await;
    let r = resolved("race", "* * * * * *", Missed::Once);
    let now = now_ms();
    schedule::upsert(&b, "race", &r, now).await.unwrap();
    let tick = r.schedule.next_after(now).unwrap();
    for (round, tick) in [tick, tick + 1000].into_iter().enumerate() {
        let askers = (0..20).map(|_| {
            let (b, r) = (b.clone(), r.clone());
            tokio::spawn(async move {
                let next = r.schedule.next_after(tick);
                schedule::fire(&b, "race", (&r, Priority::Normal), tick, true, next)
                    .await
                    .unwrap()
            })
        });
        let fired = futures::future::join_all(askers)
            .await
            .into_iter()
            .filter(|f| *f.as_ref().unwrap())
            .count();
        assert_eq!(fired, 1, "round {round}: one asker fired tick {tick}");
        let len: u64 = redis::cmd("XLEN")
            .arg(keys::QueueKeys::new("race").ready(Priority::Normal))
            .query_async(&mut b.conn())
            .await
            .unwrap();
        assert_eq!(len, round as u64 + 1, "round {round}: one task per tick");
    }
    // A tick older than the last decided one never fires again.
    let late = schedule::fire(&b, "race", (&r, Priority::Normal), tick, true, None);
    assert!(!late.await.unwrap());
    let info = schedule::list(&mut b.conn(), "race").await.unwrap();
    assert_eq!(info[0].last_run_ms, Some(tick + 1000));
    assert_eq!(info[0].next_ms, r.schedule.next_after(tick + 1000));
}

/// Sets the last tick of `names` on `queue` back to `at` (a downtime).
async fn rewind(b: &Broker, queue: &str, names: &[&str], at: u64) {
    for n in names {
        let _: () = redis::cmd("HSET")
            .arg(keys::ScheduleKeys::new(queue).last)
            .arg(n)
            .arg(at)
            .query_async(&mut b.conn())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn missed_ticks_after_a_downtime_follow_each_schedule_s_policy() {
    // Not within the on-time grace of an hour's first tick.
    while now_ms() % 3_600_000 < 15_000 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let b = broker(&url).await;
    let names = ["hourly_skip", "hourly_once", "hourly_all_3"];
    // First start: the schedules are new and start from now.
    let w = start_worker(&url, cfg(&["missed"], "m1")).await.unwrap();
    let info = loop {
        let info = schedule::list(&mut b.conn(), "missed").await.unwrap();
        if info.len() == 3 {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    w.stop().await;
    assert!(info.iter().all(|i| i.last_run_ms.is_none()), "{info:?}");
    // Five hours down.
    let now = now_ms();
    rewind(&b, "missed", &names, now - 5 * 3_600_000).await;
    let hour = |k: u64| (now / 3_600_000 - k) * 3_600_000;
    let w = start_worker(&url, cfg(&["missed"], "m2")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs("hourly_once").is_empty() || runs("hourly_all_3").len() < 3 {
        assert!(Instant::now() < deadline, "missed ticks did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.stop().await;
    assert_eq!(
        runs("hourly_skip"),
        Vec::<u64>::new(),
        "skip runs no missed tick"
    );
    assert_eq!(runs("hourly_once"), [hour(0)], "once runs the newest");
    let mut all = runs("hourly_all_3");
    all.sort_unstable();
    assert_eq!(all, [hour(2), hour(1), hour(0)], "all:3 runs the newest 3");
    // Every schedule advanced past the downtime: nothing more is pending.
    let last = schedule::last_ticks(&b, "missed", &names).await.unwrap();
    assert_eq!(last, [Some(hour(0)); 3]);
}

#[tokio::test]
async fn overrides_change_then_disable_a_schedule_and_stats_show_it() {
    let redis = RedisServer::start();
    let url = redis.url();
    let b = broker(&url).await;
    let every_second: schedule::Overrides = schedule::parse_overrides(
        r#"{"overridable": {"cron": "* * * * * *", "tz": "UTC"}}"#,
        "T",
    )
    .unwrap();
    let w = start_worker(
        &url,
        WorkerConfig {
            schedules: every_second,
            ..cfg(&["ovr"], "o1")
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while runs("overridable").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the overridden schedule did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info = schedule::list(&mut b.conn(), "ovr").await.unwrap();
    assert_eq!(
        (info[0].def.cron.as_str(), info[0].def.tz.as_str()),
        ("* * * * * *", "UTC")
    );
    assert!(info[0].def.enabled && info[0].next_ms.is_some() && info[0].last_run_ms.is_some());
    w.stop().await;

    let off = schedule::parse_overrides(r#"{"overridable": {"enabled": false}}"#, "T").unwrap();
    let w = start_worker(
        &url,
        WorkerConfig {
            schedules: off,
            ..cfg(&["ovr"], "o2")
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = schedule::list(&mut b.conn(), "ovr").await.unwrap();
        if !info[0].def.enabled {
            assert_eq!(
                info[0].next_ms, None,
                "a disabled schedule has no next tick"
            );
            assert_eq!(info[0].def.cron, "0 0 3 * * *", "the declared cron is back");
            break;
        }
        assert!(Instant::now() < deadline, "the schedule was not disabled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = runs("overridable").len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        runs("overridable").len(),
        before,
        "a disabled schedule does not fire"
    );
    w.stop().await;

    // A bad override stops the worker at start, naming the schedule.
    for (json, want) in [
        (
            r#"{"nightly": {"enabled": false}}"#,
            "\"nightly\": no periodic task of that name",
        ),
        (
            r#"{"overridable": {"cron": "61 * * * *"}}"#,
            "\"overridable\": cron expression",
        ),
        (
            r#"{"overridable": {"tz": "Europe/Pariss"}}"#,
            "not an IANA time zone name",
        ),
    ] {
        let o = schedule::parse_overrides(json, "T").unwrap();
        let config = WorkerConfig {
            schedules: o,
            ..cfg(&["ovr"], "bad")
        };
        let Err(e) = start_worker(&url, config).await else {
            panic!("{json} was accepted");
        };
        assert!(e.to_string().contains(want), "{json}: {e}");
    }
}
