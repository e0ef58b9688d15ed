//! Redis Sentinel on real processes (`redis-server`, `redis-server
//! --sentinel`): connect through three sentinels, enqueue and consume; and
//! fail over (SIGKILL of the master, or `SENTINEL FAILOVER`) while
//! enqueueing, counting acknowledged enqueues against the stream entries
//! of the new master.
//!
//! Replication is asynchronous: an enqueue the old master acknowledged and
//! had not yet sent to the replica is lost when the replica is promoted
//! (SIGKILL); and after `SENTINEL FAILOVER`, writes the old master accepts
//! between the promotion and its own demotion are discarded when it
//! resyncs (the broker holds its commands back from the announced
//! promotion to the switch to avoid those). The tests measure and print
//! both; they assert what must hold: every failed enqueue returned an
//! error that an API answers with 503, and every enqueue sent after the
//! old master was gone is on the new one.

use futures::StreamExt;
use pym_broker::envelope::{Envelope, Signer};
use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{Broker, BrokerConfig, BrokerError, Priority, Queue, keys};
use pym_core::context::Context;
use pym_runtime::testing::{RedisServer, SentinelSet};
use pym_runtime::{TaskError, asynctask};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const SECRET: &str = "sentinel-test-secret";
const NAME: &str = SentinelSet::NAME;
/// The longest any failover may take before the test fails.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

static DONE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

#[asynctask(queue = "sentinel")]
async fn mark(tag: String) -> Result<(), TaskError> {
    DONE.lock().unwrap().insert(tag);
    Ok(())
}

async fn direct(port: u16) -> redis::aio::MultiplexedConnection {
    // Reading a whole stream takes a while in a debug build.
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(FAILOVER_LIMIT));
    redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .unwrap()
}

async fn sentinel_master(port: u16) -> HashMap<String, String> {
    redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(NAME)
        .query_async(&mut direct(port).await)
        .await
        .unwrap()
}

/// The port of the master the first sentinel names.
async fn named_master(sentinel: u16) -> u16 {
    let (_, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(NAME)
        .query_async(&mut direct(sentinel).await)
        .await
        .unwrap();
    port
}

/// `ROLE` of 127.0.0.1:`port`'s first element ("master", "slave"), or
/// `None` if it does not answer.
async fn role(port: u16) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).ok()?;
    let mut c = client.get_multiplexed_async_connection().await.ok()?;
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut c).await.ok()?;
    redis::from_redis_value(role.into_iter().next()?).ok()
}

/// When a sentinel first announced the promotion and the switch.
#[derive(Default)]
struct Announced {
    promoting: Option<Instant>,
    switched: Option<Instant>,
}

/// Subscribes to the promotion and `+switch-master` announcements on every
/// sentinel; returns once all are subscribed.
async fn watch_announcements(
    cluster: &SentinelSet,
) -> (Arc<Mutex<Announced>>, Vec<tokio::task::JoinHandle<()>>) {
    let announced = Arc::new(Mutex::new(Announced::default()));
    let mut tasks = Vec::new();
    for s in &cluster.sentinels {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", s.port())).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub
            .subscribe(&["+failover-state-send-slaveof-noone", "+switch-master"])
            .await
            .unwrap();
        let announced = announced.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(msg) = pubsub.on_message().next().await {
                let mut a = announced.lock().unwrap();
                let at = match msg.get_channel_name() {
                    "+switch-master" => &mut a.switched,
                    _ => &mut a.promoting,
                };
                at.get_or_insert_with(Instant::now);
            }
        }));
    }
    (announced, tasks)
}

fn config(url: &str) -> BrokerConfig {
    let mut c = BrokerConfig::new(url, SECRET);
    c.response_timeout = Duration::from_secs(2);
    c
}

