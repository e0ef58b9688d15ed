//! Redis CPU per dashboard refresh: what one open dashboard costs the
//! broker. A refresh of the overview is `GET /_pym/admin/queues` and `GET
//! /_pym/admin/workers` (the page polls every 2 s); the dead-letter tab
//! adds `GET .../dead` (measured apart).
//!
//! A service process (this binary again, `svc serve` with the admin API)
//! reads a redis-server holding `BENCH_QUEUES` queues (default 10) of
//! `BENCH_READY` ready tasks each (default 1,000), 100 dead letters on
//! `default` and 4 registered workers. Redis's own accounting is read
//! before and after `BENCH_N` refreshes (default 500): `INFO commandstats`
//! (µs spent in commands and scripts) and `INFO cpu` (the server's user +
//! system CPU). Reported: Redis CPU per refresh, and the share of one core
//! a dashboard polling every 2 s takes.
//!
//! Run: `cargo bench -p pym-runtime --bench dashboard`.

use pym_broker::workers::{self, WorkerInfo};
use pym_broker::{Broker, BrokerConfig};
use pym_runtime::App;
use pym_runtime::testing::{RedisServer, free_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-dashboard-secret-32-bytes-long!";
const ENV_CHILD: &str = "BENCH_DASHBOARD_CHILD";
const POLL_EVERY_MS: f64 = 2000.0;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os(ENV_CHILD).is_some() {
        let spec = "openapi: 3.1.0\ninfo: {title: bench, version: '1'}\npaths: {}\n";
        let code = App::new("bench")
            .service(move |b| b.spec_str("openapi.yaml", spec))
            .run_from(["bench", "serve"]);
        std::process::exit(i32::from(code != std::process::ExitCode::SUCCESS));
    }
    let redis = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fill(&redis.url()));
    let port = free_port();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ENV_CHILD, "1")
        .env("PYM_REDIS_URL", redis.url())
        .env("PYM_JWT_SECRET", SECRET)
        .env("PYM_JWT_ISSUER", "https://bench")
        .env("PYM_JWT_AUDIENCE", "bench")
        .env("PYM_PORT", port.to_string())
        .env("PYM_ADMIN_ENABLED", "true")
        .env("PYM_LOG", "warn")
        .env_remove("PYM_CONFIG")
        .spawn()
        .unwrap();
    let token = mint();
    let t0 = Instant::now();
    while get(port, "/readyz", "").0 != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the service did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = env_u64("BENCH_N", 500);
    let overview = ["/_pym/admin/queues", "/_pym/admin/workers"];
    let dead = ["/_pym/admin/queues/default/dead"];
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    println!(
        "{} queues of {} ready tasks, 100 dead letters, 4 workers; {n} refreshes each",
        env_u64("BENCH_QUEUES", 10),
        env_u64("BENCH_READY", 1000)
    );
    for (what, paths) in [
        ("overview (queues + workers)", &overview[..]),
        ("dead-letter list", &dead[..]),
    ] {
        let (cmd_ms, cpu_ms) = measure(&mut conn, n, || {
            for p in paths {
                let (status, body) = get(port, p, &token);
                assert_eq!(status, 200, "{p}: {body}");
            }
        });
        println!(
            "{what}: Redis CPU per refresh {cmd_ms:.3} ms (commandstats), {cpu_ms:.3} ms (used_cpu); \
             one dashboard polling every 2 s: {:.3} % of a core",
            100.0 * cpu_ms.max(cmd_ms) / POLL_EVERY_MS
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// (ms in commands, ms of server CPU) per call of `refresh`, over `n`.
fn measure(conn: &mut redis::Connection, n: u64, mut refresh: impl FnMut()) -> (f64, f64) {
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(conn).unwrap();
    let cpu0 = used_cpu(conn);
    for _ in 0..n {
        refresh();
    }
    let cpu1 = used_cpu(conn);
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    // Every command but the INFO and CONFIG of this measurement.
    let usec: f64 = info
        .lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && !l.starts_with("cmdstat_info")
                && !l.starts_with("cmdstat_config")
        })
        .filter_map(|l| {
            l.split("usec=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum();
    (usec / 1000.0 / n as f64, (cpu1 - cpu0) * 1000.0 / n as f64)
}

/// The server's user + system CPU, seconds.
fn used_cpu(conn: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("cpu").query(conn).unwrap();
    info.lines()
        .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .sum()
}

/// Queues, dead letters and workers to read.
async fn fill(url: &str) {
    let bc = BrokerConfig::new(url, SECRET.as_bytes().to_vec());
    let broker = Broker::connect(&bc).await.unwrap();
    let mut c = broker.conn();
    let ready = env_u64("BENCH_READY", 1000);
    // Ready entries as the stats see them (the admin API reads counts, not
    // messages), in every queue's normal stream.
    for i in 0..env_u64("BENCH_QUEUES", 10) {
        let name = if i == 0 {
            "default".to_string()
        } else {
            format!("q{i}")
        };
        pym_broker::fetch::ensure_groups(&mut c, &name)
            .await
            .unwrap();
        let stream = pym_broker::keys::QueueKeys::new(&name).ready[1].clone();
        let mut pipe = redis::pipe();
        pipe.cmd("SADD")
            .arg(pym_broker::keys::QUEUES)
            .arg(&name)
            .ignore();
        for n in 0..ready {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("m")
                .arg(n)
                .ignore();
        }
        let _: () = pipe.query_async(&mut c).await.unwrap();
    }
    let keys = pym_broker::keys::QueueKeys::new("default");
    for i in 0..100u64 {
        let d = pym_broker::dead::DeadLetter::new(
            "default",
            &format!("{i}-0"),
            "x.{}",
            pym_broker::dead::Reason::Malformed,
            "bench".into(),
            1,
        );
        let mut pipe = redis::pipe();
        let json = serde_json::to_string(&d).unwrap();
        pipe.cmd("HSET")
            .arg(&keys.dead)
            .arg(&d.id)
            .arg(json)
            .ignore();
        pipe.cmd("ZADD")
            .arg(&keys.dead_index)
            .arg(d.failed_at + i)
            .arg(&d.id)
            .ignore();
        let _: () = pipe.query_async(&mut c).await.unwrap();
    }
    for w in 0..4 {
        let info = WorkerInfo {
            name: format!("bench-worker-{w}"),
            pod: None,
            queues: vec!["default".into()],
            concurrency: 8,
            in_flight: 0,
            started_at: 0,
            version: "bench".into(),
            last_beat: 0,
        };
        workers::beat(&broker, &info, Duration::from_secs(3600))
            .await
            .unwrap();
    }
}

/// A read token (HS256, the service's issuer and audience).
fn mint() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({"sub": "bench", "exp": exp, "iss": "https://bench", "aud": "bench", "pym_admin": "read"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// `GET path` with `token`, keep-alive off; (status, body).
fn get(port: u16, path: &str, token: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}
