//! Recovery benchmark: how long the tasks of a worker killed with
//! `SIGKILL` wait before another worker starts them again, with the worker
//! registry's takeover (a worker silent for 3 s is dead) beside the lease
//! alone (the takeover off, as before #16), in one run, on one
//! redis-server.
//!
//! Each round queues `BENCH_N` tasks (default 2,000) of `BENCH_TASK_MS`
//! (default 200 ms) each; a child worker process (this binary again) and a
//! worker in this process (`BENCH_CONCURRENCY` each, default 64) drain
//! them; after 1 s the child is killed while it runs `BENCH_CONCURRENCY`
//! tasks. Reported: how many tasks the child was running, the time from the
//! kill to the restart of each of them on the other worker (p50, p100), the
//! duplicates (tasks that ran twice: at-least-once) and tasks lost (none
//! expected). Leases are the default 30 s.
//!
//! Run: `cargo bench -p pym-runtime --bench recovery`.

use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::workers::WorkerLiveness;
use pym_broker::{Broker, BrokerConfig, stats};
use pym_runtime::testing::RedisServer;
use pym_runtime::{Queue, TaskError, asynctask};
use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "bench-secret";
const QUEUE: &str = "recovery";
/// Where the child process finds Redis, and that it is the child.
const ENV_CHILD: &str = "BENCH_RECOVERY_CHILD";
/// The child's takeover: `on` or `off`.
const ENV_TAKEOVER: &str = "BENCH_RECOVERY_TAKEOVER";
const STARTS: &str = "bench:recovery:starts";
const DONES: &str = "bench:recovery:dones";

static REDIS: OnceLock<redis::Client> = OnceLock::new();

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Append `<n> <pid> <ms>` to `list`.
async fn record(list: &str, n: u64) -> Result<(), TaskError> {
    let client = REDIS.get().expect("set in main");
    let mut c = client.get_multiplexed_async_connection().await?;
    let line = format!("{n} {} {}", std::process::id(), now_ms());
    let _: i64 = redis::cmd("RPUSH")
        .arg(list)
        .arg(line)
        .query_async(&mut c)
        .await?;
    Ok(())
}

/// Records its start, sleeps `ms`, records its end.
#[asynctask(queue = "recovery", timeout_secs = 60)]
async fn held(n: u64, ms: u64) -> Result<(), TaskError> {
    record(STARTS, n).await?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    record(DONES, n).await
}

fn config(name: &str, takeover: bool) -> WorkerConfig {
    let liveness = if takeover {
        WorkerLiveness::default()
    } else {
        // Never dead in a benchmark's time: the lease alone brings tasks back.
        WorkerLiveness {
            dead_after: Duration::from_secs(86_400),
            ..WorkerLiveness::default()
        }
    };
    WorkerConfig {
        queues: vec![QUEUE.into()],
        concurrency: env_u64("BENCH_CONCURRENCY", 64) as usize,
        batch: 64,
        listen: None,
        name: name.into(),
        liveness,
        ..WorkerConfig::default()
    }
}

/// A worker until the process is killed.
async fn child(url: &str) {
    let takeover = std::env::var(ENV_TAKEOVER).is_ok_and(|v| v == "on");
    let broker = Broker::connect(&BrokerConfig::new(url, SECRET))
        .await
        .unwrap();
    let worker = Worker::new(broker, config("doomed", takeover)).unwrap();
    worker.run(std::future::pending()).await.unwrap();
}

fn spawn_child(url: &str, takeover: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(ENV_CHILD, url)
        .env(ENV_TAKEOVER, if takeover { "on" } else { "off" })
        .spawn()
        .unwrap()
}

/// `<n> <pid> <ms>` lines of `list`.
async fn lines(c: &mut redis::aio::MultiplexedConnection, list: &str) -> Vec<(u64, u32, u64)> {
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(list)
        .arg(0)
        .arg(-1)
        .query_async(c)
        .await
        .unwrap();
    raw.iter()
        .filter_map(|l| {
            let mut w = l.split(' ').map(str::parse::<u64>);
            Some((w.next()?.ok()?, w.next()?.ok()? as u32, w.next()?.ok()?))
        })
        .collect()
}