fn worker_config(name: &str) -> WorkerConfig {
    WorkerConfig {
        queues: vec!["sentinel".into()],
        concurrency: 4,
        name: name.into(),
        listen: None,
        block: Duration::from_millis(200),
        ..WorkerConfig::default()
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + FAILOVER_LIMIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_goes_through_three_sentinels() {
    let cluster = SentinelSet::start_with(0, Vec::new());
    let url = cluster.url();
    let worker = Worker::connect(&config(&url), worker_config("w-a"))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let queue = Queue::connect(&config(&url)).await.unwrap();
    mark::spawn(&queue, "through-sentinels".into())
        .await
        .unwrap();
    eventually("the task ran", || {
        DONE.lock().unwrap().contains("through-sentinels")
    })
    .await;
    let _ = stop.send(());
    run.await.unwrap().unwrap();
    // A sentinel down among three: the others answer.
    let mut cluster = cluster;
    cluster.sentinels[0].kill();
    let broker = Broker::connect(&config(&url)).await.unwrap();
    broker.ping().await.unwrap();
}

/// What the operator's autoscaler reads (queue statistics, the worker
/// registry) through a Sentinel URL, with no task secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_without_the_task_secret_reads_stats_through_sentinels() {
    let cluster = SentinelSet::start_with(0, Vec::new());
    let url = cluster.url();
    let queue = Queue::connect(&config(&url)).await.unwrap();
    for i in 0..3 {
        mark::spawn(&queue, format!("counted-{i}")).await.unwrap();
    }
    let mut conn = pym_broker::connect_reader(&url, Duration::from_secs(2))
        .await
        .unwrap();
    let stats = pym_broker::stats::queue_stats(&mut conn, "sentinel")
        .await
        .unwrap();
    assert_eq!(stats.ready, 3, "{stats:?}");
    let live = pym_broker::workers::live_on(&mut conn, Default::default())
        .await
        .unwrap();
    assert!(live.is_empty(), "no worker runs: {live:?}");
}

#[tokio::test]
async fn connecting_without_a_known_master_says_so() {
    let cluster = SentinelSet::start_with(0, Vec::new());
    let url = cluster.url().replace("#m", "#nosuchmaster");
    let err = Broker::connect(&config(&url)).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let err = Broker::connect(&config("redis-sentinel://127.0.0.1:1/0"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Config(m) if m.contains("no master name")),
        "{err}"
    );
}

/// No master at all (killed, no replica to promote): every spawn fails
/// with an error an API answers with 503 `SERVICE_UNAVAILABLE`, within
/// the response timeout, and works again once the master is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_without_a_master_is_unavailable() {
    let mut cluster = SentinelSet::start_with(0, Vec::new());
    let queue = Queue::connect(&config(&cluster.url())).await.unwrap();
    mark::spawn(&queue, "before-kill".into()).await.unwrap();
    cluster.master.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let err = mark::spawn(&queue, "no-master".into()).await.unwrap_err();
        assert!(err.is_unavailable(), "not a 503: {err}");
        assert!(started.elapsed() < FAILOVER_LIMIT, "{err}");
    }
    cluster.master.restart();
    let deadline = Instant::now() + FAILOVER_LIMIT;
    while mark::spawn(&queue, "after-restart".into()).await.is_err() {
        assert!(Instant::now() < deadline, "spawns did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a producer saw of one enqueue.
struct Sent {
    id: Uuid,
    start: Instant,
    end: Instant,
    result: Result<(), BrokerError>,
}

/// Enqueue one envelope on `broker`.
async fn send_one(broker: &Broker) -> Sent {
    let args = RawValue::from_string("{}".into()).unwrap();
    let env = Envelope::new("p", "failover", Priority::Normal, args, Context::default());
    let (id, start) = (env.id, Instant::now());
    let result = broker.enqueue(env).await;
    Sent {
        id,
        start,
        end: Instant::now(),
        result,
    }
}

/// Enqueue one envelope after another on `broker` until `stop`.
async fn produce(broker: Broker, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let mut sent = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let s = send_one(&broker).await;
        let failed = s.result.is_err();
        sent.push(s);
        if failed {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sent
}

/// The envelope ids in the ready stream on 127.0.0.1:`port`.
async fn stream_ids(port: u16) -> Vec<Uuid> {
    let stream = keys::QueueKeys::new("failover")
        .ready(Priority::Normal)
        .to_owned();
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut direct(port).await)
        .await
        .unwrap();
    let signer = Signer::new(SECRET.as_bytes());
    entries
        .iter()
        .map(|(_, fields)| signer.open(&fields[keys::FIELD_MESSAGE]).unwrap().id)
        .collect()
}

/// What a failover did to the producers' enqueues.
struct Outcome {
    acked: usize,
    failed: usize,
    /// Acknowledged but not on the new master.
    lost: usize,
    /// ... of which acknowledged before the failure (the replica lagged).
    lost_before_failure: usize,
    /// When the last lost one was acknowledged, after the failure.
    lost_last: Option<Duration>,
    /// On the new master more than once.
    duplicated: usize,
    /// From the failure until the old master was no longer master.
    gone: Duration,
    /// From the failure until a sentinel announced the promotion.
    promoting: Duration,
    /// From the failure until a sentinel announced the new master.
    announced: Duration,
    /// From the failure to the first acknowledged enqueue sent after the
    /// switch (the old master gone, or the new one announced).
    outage: Duration,
}

/// Runs `producers` from `t0 - 300 ms`, calls `fail` at `t0`, and stops
/// 0.5 s after an enqueue sent once the old master is gone (no longer
/// answers as master) and a new one is named was acknowledged; then checks
/// the stream on the new master.
async fn fail_over_while_enqueueing(
    cluster: &mut SentinelSet,
    fail: impl AsyncFnOnce(&mut SentinelSet),
    producers: usize,
) -> Outcome {
    let broker = Broker::connect(&config(&cluster.url())).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..producers)
        .map(|_| tokio::spawn(produce(broker.clone(), stop.clone())))
        .collect();
    let (announced, watchers) = watch_announcements(cluster).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = cluster.master.port();
    let t0 = Instant::now();
    fail(cluster).await;
    let deadline = t0 + FAILOVER_LIMIT;
    let gone = loop {
        if role(old).await.as_deref() != Some("master") {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "the old master is still master");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let new = loop {
        let port = named_master(cluster.sentinels[1].port()).await;
        if port != old && role(port).await.as_deref() == Some("master") {
            break port;
        }
        assert!(Instant::now() < deadline, "no new master");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Until an enqueue sent now is acknowledged, then a little longer.
    let mut probes = Vec::new();
    loop {
        let s = send_one(&broker).await;
        let ok = s.result.is_ok();
        probes.push(s);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "enqueues did not resume");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = probes;
    for t in tasks {
        sent.extend(t.await.unwrap());
    }
    watchers.iter().for_each(|w| w.abort());
    let times = {
        let a = announced.lock().unwrap();
        Times {
            t0,
            gone,
            promoting: a.promoting.unwrap_or(gone),
            switched: a.switched.unwrap_or(gone),
        }
    };
    judge(&sent, &stream_ids(new).await, &times)
}

/// When things happened in a failover.
struct Times {
    /// The failure (SIGKILL, `SENTINEL FAILOVER`).
    t0: Instant,
    /// The old master no longer answers as master.
    gone: Instant,
    /// A sentinel announced it is about to promote a replica.
    promoting: Instant,
    /// A sentinel announced the new master.
    switched: Instant,
}

/// Checks and counts: every error is "unavailable" (an API's 503); every
/// enqueue sent after `gone` and acknowledged is on the new master.
fn judge(sent: &[Sent], on_new: &[Uuid], times: &Times) -> Outcome {
    let Times {
        t0,
        gone,
        promoting,
        switched,
    } = *times;
    let switch = gone.min(switched);
    let mut count: HashMap<Uuid, usize> = HashMap::new();
    for id in on_new {
        *count.entry(*id).or_default() += 1;
    }
    for s in sent {
        if let Err(e) = &s.result {
            assert!(
                e.is_unavailable(),
                "an enqueue failed with a non-503 error: {e}"
            );
        }
    }
    let acked: Vec<&Sent> = sent.iter().filter(|s| s.result.is_ok()).collect();
    let lost: Vec<&Sent> = acked
        .iter()
        .filter(|s| !count.contains_key(&s.id))
        .copied()
        .collect();
    for s in acked.iter().filter(|s| s.start > gone) {
        assert!(
            count.contains_key(&s.id),
            "an enqueue sent after the old master was gone was acknowledged but is not on the new master"
        );
    }
    let resumed = acked
        .iter()
        .filter(|s| s.start > switch)
        .map(|s| s.end)
        .min()
        .expect("no enqueue was sent and acknowledged after the switch");
    Outcome {
        acked: acked.len(),
        failed: sent.len() - acked.len(),
        duplicated: count.values().filter(|n| **n > 1).count(),
        lost_before_failure: lost.iter().filter(|s| s.end < t0).count(),
        lost_last: lost
            .iter()
            .map(|s| s.end)
            .max()
            .map(|e| e.saturating_duration_since(t0)),
        lost: lost.len(),
        gone: gone - t0,
        promoting: promoting.saturating_duration_since(t0),
        announced: switched.saturating_duration_since(t0),
        outage: resumed - t0,
    }
}

fn report(what: &str, o: &Outcome) {
    println!(
        "{what}: promotion announced after {:?}, new master after {:?}, old master gone after \
         {:?}; first acknowledged enqueue sent after the switch {:?} after the failure; {} \
         acknowledged, {} failed with 503-class errors, {} acknowledged but lost ({} of them \
         acknowledged before the failure, the last {:?} after it), {} duplicated",
        o.promoting,
        o.announced,
        o.gone,
        o.outage,
        o.acked,
        o.failed,
        o.lost,
        o.lost_before_failure,
        o.lost_last,
        o.duplicated
    );
}

/// SIGKILL of the master under 4 producers: the replica is promoted after
/// `down-after-milliseconds` (1 s) and the election. The master writes its
/// AOF with `appendfsync always`, which does not help here (the replica
/// never reads it); `min-replicas-to-write 1` only bounds the loss to
/// `min-replicas-max-lag` seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueues_resume_after_the_master_is_killed() {
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "10",
    ];
    let mut cluster = SentinelSet::start_with(1, args.iter().map(|a| a.to_string()).collect());
    let outcome = fail_over_while_enqueueing(&mut cluster, async |c| c.kill_master(), 4).await;
    report("SIGKILL", &outcome);
    assert!(
        outcome.failed > 0,
        "the master was killed but nothing failed"
    );
}

async fn sentinel_failover(sentinel: u16) {
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(NAME)
        .query_async(&mut direct(sentinel).await)
        .await
        .unwrap();
}

/// `SENTINEL FAILOVER`: the old master is demoted (to a replica) only
/// ~10 s after the promotion; the producers wait from the announced
/// promotion and move on `+switch-master`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_moves_producers() {
    let mut cluster = SentinelSet::start_with(1, Vec::new());
    let sentinel = cluster.sentinels[0].port();
    let outcome = fail_over_while_enqueueing(
        &mut cluster,
        async move |_| sentinel_failover(sentinel).await,
        2,
    )
    .await;
    report("SENTINEL FAILOVER", &outcome);
    // Held back from the announced promotion to the switch, the producers
    // wrote nothing the old master took after the promotion: what is lost
    // is what the replica had not received when promoted (its lag), all
    // acknowledged before the hold. Without the hold, losses go on until
    // the switch; the line between is halfway.
    let halfway = (outcome.promoting + outcome.announced) / 2;
    assert!(
        outcome.lost_last.is_none_or(|last| last < halfway),
        "an enqueue acknowledged {:?} after the failure was lost (promotion announced after {:?})",
        outcome.lost_last,
        outcome.promoting
    );
}

