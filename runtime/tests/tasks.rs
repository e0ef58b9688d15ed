//! Task core on a real redis-server: delivery, retries, dead letters, bad
//! input, delays, priorities, stats, leases, crash recovery, drain,
//! reconnect, eager mode, password and TLS URLs.

mod flow_common;

use flow_common::{eventually_at_least, get};
use pym_broker::envelope::{Envelope, Signer};
use pym_broker::retry::Backoff;
use pym_broker::worker::{Worker, WorkerConfig, WorkerError};
use pym_broker::{Broker, BrokerConfig, dead, keys, stats};
use pym_core::context::{self, Context};
use pym_runtime::testing::RedisServer;
use pym_runtime::{Priority, Queue, SpawnError, TaskError, asynctask};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &str = "test-secret";

/// A private argument type: private tasks may take private types.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Private {
    tag: String,
}

#[asynctask(queue = "t")]
async fn private_args(p: Private) -> Result<(), TaskError> {
    record(p.tag, 0).await
}

#[derive(Debug, Clone)]
struct Run {
    tag: String,
    n: u32,
    ctx: Context,
}

static RUNS: LazyLock<Mutex<Vec<Run>>> = LazyLock::new(|| Mutex::new(Vec::new()));
static CALLS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
static FIXED: LazyLock<Mutex<Vec<String>>> = LazyLock::new(|| Mutex::new(Vec::new()));

fn runs(tag: &str) -> Vec<Run> {
    RUNS.lock()
        .unwrap()
        .iter()
        .filter(|r| r.tag == tag)
        .cloned()
        .collect()
}

fn calls(tag: &str) -> u32 {
    CALLS.lock().unwrap().get(tag).copied().unwrap_or(0)
}

fn count_call(tag: &str) -> u32 {
    let mut c = CALLS.lock().unwrap();
    let n = c.entry(tag.to_owned()).or_default();
    *n += 1;
    *n
}

#[asynctask(queue = "t")]
async fn record(tag: String, n: u32) -> Result<(), TaskError> {
    RUNS.lock().unwrap().push(Run {
        tag,
        n,
        ctx: (*context::context()).clone(),
    });
    Ok(())
}

#[asynctask(queue = "t", name = "record_high", priority = "high")]
async fn record_high(tag: String, n: u32) -> Result<(), TaskError> {
    record(tag, n).await
}

#[asynctask(queue = "t", priority = "low")]
async fn record_low(tag: String, n: u32) -> Result<(), TaskError> {
    record(tag, n).await
}

/// Fails `fail_times` times, then records.
#[asynctask(queue = "t", max_retries = 5)]
async fn flaky(tag: String, fail_times: u32) -> Result<(), TaskError> {
    if count_call(&tag) <= fail_times {
        return Err(TaskError::retry("not yet"));
    }
    record(tag, 0).await
}

/// Fails until its tag is in FIXED.
/// A task with a replay guard that fails its first `fail_times` runs.
#[asynctask(queue = "t", max_retries = 3, replay_guard_secs = 60)]
async fn guarded(tag: String, fail_times: u32) -> Result<(), TaskError> {
    if count_call(&tag) <= fail_times {
        return Err(TaskError::retry("not yet"));
    }
    record(tag, 0).await
}

#[asynctask(queue = "t", max_retries = 2)]
async fn fails_until_fixed(tag: String) -> Result<(), TaskError> {
    count_call(&tag);
    if !FIXED.lock().unwrap().contains(&tag) {
        return Err(std::io::Error::other("upstream down").into());
    }
    record(tag, 0).await
}

#[asynctask(queue = "t")]
async fn fatal_task(tag: String) -> Result<(), TaskError> {
    count_call(&tag);
    Err(TaskError::fatal("user does not exist"))
}

#[asynctask(queue = "t", max_retries = 0)]
async fn panicky(tag: String) -> Result<(), TaskError> {
    count_call(&tag);
    panic!("kaboom {tag}");
}

#[asynctask(queue = "t", max_retries = 0, timeout_secs = 1)]
async fn sleepy(tag: String) -> Result<(), TaskError> {
    count_call(&tag);
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(())
}

#[asynctask(queue = "t", fresh_token)]
async fn needs_fresh(tag: String) -> Result<(), TaskError> {
    record(tag, 0).await
}

/// Counts starts and ends in Redis itself, so other processes can see them.
#[asynctask(queue = "long", timeout_secs = 60)]
async fn long_task(url: String, tag: String, ms: u64) -> Result<(), TaskError> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let _: i64 = redis::cmd("INCR")
        .arg(format!("runs:{tag}"))
        .query_async(&mut c)
        .await?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let _: i64 = redis::cmd("INCR")
        .arg(format!("done:{tag}"))
        .query_async(&mut c)
        .await?;
    Ok(())
}

/// Expires 1 s after it is due (dead-lettered, the default).
#[asynctask(queue = "exp", expires_in_secs = 1)]
async fn expiring(tag: String) -> Result<(), TaskError> {
    record(tag, 0).await
}

/// Expires 1 s after it is due, and is then dropped.
#[asynctask(queue = "exp", expires_in_secs = 1, on_expiry = "discard")]
async fn expiring_quietly(tag: String) -> Result<(), TaskError> {
    record(tag, 0).await
}

