//! Task benchmark: one run, one redis-server, pym side by side with
//! redis-benchmark (the ceiling) and Celery 5 (if `python3 -c 'import celery'`
//! works). Run: `cargo bench -p pym-runtime --bench tasks` (env BENCH_N,
//! BENCH_CONCURRENCY, BENCH_BACKLOG to change sizes; BENCH_BACKLOG=0 skips
//! the 1,000,000-task backlog; BENCH_ONLY=enqueue,consume,latency,delay,
//! backlog,celery runs only the phases named; BENCH_WORKER_CONCURRENCY and
//! BENCH_BATCH override the consuming worker's settings; the OTEL_* settings
//! export spans, as `serve` and `worker` do).

use pym_broker::envelope::Envelope;
use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{Broker, BrokerConfig, stats};
use pym_runtime::testing::RedisServer;
use pym_runtime::{Priority, Queue, TaskError, asynctask};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "bench-secret";

static DONE: AtomicU64 = AtomicU64::new(0);
static LATENCIES_US: LazyLock<Mutex<Vec<u64>>> = LazyLock::new(|| Mutex::new(Vec::new()));

#[asynctask(queue = "bench")]
async fn noop(_n: u64) -> Result<(), TaskError> {
    DONE.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Records how late it started relative to `due_us` (µs since the epoch).
#[asynctask(queue = "probe")]
async fn probe(due_us: u64) -> Result<(), TaskError> {
    let late = now_us().saturating_sub(due_us);
    LATENCIES_US.lock().unwrap().push(late);
    Ok(())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

fn redis_benchmark(port: u16, clients: usize, n: usize) -> f64 {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "lpush",
            "-q",
        ])
        .args(["-c", &clients.to_string(), "-n", &n.to_string()])
        .output()
        .expect("redis-benchmark (Debian package redis-tools) is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    // Progress lines end in '\r'; the result reads
    // "LPUSH: 151515.16 requests per second, p50=0.175 msec".
    text.split(['\r', '\n'])
        .find(|l| l.contains("requests per second"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|w| w.parse().ok())
        .unwrap_or(f64::NAN)
}

fn worker_config(queue: &str, concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        queues: vec![queue.into()],
        concurrency: env_usize("BENCH_WORKER_CONCURRENCY", concurrency),
        batch: env_usize("BENCH_BATCH", 512),
        listen: None,
        name: format!("bench-{queue}"),
        ..WorkerConfig::default()
    }
}

async fn wait_drained(broker: &Broker, queue: &str) {
    loop {
        let s = stats::queue_stats(&mut broker.conn(), queue).await.unwrap();
        if s.work() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Row(&'static str, String);

/// True unless BENCH_ONLY is set and does not name `phase`.
fn phase(phase: &str) -> bool {
    match std::env::var("BENCH_ONLY") {
        Ok(only) if !only.is_empty() => only.split(',').any(|p| p.trim() == phase),
        _ => true,
    }
}

fn main() {
    // With OTEL_EXPORTER_OTLP_ENDPOINT set, spans are exported as `serve`
    // and `worker` export them (the cost of tracing every task).
    let _spans = pym_trace::exporter::init("bench").expect("the OTEL_* settings");
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    // cargo bench passes --bench; ignore arguments.
    let n = env_usize("BENCH_N", 500_000);
    let clients = env_usize("BENCH_CONCURRENCY", 50);
    let backlog = env_usize("BENCH_BACKLOG", 1_000_000);
    let redis = RedisServer::start();
    let url = redis.url();
    let bc = BrokerConfig::new(&url, SECRET);
    let broker = Broker::connect(&bc).await.unwrap();
    let q = Queue::redis(broker.clone());
    let mut rows = Vec::new();

    if phase("enqueue") || phase("consume") {
        eprintln!("redis-benchmark LPUSH, {clients} clients…");
        let lpush = redis_benchmark(redis.port(), clients, n);
        rows.push(Row(
            "redis-benchmark LPUSH (ceiling)",
            format!("{lpush:.0} ops/s ({clients} clients)"),
        ));

        // Enqueue: `clients` concurrent callers, each one spawn at a time.
        eprintln!("pym enqueue {n} tasks one at a time from {clients} concurrent callers…");
        let t0 = Instant::now();
        let per = n / clients;
        let mut handles = Vec::new();
        for c in 0..clients {
            let q = q.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per {
                    noop::spawn(&q, (c * per + i) as u64).await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let enq = (per * clients) as f64 / t0.elapsed().as_secs_f64();
        rows.push(Row(
            "pym enqueue, one at a time",
            format!("{enq:.0} tasks/s ({:.0}% of LPUSH)", 100.0 * enq / lpush),
        ));

        // Consume the backlog just enqueued with one worker process.
        eprintln!(
            "pym consume {} queued no-op tasks with one worker…",
            per * clients
        );
        let worker = Worker::new(broker.clone(), worker_config("bench", 1024)).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t0 = Instant::now();
        let wh = tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        wait_drained(&broker, "bench").await;
        let consume = (per * clients) as f64 / t0.elapsed().as_secs_f64();
        rows.push(Row(
            "pym consume, one worker (at-least-once)",
            format!("{consume:.0} tasks/s"),
        ));
        let _ = tx.send(());
        wh.await.unwrap().unwrap();
    }

    if phase("latency") || phase("delay") {
        // Enqueue-to-start latency on an idle worker.
        eprintln!("pym enqueue-to-start latency…");
        let worker = Worker::new(broker.clone(), worker_config("probe", 64)).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let wh = tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..2000 {
            probe::spawn(&q, now_us()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        wait_drained(&broker, "probe").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut lat = std::mem::take(&mut *LATENCIES_US.lock().unwrap());
        let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
        rows.push(Row(
            "pym enqueue→start latency",
            format!("p50 {p50:.3} ms, p99 {p99:.3} ms ({} samples)", lat.len()),
        ));

        // Delay firing error: tasks due at spread-out times, measured late-ness.
        eprintln!("pym delay firing error…");
        let mut expected = 0;
        for i in 0..1000u64 {
            let delay = Duration::from_millis(100 + (i * 7919) % 3000);
            let due = now_us() + delay.as_micros() as u64;
            probe::spawn_in(&q, delay, due).await.unwrap();
            expected += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while LATENCIES_US.lock().unwrap().len() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut late = std::mem::take(&mut *LATENCIES_US.lock().unwrap());
        let (d50, d99, dmax) = (
            pct(&mut late, 0.5),
            pct(&mut late, 0.99),
            pct(&mut late, 1.0),
        );
        rows.push(Row(
            "pym delay firing error (late by)",
            format!(
                "p50 {d50:.3} ms, p99 {d99:.3} ms, max {dmax:.3} ms ({} samples)",
                late.len()
            ),
        ));
        let _ = tx.send(());
        wh.await.unwrap().unwrap();
    }

    // A large backlog: enqueue in pipelined batches, then drain.
    if backlog > 0 && phase("backlog") {
        eprintln!("pym backlog of {backlog}…");
        let t0 = Instant::now();
        let mut i = 0;
        while i < backlog {
            let envs: Vec<Envelope> = (i..(i + 1000).min(backlog))
                .map(|k| {
                    Envelope::new(
                        "noop",
                        "bench",
                        Priority::Normal,
                        serde_json::value::RawValue::from_string(k.to_string()).unwrap(),
                        Default::default(),
                    )
                })
                .collect();
            broker.enqueue_batch(&envs).await.unwrap();
            i += 1000;
        }
        let batch_enq = backlog as f64 / t0.elapsed().as_secs_f64();
        let mem: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut broker.conn())
            .await
            .unwrap();
        let used = mem
            .lines()
            .find_map(|l| l.strip_prefix("used_memory_human:"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        let worker = Worker::new(broker.clone(), worker_config("bench", 1024)).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let before = DONE.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let wh = tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        wait_drained(&broker, "bench").await;
        let rate = backlog as f64 / t0.elapsed().as_secs_f64();
        let done = DONE.load(Ordering::Relaxed) - before;
        let _ = tx.send(());
        wh.await.unwrap().unwrap();
        rows.push(Row(
            "pym 1M backlog",
            format!("enqueued (pipelined) {batch_enq:.0}/s, Redis {used}; drained {rate:.0} tasks/s, {done} ran"),
        ));
    }

    if phase("celery") {
        // Celery 5 on the same Redis, if installed.
        let celery =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/celery_bench.py");
        let celery_n = env_usize("BENCH_CELERY_N", 10_000);
        eprintln!("Celery (if installed)…");
        match Command::new("python3")
            .arg(&celery)
            .arg(&url)
            .arg(celery_n.to_string())
            .output()
        {
            Ok(out) if out.status.success() => {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some((k, v)) = line.split_once('=') {
                        let label: &'static str = Box::leak(format!("celery {k}").into_boxed_str());
                        rows.push(Row(label, v.to_owned()));
                    }
                }
            }
            Ok(out) => rows.push(Row(
                "celery",
                format!(
                    "not run: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ),
            )),
            Err(e) => rows.push(Row("celery", format!("not run: {e}"))),
        }
    }

    println!("\n{:<45} result", "benchmark");
    println!("{}", "-".repeat(100));
    for Row(k, v) in rows {
        println!("{k:<45} {v}");
    }
    let _ = Arc::new(());
}