/// A worker's blocking reads move with `+switch-master` too: a task
/// enqueued after the announcement runs while the old master, not yet
/// demoted (the sentinels take ~10 s), still answers as master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_moves_on_switch_master() {
    let cluster = SentinelSet::start_with(1, Vec::new());
    let url = cluster.url();
    let worker = Worker::connect(&config(&url), worker_config("w-switch"))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let queue = Queue::connect(&config(&url)).await.unwrap();
    let broker = queue.broker().unwrap().clone();
    let before = broker.master_generation();
    sentinel_failover(cluster.sentinels[0].port()).await;
    // Until the queue's connection moved on +switch-master (before that,
    // the old master still takes writes, and its worker has left it).
    eventually("the queue moved to the new master", || {
        broker.master_generation() != before
    })
    .await;
    let sent = Instant::now();
    mark::spawn(&queue, "after-switch".into()).await.unwrap();
    eventually("the worker ran a task enqueued after the switch", || {
        DONE.lock().unwrap().contains("after-switch")
    })
    .await;
    let ran = sent.elapsed();
    assert_eq!(
        role(cluster.master.port()).await.as_deref(),
        Some("master"),
        "the old master was demoted before the task ran: this proves nothing"
    );
    println!("+switch-master: a task enqueued after it ran on the new master in {ran:?}");
    let _ = stop.send(());
    run.await.unwrap().unwrap();
}