/// Fails its first run; retries of a task that started never expire.
#[asynctask(queue = "exp", expires_in_secs = 1)]
async fn expiring_but_retried(tag: String) -> Result<(), TaskError> {
    if count_call(&tag) == 1 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        return Err(TaskError::retry("first run fails after the expiry"));
    }
    record(tag, 0).await
}

fn cfg(queues: &[&str], name: &str) -> WorkerConfig {
    WorkerConfig {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        concurrency: 8,
        visibility_timeout: Duration::from_secs(2),
        grace_period: Duration::from_secs(2),
        backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        name: name.to_owned(),
        listen: None,
        block: Duration::from_millis(200),
        ..WorkerConfig::default()
    }
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), WorkerError>>,
}

impl Running {
    async fn stop(mut self) -> Result<(), WorkerError> {
        let _ = self.stop.take().unwrap().send(());
        self.handle.await.unwrap()
    }
}

async fn start_worker(url: &str, config: WorkerConfig) -> Running {
    start_worker_on(&BrokerConfig::new(url, SECRET), config).await
}

async fn start_worker_on(bc: &BrokerConfig, config: WorkerConfig) -> Running {
    let worker = Worker::connect(bc, config).await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    Running {
        stop: Some(tx),
        handle,
    }
}

async fn queue(url: &str) -> Queue {
    Queue::connect(&BrokerConfig::new(url, SECRET))
        .await
        .unwrap()
}

async fn broker(url: &str) -> Broker {
    Broker::connect(&BrokerConfig::new(url, SECRET))
        .await
        .unwrap()
}