struct Outcome {
    held: usize,
    restart_ms: Vec<u64>,
    duplicates: usize,
    lost: usize,
}

/// One round: queue, drain with the child and a local worker, kill the
/// child after 1 s, wait for the queue to drain.
async fn round(url: &str, takeover: bool) -> Outcome {
    let client = REDIS.get().unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    let n = env_u64("BENCH_N", 2_000);
    let ms = env_u64("BENCH_TASK_MS", 200);
    let bc = BrokerConfig::new(url, SECRET);
    let broker = Broker::connect(&bc).await.unwrap();
    let q = Queue::redis(broker.clone());
    for i in 0..n {
        held::spawn(&q, (i, ms)).await.unwrap();
    }
    let mut doomed = spawn_child(url, takeover);
    let local = Worker::new(broker.clone(), config("rescuer", takeover)).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let wh = tokio::spawn(local.run(async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    doomed.kill().unwrap();
    let killed = now_ms();
    doomed.wait().unwrap();
    let child_pid = doomed.id();
    loop {
        let s = stats::queue_stats(&mut broker.conn(), QUEUE).await.unwrap();
        if s.work() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tx.send(());
    wh.await.unwrap().unwrap();

    let starts = lines(&mut c, STARTS).await;
    let dones = lines(&mut c, DONES).await;
    let finished_by_child: std::collections::HashSet<u64> = dones
        .iter()
        .filter(|(_, pid, _)| *pid == child_pid)
        .map(|(n, _, _)| *n)
        .collect();
    // Running in the child when it died: started there, never finished there.
    let held: Vec<u64> = starts
        .iter()
        .filter(|(n, pid, _)| *pid == child_pid && !finished_by_child.contains(n))
        .map(|(n, _, _)| *n)
        .collect();
    let mut restart_ms = Vec::new();
    for n in &held {
        if let Some(t) = starts
            .iter()
            .filter(|(m, pid, t)| m == n && *pid != child_pid && *t >= killed)
            .map(|(_, _, t)| *t)
            .min()
        {
            restart_ms.push(t - killed);
        }
    }
    let mut runs: HashMap<u64, usize> = HashMap::new();
    for (n, _, _) in &starts {
        *runs.entry(*n).or_default() += 1;
    }
    let done: std::collections::HashSet<u64> = dones.iter().map(|(n, _, _)| *n).collect();
    Outcome {
        held: held.len(),
        duplicates: runs.values().filter(|&&r| r > 1).count(),
        lost: (0..n).filter(|i| !done.contains(i)).count(),
        restart_ms,
    }
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    if let Ok(url) = std::env::var(ENV_CHILD) {
        REDIS.set(redis::Client::open(url.as_str()).unwrap()).ok();
        child(&url).await;
        return;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    REDIS.set(redis::Client::open(url.as_str()).unwrap()).ok();
    println!(
        "\n{:<28} {:>6} {:>12} {:>13} {:>10} {:>5}",
        "recovery after kill -9", "held", "restart p50", "restart p100", "duplicates", "lost"
    );
    for (label, takeover) in [
        ("registry takeover (3 s)", true),
        ("lease alone (30 s)", false),
    ] {
        eprintln!("round: {label}…");
        let mut o = round(&url, takeover).await;
        let restarted = o.restart_ms.len();
        println!(
            "{:<28} {:>6} {:>10.1} s {:>11.1} s {:>10} {:>5}{}",
            label,
            o.held,
            pct(&mut o.restart_ms, 0.5) as f64 / 1000.0,
            pct(&mut o.restart_ms, 1.0) as f64 / 1000.0,
            o.duplicates,
            o.lost,
            if restarted < o.held {
                format!(
                    " ({} of the held tasks never restarted)",
                    o.held - restarted
                )
            } else {
                String::new()
            }
        );
    }
}