async fn query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> T {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(&mut direct(port).await)
        .await
        .unwrap()
}

/// The roles swapped behind the broker's back (no `+switch-master`): the
/// sentinels are re-pointed at the replica, which is promoted, and the old
/// master is made its replica. The broker's next enqueue meets `READONLY`
/// on the old master; the connection asks the sentinels, moves, and sends
/// it again: the caller sees no error, and the task is on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_by_a_demoted_master_is_resent_on_the_new_one() {
    let cluster = SentinelSet::start_with(1, Vec::new());
    let broker = Broker::connect(&config(&cluster.url())).await.unwrap();
    let first = send_one(&broker).await;
    first.result.unwrap();
    let (old, new) = (cluster.master.port(), cluster.replicas[0].port());
    // Replicated before the promotion (replication is asynchronous).
    let replicas: i64 = query(old, &["WAIT", "1", "10000"]).await;
    assert_eq!(replicas, 1);
    let _: () = query(new, &["REPLICAOF", "NO", "ONE"]).await;
    for s in &cluster.sentinels {
        let _: () = query(s.port(), &["SENTINEL", "REMOVE", NAME]).await;
        let new = new.to_string();
        let _: () = query(
            s.port(),
            &["SENTINEL", "MONITOR", NAME, "127.0.0.1", &new, "2"],
        )
        .await;
    }
    let _: () = query(old, &["REPLICAOF", "127.0.0.1", &new.to_string()]).await;
    let deadline = Instant::now() + FAILOVER_LIMIT;
    for s in &cluster.sentinels {
        while sentinel_master(s.port())
            .await
            .get("flags")
            .map(String::as_str)
            != Some("master")
        {
            assert!(
                Instant::now() < deadline,
                "the sentinels do not see the new master"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let moved = send_one(&broker).await;
    moved
        .result
        .expect("the enqueue refused by the demoted master was not resent");
    let on_new = stream_ids(new).await;
    assert!(on_new.contains(&first.id) && on_new.contains(&moved.id));
    assert_eq!(on_new.len(), 2, "the resent enqueue was written twice");
}

/// A CA and a certificate for 127.0.0.1 signed by it, made by `openssl`
/// in `dir`: `(ca.pem, server.pem, server.key)`.
fn certificates(dir: &std::path::Path) -> (String, String, String) {
    let p = |n: &str| dir.join(n).display().to_string();
    let (ca, ca_key, cert, key, csr, ext) = (
        p("ca.pem"),
        p("ca.key"),
        p("server.pem"),
        p("server.key"),
        p("server.csr"),
        p("ext.cnf"),
    );
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    let rsa = ["-newkey", "rsa:2048", "-nodes"];
    openssl(
        &[
            &["req", "-x509", "-days", "1", "-subj", "/CN=pym CA"],
            &rsa[..],
            &["-keyout", &ca_key, "-out", &ca],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &rsa[..],
            &["-subj", "/CN=127.0.0.1", "-keyout", &key, "-out", &csr],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca, cert, key)
}

/// `rediss-sentinel://`: the sentinels and the master over TLS (the master
/// as the sentinels name it, on its TLS port), trusting the CA file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_goes_through_sentinels_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let tls = |port: u16| -> Vec<String> {
        [
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let master_tls = pym_runtime::testing::free_port();
    let _master = RedisServer::start_with(None, tls(master_tls));
    let mut sentinels = Vec::new();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        let port = pym_runtime::testing::free_port();
        sentinels.push(RedisServer::start_sentinel_with(
            master_tls,
            NAME,
            2,
            tls(port),
        ));
        hosts.push(format!("127.0.0.1:{port}"));
    }
    let deadline = Instant::now() + FAILOVER_LIMIT;
    for s in &sentinels {
        while sentinel_master(s.port())
            .await
            .get("flags")
            .map(String::as_str)
            != Some("master")
        {
            assert!(
                Instant::now() < deadline,
                "the sentinels do not reach the master over TLS"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let url = format!("rediss-sentinel://{}/0#{NAME}", hosts.join(","));
    let err = Broker::connect(&config(&url)).await.unwrap_err();
    assert!(err.is_unavailable(), "without the CA: {err}");
    let bc = config(&url).with_ca_file(&ca);
    let worker = Worker::connect(&bc, worker_config("w-tls")).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let queue = Queue::connect(&bc).await.unwrap();
    mark::spawn(&queue, "over-tls".into()).await.unwrap();
    eventually("the task ran over TLS", || {
        DONE.lock().unwrap().contains("over-tls")
    })
    .await;
    let _ = stop.send(());
    run.await.unwrap().unwrap();
}