async fn eventually<F: FnMut() -> bool>(what: &str, mut f: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn qstats(url: &str, q: &str) -> stats::QueueStats {
    stats::queue_stats(&mut broker(url).await.conn(), q)
        .await
        .unwrap()
}

async fn dead_letters(url: &str, q: &str) -> Vec<dead::DeadLetter> {
    dead::list(&mut broker(url).await.conn(), q, 0, 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn spawned_tasks_run_once_with_their_context_and_are_acked() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let ctx = Arc::new(Context {
        user_id: Some("user-42".into()),
        request_id: Some("req-1".into()),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        token: Some("bearer-tok-7f3a9c".into()),
        ..Default::default()
    });
    context::scope(ctx, async {
        for n in 0..50 {
            record::spawn(&q, ("basic".into(), n)).await.unwrap();
        }
    })
    .await;
    private_args::spawn(
        &q,
        Private {
            tag: "private".into(),
        },
    )
    .await
    .unwrap();
    // Outside a request: system context.
    record::spawn(&q, ("basic-sys".into(), 0)).await.unwrap();
    assert_eq!(qstats(&url, "t").await.ready, 52);
    // What sits in Redis carries the token encrypted, never in clear.
    let raw: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(keys::QueueKeys::new("t").ready(Priority::Normal))
        .arg("-")
        .arg("+")
        .query_async(&mut broker(&url).await.conn())
        .await
        .unwrap();
    assert_eq!(raw.len(), 52);
    let dump = format!("{raw:?}");
    assert!(
        !dump.contains("bearer-tok-7f3a9c"),
        "token in clear in Redis"
    );

    // The worker records its metrics in the registry it is given.
    let registry = pym_core::Metrics::default();
    let bc = BrokerConfig::new(&url, SECRET).with_metrics(&registry);
    let w = start_worker_on(&bc, cfg(&["t"], "w1")).await;
    eventually("52 runs", || {
        runs("private").len() == 1 && runs("basic").len() == 50 && runs("basic-sys").len() == 1
    })
    .await;
    let r = runs("basic");
    let mut ns: Vec<u32> = r.iter().map(|r| r.n).collect();
    ns.sort();
    assert_eq!(ns, (0..50).collect::<Vec<_>>());
    assert_eq!(r[0].ctx.user_id.as_deref(), Some("user-42"));
    assert_eq!(r[0].ctx.request_id.as_deref(), Some("req-1"));
    assert_eq!(r[0].ctx.token.as_deref(), Some("bearer-tok-7f3a9c"));
    assert!(runs("basic-sys")[0].ctx.is_system());

    // Acked and deleted: nothing ready, nothing in flight, streams empty.
    eventually_stats_zero(&url, "t").await;
    let b = broker(&url).await;
    let qk = keys::QueueKeys::new("t");
    let len: u64 = redis::cmd("XLEN")
        .arg(qk.ready(Priority::Normal))
        .query_async(&mut b.conn())
        .await
        .unwrap();
    assert_eq!(len, 0);
    w.stop().await.unwrap();

    let text = registry.encode();
    assert!(
        text.contains("pym_tasks_succeeded_total{task=\"record\",queue=\"t\"}"),
        "{text}"
    );
    assert!(text.contains("pym_task_duration_seconds_bucket"), "{text}");
}

async fn eventually_stats_zero(url: &str, q: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = qstats(url, q).await;
        if s.ready == 0 && s.in_flight == 0 && s.delayed_due == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queue never drained: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn failures_are_retried_with_backoff_then_succeed() {
    let redis = RedisServer::start();
    let q = queue(&redis.url()).await;
    flaky::spawn(&q, ("flaky".into(), 3)).await.unwrap();
    let w = start_worker(&redis.url(), cfg(&["t"], "w1")).await;
    eventually("flaky succeeds", || runs("flaky").len() == 1).await;
    assert_eq!(calls("flaky"), 4);
    assert!(dead_letters(&redis.url(), "t").await.is_empty());
    w.stop().await.unwrap();
}

#[tokio::test]
async fn exhausted_retries_dead_letter_then_replay_and_purge() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    fails_until_fixed::spawn(&q, "dl".into()).await.unwrap();
    fatal_task::spawn(&q, "fatal".into()).await.unwrap();
    panicky::spawn(&q, "panic".into()).await.unwrap();
    sleepy::spawn(&q, "sleepy".into()).await.unwrap();
    let w = start_worker(&url, cfg(&["t"], "w1")).await;
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while letters.len() < 4 {
        assert!(Instant::now() < deadline, "dead letters: {letters:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        letters = dead_letters(&url, "t").await;
    }
    let by_task: HashMap<String, dead::DeadLetter> = letters
        .into_iter()
        .map(|d| (d.task.clone().unwrap(), d))
        .collect();

    let d = &by_task["fails_until_fixed"];
    assert_eq!(d.reason, dead::Reason::RetriesExhausted);
    assert_eq!(d.attempts, 3);
    assert!(d.error.contains("upstream down"), "{}", d.error);
    assert!(d.created_at.unwrap() <= d.failed_at);
    assert_eq!(calls("dl"), 3);

    let f = &by_task["fatal_task"];
    assert_eq!(f.reason, dead::Reason::Fatal);
    assert_eq!(calls("fatal"), 1, "fatal errors are not retried");
    assert!(f.error.contains("user does not exist"));

    let p = &by_task["panicky"];
    assert_eq!(p.reason, dead::Reason::RetriesExhausted);
    assert!(p.error.contains("panicked: kaboom panic"), "{}", p.error);

    let s = &by_task["sleepy"];
    assert!(s.error.contains("timed out after 1s"), "{}", s.error);

    let st = qstats(&url, "t").await;
    assert_eq!(st.dead, 4);
    assert_eq!((st.ready, st.in_flight), (0, 0));

    // Fix the cause and replay: it runs and the dead letter is gone.
    FIXED.lock().unwrap().push("dl".into());
    let b = broker(&url).await;
    assert!(dead::replay(&b, "t", &d.id).await.unwrap());
    assert!(
        !dead::replay(&b, "t", &d.id).await.unwrap(),
        "replayed once only"
    );
    eventually("replayed task runs", || runs("dl").len() == 1).await;
    assert_eq!(qstats(&url, "t").await.dead, 3);

    // Purge one by id, then the rest.
    assert!(dead::purge(&mut b.conn(), "t", &f.id).await.unwrap());
    assert!(!dead::purge(&mut b.conn(), "t", &f.id).await.unwrap());
    assert_eq!(
        dead::purge_before(&mut b.conn(), "t", u64::MAX)
            .await
            .unwrap(),
        2
    );
    assert_eq!(qstats(&url, "t").await.dead, 0);
    w.stop().await.unwrap();
}

/// Replay across queues and forged ids: a message signed for queue `other`
/// copied into `t` is dead-lettered `wrong_queue` and not run; a forged
/// message that claims the id of a real dead letter is kept under its stream
/// entry id and leaves the real one as it was.
#[tokio::test]
async fn copied_and_forged_messages_cannot_run_or_replace_dead_letters() {
    let redis = RedisServer::start();
    let url = redis.url();
    let b = broker(&url).await;
    let stream = keys::QueueKeys::new("t").ready(Priority::Normal).to_owned();
    let good = Signer::new(SECRET.as_bytes());
    let env = |queue: &str, task: &str, args: &str| {
        let raw = serde_json::value::RawValue::from_string(args.into()).unwrap();
        Envelope::new(task, queue, Priority::Normal, raw, Context::default())
    };
    let xadd = |message: String| {
        let mut conn = b.conn();
        let stream = stream.clone();
        async move {
            let id: String = redis::cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg(keys::FIELD_MESSAGE)
                .arg(message)
                .query_async(&mut conn)
                .await
                .unwrap();
            id
        }
    };
    // A real dead letter: a genuine message of a task this worker lacks.
    let real = env("t", "no_such_task", "[]");
    let real_message = good.seal(&real);
    xadd(real_message.clone()).await;
    let w = start_worker(&url, cfg(&["t"], "w-replay")).await;
    let real_id = real.id.to_string();
    eventually_dead(&url, 1).await;
    // A forged message claiming that id, and a genuine one of queue `other`.
    let mut forged = env("t", "record", r#"["forged-id",1]"#);
    forged.id = real.id;
    let forged_entry = xadd(Signer::new(b"not-the-secret").seal(&forged)).await;
    let copied = env("other", "record", r#"["copied",1]"#);
    let copied_entry = xadd(good.seal(&copied)).await;
    let letters = eventually_dead(&url, 3).await;
    let by_id = |id: &str| letters.iter().find(|d| d.id == id).cloned();
    let kept = by_id(&real_id).expect("the real dead letter");
    assert_eq!(kept.reason, dead::Reason::UnknownTask);
    assert_eq!(kept.message, real_message, "not replaced by the forged one");
    assert_eq!(kept.task.as_deref(), Some("no_such_task"));
    let f = by_id(&format!("entry-{forged_entry}")).expect("forged, by entry id");
    assert_eq!(f.reason, dead::Reason::BadSignature);
    assert_eq!(f.task, None, "an unverified task name is not recorded");
    let c = by_id(&format!("entry-{copied_entry}")).expect("copied, by entry id");
    assert_eq!(c.reason, dead::Reason::WrongQueue);
    assert!(c.error.contains("\"other\""), "{}", c.error);
    assert!(runs("forged-id").is_empty() && runs("copied").is_empty());
    // Replay does not put the copy back to run in `t`.
    let err = dead::replay(&b, "t", &c.id).await.unwrap_err().to_string();
    assert!(err.contains("other") && err.contains("purge"), "{err}");
    w.stop().await.unwrap();
}

/// `replay_guard_secs`: a copy of a message of a task that succeeded is
/// acked and skipped (counted in `pym_tasks_replay_skipped_total`); retries
/// of a failed attempt still run; the id is kept with its TTL.
#[tokio::test]
async fn replay_guard_skips_copies_of_processed_tasks() {
    let redis = RedisServer::start();
    let url = redis.url();
    let b = broker(&url).await;
    let stream = keys::QueueKeys::new("t").ready(Priority::Normal).to_owned();
    let registry = pym_core::Metrics::default();
    let bc = BrokerConfig::new(&url, SECRET).with_metrics(&registry);
    let w = start_worker_on(&bc, cfg(&["t"], "w-guard")).await;
    let raw = serde_json::value::RawValue::from_string(r#"["g-once",0]"#.into()).unwrap();
    let env = Envelope::new("guarded", "t", Priority::Normal, raw, Context::default());
    let message = Signer::new(SECRET.as_bytes()).seal(&env);
    let xadd = || {
        let mut conn = b.conn();
        let (stream, message) = (stream.clone(), message.clone());
        async move {
            let _: String = redis::cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg(keys::FIELD_MESSAGE)
                .arg(&message)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    xadd().await;
    eventually("the first run", || runs("g-once").len() == 1).await;
    eventually_stats_zero(&url, "t").await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(keys::processed("t", &env.id.to_string()))
        .query_async(&mut b.conn())
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl), "TTL {ttl}");
    // The same message again (a copy): acked, not run.
    xadd().await;
    eventually_stats_zero(&url, "t").await;
    let skipped = "pym_tasks_replay_skipped_total{task=\"guarded\",queue=\"t\"} 1";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !registry.encode().contains(skipped) {
        assert!(Instant::now() < deadline, "{}", registry.encode());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs("g-once").len(), 1, "a copy of a processed task ran");
    assert!(dead_letters(&url, "t").await.is_empty());
    // A failed attempt is not "processed": its retry runs.
    let q = queue(&url).await;
    guarded::spawn(&q, ("g-retry".into(), 1)).await.unwrap();
    eventually("the retry", || runs("g-retry").len() == 1).await;
    assert_eq!(calls("g-retry"), 2);
    w.stop().await.unwrap();
}

/// The dead letters of queue `t`, once there are `n`.
async fn eventually_dead(url: &str, n: usize) -> Vec<dead::DeadLetter> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let letters = dead_letters(url, "t").await;
        if letters.len() >= n {
            return letters;
        }
        assert!(Instant::now() < deadline, "{letters:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_messages_are_dead_lettered_with_reasons_and_the_worker_goes_on() {
    let redis = RedisServer::start();
    let url = redis.url();
    let b = broker(&url).await;
    let qk = keys::QueueKeys::new("t");
    let stream = qk.ready(Priority::Normal).to_owned();
    let good = Signer::new(SECRET.as_bytes());
    let forger = Signer::new(b"not-the-secret");
    let env = |task: &str, args: &str| {
        Envelope::new(
            task,
            "t",
            Priority::Normal,
            serde_json::value::RawValue::from_string(args.into()).unwrap(),
            Context::default(),
        )
    };
    let xadd = |field: &'static str, value: String| {
        let mut conn = b.conn();
        let stream = stream.clone();
        async move {
            let _: String = redis::cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg(field)
                .arg(value)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    xadd(keys::FIELD_MESSAGE, "garbage".into()).await;
    xadd("x", "no message field".into()).await;
    xadd(
        keys::FIELD_MESSAGE,
        forger.seal(&env("record", r#"["forged",1]"#)),
    )
    .await;
    let tampered = good
        .seal(&env("record", r#"["tampered",1]"#))
        .replace("tampered", "evil");
    xadd(keys::FIELD_MESSAGE, tampered).await;
    xadd(keys::FIELD_MESSAGE, good.seal(&env("no_such_task", "[]"))).await;
    xadd(
        keys::FIELD_MESSAGE,
        good.seal(&env("record", r#"{"wrong":"shape"}"#)),
    )
    .await;
    xadd(keys::FIELD_MESSAGE, good.seal_json(r#"{"v":9}"#)).await;
    let q = queue(&url).await;
    record::spawn(&q, ("after-bad".into(), 1)).await.unwrap();

    let w = start_worker(&url, cfg(&["t"], "w1")).await;
    eventually("good task after bad ones", || runs("after-bad").len() == 1).await;
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while letters.len() < 7 {
        assert!(Instant::now() < deadline, "{letters:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        letters = dead_letters(&url, "t").await;
    }
    let mut reasons: Vec<&str> = letters.iter().map(|d| d.reason.label()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "bad_args",
            "bad_signature",
            "bad_signature",
            "malformed",
            "malformed",
            "unknown_task",
            "unsupported_version"
        ]
    );
    assert!(
        runs("forged").is_empty() && runs("evil").is_empty(),
        "forged context never runs"
    );
    let unknown = letters
        .iter()
        .find(|d| d.reason == dead::Reason::UnknownTask)
        .unwrap();
    assert!(unknown.error.contains("no_such_task"), "{}", unknown.error);
    let bad_args = letters
        .iter()
        .find(|d| d.reason == dead::Reason::BadArgs)
        .unwrap();
    assert!(bad_args.error.contains("record"), "{}", bad_args.error);
    // Forged messages cannot be replayed into running.
    let forged = letters
        .iter()
        .find(|d| d.reason == dead::Reason::BadSignature)
        .unwrap();
    let err = dead::replay(&b, "t", &forged.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("purge"), "{err}");
    eventually_stats_zero(&url, "t").await;
    w.stop().await.unwrap();
}

#[tokio::test]
async fn delayed_tasks_wait_broker_side_then_run() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let w = start_worker(&url, cfg(&["t"], "w1")).await;
    let t0 = Instant::now();
    record::spawn_in(&q, Duration::from_millis(600), ("delayed".into(), 1))
        .await
        .unwrap();
    record::spawn_at(
        &q,
        std::time::SystemTime::now() + Duration::from_secs(3600),
        ("much-later".into(), 1),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(runs("delayed").is_empty(), "ran before its delay");
    let s = qstats(&url, "t").await;
    assert_eq!((s.ready, s.delayed_later), (0, 2), "{s:?}");
    assert!(s.next_due_in_ms.unwrap() <= 600, "{s:?}");
    eventually("delayed task runs", || runs("delayed").len() == 1).await;
    assert!(t0.elapsed() >= Duration::from_millis(600));
    assert_eq!(qstats(&url, "t").await.delayed_later, 1);
    w.stop().await.unwrap();
    // A delayed task survives the worker: it is in Redis, not in memory.
    assert_eq!(qstats(&url, "t").await.delayed_later, 1);
}

#[tokio::test]
async fn higher_priority_runs_first() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    for n in 0..5 {
        record_low::spawn(&q, ("prio".into(), 100 + n))
            .await
            .unwrap();
    }
    for n in 0..5 {
        record::spawn(&q, ("prio".into(), 10 + n)).await.unwrap();
    }
    for n in 0..5 {
        record_high::spawn(&q, ("prio".into(), n)).await.unwrap();
    }
    let mut c = cfg(&["t"], "w1");
    c.concurrency = 1;
    c.batch = 1;
    let w = start_worker(&url, c).await;
    eventually("15 runs", || runs("prio").len() == 15).await;
    let order: Vec<u32> = runs("prio").iter().map(|r| r.n).collect();
    assert_eq!(
        order,
        [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 100, 101, 102, 103, 104]
    );
    w.stop().await.unwrap();
}

#[tokio::test]
async fn leases_are_renewed_so_long_tasks_run_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let mut c = cfg(&["long"], "a");
    c.visibility_timeout = Duration::from_secs(1);
    let a = start_worker(&url, c.clone()).await;
    long_task::spawn(&q, (url.clone(), "lease".into(), 3000))
        .await
        .unwrap();
    eventually_at_least(&url, "runs:lease", 1, Duration::from_secs(20)).await;
    assert_eq!(qstats(&url, "long").await.in_flight, 1);
    c.name = "b".into();
    let b = start_worker(&url, c).await;
    eventually_at_least(&url, "done:lease", 1, Duration::from_secs(20)).await;
    assert_eq!(
        get(&url, "runs:lease").await,
        1,
        "a renewed lease is never reclaimed"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// Entry point of the child worker process of the kill -9 test.
#[tokio::test]
async fn child_worker_process() {
    let Ok(url) = std::env::var("PYM_TEST_CHILD_REDIS") else {
        return; // only meaningful when started by `worker_killed_mid_task_loses_nothing`
    };
    let name = std::env::var("PYM_TEST_CHILD_NAME").unwrap_or_else(|_| "child".into());
    let mut c = cfg(&["long"], &name);
    c.visibility_timeout = Duration::from_secs(
        std::env::var("PYM_TEST_CHILD_VT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
    );
    let w = start_worker(&url, c).await;
    let _ = w.handle.await;
}

/// A child worker process (see `child_worker_process`) on `url`.
fn child_worker(url: &str, name: &str, visibility_secs: u64) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_worker_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PYM_TEST_CHILD_REDIS", url)
        .env("PYM_TEST_CHILD_NAME", name)
        .env("PYM_TEST_CHILD_VT_SECS", visibility_secs.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The consumers of `stream`'s group.
async fn consumers(url: &str, stream: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let rows: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(keys::GROUP)
        .query_async(&mut c)
        .await
        .unwrap();
    rows.iter()
        .filter_map(|r| match r.get("name") {
            Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_killed_worker_s_tasks_are_taken_over_long_before_their_lease_ends() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    for i in 0..4 {
        long_task::spawn(&q, (url.clone(), format!("taken{i}"), 3000))
            .await
            .unwrap();
    }
    // Leases of 5 minutes: only the takeover can bring these tasks back
    // within the test's 20 s.
    let mut child = child_worker(&url, "doomed", 300);
    let rescuer = {
        let mut c = cfg(&["long"], "rescuer");
        c.visibility_timeout = Duration::from_secs(300);
        c
    };
    for i in 0..4 {
        eventually_at_least(&url, &format!("runs:taken{i}"), 1, Duration::from_secs(20)).await;
    }
    // The registry says what the worker holds (as of its last beat).
    let b = broker(&url).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let live = pym_broker::workers::live(&b, Default::default())
            .await
            .unwrap();
        if live.iter().any(|w| w.name == "doomed" && w.in_flight == 4) {
            break;
        }
        assert!(Instant::now() < deadline, "registry: {live:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A live worker with room, then the kill (SIGKILL: no hand-back, the
    // registry entry stays).
    let w = start_worker(&url, rescuer).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    let killed = Instant::now();
    child.wait().unwrap();
    assert_eq!(qstats(&url, "long").await.in_flight, 4);
    for i in 0..4 {
        eventually_at_least(&url, &format!("runs:taken{i}"), 2, Duration::from_secs(20)).await;
    }
    eprintln!(
        "the 4 tasks of the killed worker started again {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    for i in 0..4 {
        eventually_at_least(&url, &format!("done:taken{i}"), 1, Duration::from_secs(20)).await;
        assert_eq!(
            get(&url, &format!("runs:taken{i}")).await,
            2,
            "run again once"
        );
    }
    assert!(
        killed.elapsed() < Duration::from_secs(60),
        "well before the 300 s lease"
    );
    let stream = keys::QueueKeys::new("long")
        .ready(Priority::Normal)
        .to_owned();
    assert_eq!(
        consumers(&url, &stream).await,
        ["rescuer"],
        "the dead consumer left the group"
    );
    eventually_stats_zero(&url, "long").await;
    w.stop().await.unwrap();
    let left = pym_broker::workers::live(&b, Default::default())
        .await
        .unwrap();
    assert!(
        left.iter().all(|w| w.name != "rescuer"),
        "a clean stop leaves the registry: {left:?}"
    );
}

#[tokio::test]
async fn worker_killed_mid_task_loses_nothing() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    long_task::spawn(&q, (url.clone(), "kill9".into(), 1500))
        .await
        .unwrap();
    let mut child = child_worker(&url, "child", 1);
    eventually_at_least(&url, "runs:kill9", 1, Duration::from_secs(20)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(get(&url, "done:kill9").await, 0);
    let s = qstats(&url, "long").await;
    assert_eq!(
        s.in_flight, 1,
        "the dead worker's task is still held: {s:?}"
    );

    let mut c = cfg(&["long"], "rescuer");
    c.visibility_timeout = Duration::from_secs(1);
    let w = start_worker(&url, c).await;
    eventually_at_least(&url, "done:kill9", 1, Duration::from_secs(20)).await;
    assert_eq!(get(&url, "runs:kill9").await, 2, "redelivered once");
    eventually_stats_zero(&url, "long").await;
    assert_eq!(qstats(&url, "long").await.dead, 0);
    w.stop().await.unwrap();
}

#[tokio::test]
async fn drain_finishes_short_tasks_and_hands_back_long_ones() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let mut c = cfg(&["long"], "drainer");
    c.grace_period = Duration::from_millis(1500);
    let w = start_worker(&url, c.clone()).await;
    long_task::spawn(&q, (url.clone(), "short".into(), 300))
        .await
        .unwrap();
    long_task::spawn(&q, (url.clone(), "longer".into(), 20_000))
        .await
        .unwrap();
    eventually_at_least(&url, "runs:short", 1, Duration::from_secs(20)).await;
    eventually_at_least(&url, "runs:longer", 1, Duration::from_secs(20)).await;
    let t0 = Instant::now();
    w.stop().await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert_eq!(
        get(&url, "done:short").await,
        1,
        "finished within the grace period"
    );
    let s = qstats(&url, "long").await;
    assert_eq!(
        (s.ready, s.in_flight),
        (1, 0),
        "long task handed back at once: {s:?}"
    );

    c.name = "next".into();
    let w2 = start_worker(&url, c).await;
    eventually_at_least(&url, "runs:longer", 2, Duration::from_secs(20)).await;
    w2.stop().await.unwrap();
}

#[tokio::test]
async fn worker_survives_redis_restart() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let w = start_worker(&url, cfg(&["t"], "w1")).await;
    record::spawn(&q, ("before-restart".into(), 1))
        .await
        .unwrap();
    eventually("first run", || runs("before-restart").len() == 1).await;
    redis.restart(); // data lost: groups must be re-created
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match record::spawn(&q, ("after-restart".into(), 1)).await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "producer never reconnected: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eventually("run after restart", || !runs("after-restart").is_empty()).await;
    w.stop().await.unwrap();
}

#[tokio::test]
async fn in_flight_is_counted_while_running() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    for i in 0..3 {
        long_task::spawn(&q, (url.clone(), format!("inflight{i}"), 1500))
            .await
            .unwrap();
    }
    let mut c = cfg(&["long"], "w1");
    c.concurrency = 2;
    let w = start_worker(&url, c).await;
    eventually_at_least(&url, "runs:inflight1", 1, Duration::from_secs(20)).await;
    let s = qstats(&url, "long").await;
    assert_eq!(s.work(), 3, "{s:?}");
    assert!(s.in_flight >= 2, "{s:?}");
    w.stop().await.unwrap();
}

#[tokio::test]
async fn fresh_token_tasks_refuse_expired_tokens() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = Arc::new(Context {
        user_id: Some("u".into()),
        claims: Some(serde_json::json!({"sub": "u", "exp": now - 10})),
        ..Default::default()
    });
    let valid = Arc::new(Context {
        user_id: Some("u".into()),
        claims: Some(serde_json::json!({"sub": "u", "exp": now + 600})),
        ..Default::default()
    });
    context::scope(
        expired.clone(),
        needs_fresh::spawn(&q, "fresh-expired".into()),
    )
    .await
    .unwrap();
    context::scope(valid, needs_fresh::spawn(&q, "fresh-valid".into()))
        .await
        .unwrap();
    // Tasks without the attribute run even with an expired token.
    context::scope(expired, record::spawn(&q, ("expired-ok".into(), 1)))
        .await
        .unwrap();
    let w = start_worker(&url, cfg(&["t"], "w1")).await;
    eventually("valid runs", || {
        runs("fresh-valid").len() == 1 && runs("expired-ok").len() == 1
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let l = dead_letters(&url, "t").await;
        if !l.is_empty() {
            break l;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(letters[0].reason, dead::Reason::TokenExpired);
    assert!(
        letters[0].error.contains("requires a fresh token"),
        "{}",
        letters[0].error
    );
    assert!(runs("fresh-expired").is_empty());
    w.stop().await.unwrap();
}

#[tokio::test]
async fn eager_mode_runs_inline_in_context() {
    let q = Queue::eager();
    let ctx = Arc::new(Context {
        user_id: Some("eager-user".into()),
        ..Default::default()
    });
    context::scope(ctx, record::spawn(&q, ("eager".into(), 7)))
        .await
        .unwrap();
    let r = runs("eager");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].ctx.user_id.as_deref(), Some("eager-user"));
    let err = fatal_task::spawn(&q, "eager-fatal".into())
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::Eager(_)), "{err}");
    assert!(err.to_string().contains("user does not exist"));
}

#[tokio::test]
async fn password_urls_work_and_wrong_passwords_say_so() {
    let redis = RedisServer::start_with_password("s3cr3t-pw");
    let q = queue(&redis.url()).await;
    let w = start_worker(&redis.url(), cfg(&["t"], "w1")).await;
    record::spawn(&q, ("password".into(), 1)).await.unwrap();
    eventually("runs with password", || runs("password").len() == 1).await;
    w.stop().await.unwrap();
    let bad = format!("redis://:wrong@127.0.0.1:{}/0", redis.port());
    let err = Broker::connect(&BrokerConfig::new(bad, SECRET))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("pass") || err.contains("WRONGPASS"),
        "{err}"
    );
    assert!(!err.contains("wrong@"), "password leaked into error: {err}");
}

#[tokio::test]
async fn tls_urls_work() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
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
        let ok = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=pym test CA",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
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
    let port = pym_runtime::testing::free_port();
    let redis = RedisServer::start_with(
        None,
        vec![
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            cert.clone(),
            "--tls-key-file".into(),
            key.clone(),
            "--tls-ca-cert-file".into(),
            ca.clone(),
            "--tls-auth-clients".into(),
            "no".into(),
        ],
    );
    let url = format!("rediss://127.0.0.1:{port}/0");
    // Without the CA, the self-signed server is refused.
    assert!(
        Broker::connect(&BrokerConfig::new(&url, SECRET))
            .await
            .is_err()
    );
    let bc = BrokerConfig::new(&url, SECRET).with_ca_file(&ca);
    let q = Queue::connect(&bc).await.unwrap();
    let w = start_worker_on(&bc, cfg(&["t"], "w1")).await;
    record::spawn(&q, ("tls".into(), 1)).await.unwrap();
    eventually("runs over TLS", || runs("tls").len() == 1).await;
    w.stop().await.unwrap();
    drop(redis);
}

async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out)
}

#[tokio::test]
async fn worker_serves_health_readiness_and_metrics() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let port = pym_runtime::testing::free_port();
    // Producer and worker share one registry here, as in `up`.
    let registry = pym_core::Metrics::default();
    let bc = BrokerConfig::new(&url, SECRET).with_metrics(&registry);
    let mut c = cfg(&["t"], "w1");
    c.listen = Some(([127, 0, 0, 1], port).into());
    c.metrics = registry.clone();
    let w = start_worker_on(&bc, c).await;
    let q = Queue::connect(&bc).await.unwrap();
    record::spawn(&q, ("health".into(), 1)).await.unwrap();
    eventually("run", || runs("health").len() == 1).await;
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    assert_eq!(http_get(port, "/readyz").await.0, 200);
    let (status, body) = http_get(port, "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "pym_tasks_enqueued_total",
        "pym_tasks_started_total",
        "pym_tasks_succeeded_total",
        "pym_task_duration_seconds",
        "pym_tasks_in_flight",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics");
    }
    // Broker gone: not ready, still alive.
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(port, "/readyz").await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "readyz never reported the broker down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_get(port, "/healthz").await.0, 200);
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(port, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "readyz never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.stop().await.unwrap();
}

/// The error reporter hears of each dead letter once, with its task, reason
/// and the caller of the spawn (user id, request id; never the token).
#[tokio::test]
async fn each_dead_letter_is_reported_once_with_its_caller() {
    use pym_runtime::{ErrorReport, ErrorReporter, ErrorSource};
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let ctx = Arc::new(Context {
        user_id: Some("user-9".into()),
        request_id: Some("req-dead-1".into()),
        token: Some("tok-secret-9".into()),
        ..Default::default()
    });
    context::scope(ctx, fatal_task::spawn(&q, "reported".into()))
        .await
        .unwrap();
    let reports: Arc<Mutex<Vec<ErrorReport>>> = Arc::default();
    let r = reports.clone();
    let config = WorkerConfig {
        error_reporter: Some(ErrorReporter::new(move |e| {
            r.lock().unwrap().push(e.clone());
        })),
        ..cfg(&["t"], "w-report")
    };
    let w = start_worker(&url, config).await;
    eventually("the dead letter", || !reports.lock().unwrap().is_empty()).await;
    w.stop().await.unwrap();
    let reports = reports.lock().unwrap().clone();
    let dead = dead_letters(&url, "t").await;
    assert_eq!((reports.len(), dead.len()), (1, 1), "{reports:?}");
    let report = &reports[0];
    assert_eq!(
        report.source,
        ErrorSource::DeadLetter {
            task: Some("fatal_task".into()),
            queue: "t".into(),
            reason: "fatal".into(),
            attempts: 1,
        }
    );
    assert_eq!(report.error_id, dead[0].id, "the dead letter's id");
    assert_eq!(report.message, "user does not exist");
    assert_eq!(report.user_id.as_deref(), Some("user-9"));
    assert_eq!(report.request_id.as_deref(), Some("req-dead-1"));
    assert!(!format!("{report:?}").contains("tok-secret-9"));
    assert_eq!(
        dead[0].user_id.as_deref(),
        Some("user-9"),
        "kept in the dead letter too"
    );
}

#[tokio::test]
async fn tasks_not_started_before_their_expiry_are_dead_lettered_or_discarded() {
    use pym_runtime::{Expiry, SpawnOptions};
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    // Spawned with no worker running: they wait past their expiry.
    expiring::spawn(&q, "exp-late".into()).await.unwrap();
    expiring_quietly::spawn(&q, "exp-quiet".into())
        .await
        .unwrap();
    // The spawn's own expiry overrides the task's: this one has a minute.
    let minute = SpawnOptions {
        expires: Some(Expiry::In(Duration::from_secs(60))),
        ..SpawnOptions::default()
    };
    expiring::spawn_with(&q, minute, "exp-in-time".into())
        .await
        .unwrap();
    // Delayed: the expiry counts from when it is due, so it runs.
    expiring::spawn_in(&q, Duration::from_millis(1500), "exp-delayed".into())
        .await
        .unwrap();
    // An expiry before the task is due is refused at once.
    let soon = SpawnOptions {
        when: pym_runtime::When::After(Duration::from_secs(60)),
        expires: Some(Expiry::At(std::time::SystemTime::now())),
        ..SpawnOptions::default()
    };
    let err = expiring::spawn_with(&q, soon, "exp-never".into())
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::ExpiresBeforeDue(_)), "{err}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    expiring_but_retried::spawn(&q, "exp-retried".into())
        .await
        .unwrap();

    let w = start_worker(&url, cfg(&["exp"], "w-exp")).await;
    eventually("in-time, delayed and retried tasks ran", || {
        !runs("exp-in-time").is_empty()
            && !runs("exp-delayed").is_empty()
            && !runs("exp-retried").is_empty()
    })
    .await;
    let dead = dead_letters(&url, "exp").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].reason, dead::Reason::Expired);
    assert_eq!(dead[0].task.as_deref(), Some("expiring"));
    assert!(
        dead[0].error.contains("not started before its expiry"),
        "{}",
        dead[0].error
    );
    assert!(runs("exp-late").is_empty() && runs("exp-quiet").is_empty());
    assert_eq!(calls("exp-retried"), 2);
    // The discarded one is gone: nothing ready, in flight or delayed.
    let s = qstats(&url, "exp").await;
    assert_eq!((s.work(), s.delayed_later, s.dead), (0, 0, 1), "{s:?}");
    w.stop().await.unwrap();
}
