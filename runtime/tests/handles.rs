//! Task handles on a real redis-server: every state a tracked task's record
//! goes through (queued, delayed, running with progress, retrying, succeeded
//! with a typed result, failed, dead, expired, cancelled), handles built from
//! an id, and the TTL that bounds every record.

use pym_broker::retry::Backoff;
use pym_broker::worker::{Worker, WorkerConfig};
use pym_broker::{BrokerConfig, keys};
use pym_core::context::{self, Context};
use pym_runtime::testing::RedisServer;
use pym_runtime::{
    Cancelled, HandleError, Queue, TaskError, TaskHandle, TaskId, TaskState, asynctask,
};
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const SECRET: &str = "test-secret";

/// Tags of the `stepper` runs allowed to finish.
static RELEASED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);
/// Tags of every task body that ran.
static RAN: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Mutex::default);

fn ran(tag: &str) -> usize {
    RAN.lock().unwrap().iter().filter(|t| *t == tag).count()
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sum {
    total: u64,
    label: String,
}

#[asynctask(queue = "h", track)]
async fn add(a: u64, b: u64) -> Result<Sum, TaskError> {
    RAN.lock().unwrap().push(format!("add-{a}-{b}"));
    Ok(Sum {
        total: a + b,
        label: format!("{a}+{b}"),
    })
}

/// Reports progress, then waits for its tag to be released.
#[asynctask(queue = "h", track)]
async fn stepper(tag: String) -> Result<u32, TaskError> {
    let ctx = context::context();
    ctx.progress(0.4, "step 2");
    while !RELEASED.lock().unwrap().contains(&tag) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    RAN.lock().unwrap().push(tag);
    Ok(7)
}

/// Fails for retry on its first attempt, then for good.
#[asynctask(queue = "h", track, max_retries = 3)]
async fn failing(tag: String) -> Result<(), TaskError> {
    RAN.lock().unwrap().push(tag.clone());
    if ran(&tag) == 1 {
        return Err(TaskError::retry("first attempt: upstream down"));
    }
    Err(TaskError::fatal("second attempt: no such user"))
}

/// Dead-lettered before it runs when the caller's token expired.
#[asynctask(queue = "h", track, fresh_token)]
async fn needs_token(tag: String) -> Result<(), TaskError> {
    RAN.lock().unwrap().push(tag);
    Ok(())
}

#[asynctask(queue = "h", track, expires_in_secs = 1)]
async fn perishable(tag: String) -> Result<(), TaskError> {
    RAN.lock().unwrap().push(tag);
    Ok(())
}

/// Its record lives 1 s after each write.
#[asynctask(queue = "h", track(ttl_secs = 1))]
async fn brief(tag: String) -> Result<String, TaskError> {
    RAN.lock().unwrap().push(tag.clone());
    Ok(tag)
}

#[asynctask(queue = "h")]
async fn untracked(tag: String) -> Result<(), TaskError> {
    RAN.lock().unwrap().push(tag);
    Ok(())
}

fn cfg(retry_after: Duration) -> WorkerConfig {
    WorkerConfig {
        queues: vec!["h".into()],
        concurrency: 8,
        visibility_timeout: Duration::from_secs(5),
        grace_period: Duration::from_secs(1),
        backoff: Backoff {
            base: retry_after,
            max: retry_after,
        },
        name: format!("w-{}", uuid::Uuid::now_v7()),
        listen: None,
        block: Duration::from_millis(100),
        ..WorkerConfig::default()
    }
}

struct Running(oneshot::Sender<()>, tokio::task::JoinHandle<()>);

impl Running {
    async fn stop(self) {
        let _ = self.0.send(());
        let _ = self.1.await;
    }
}

async fn start_worker(url: &str, config: WorkerConfig) -> Running {
    let worker = Worker::connect(&BrokerConfig::new(url, SECRET), config)
        .await
        .unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running(tx, h)
}

async fn queue(url: &str) -> Queue {
    Queue::connect(&BrokerConfig::new(url, SECRET))
        .await
        .unwrap()
}

/// Polls `h`'s state until it is `want` (20 s at most).
async fn until_state<T>(h: &TaskHandle<T>, want: TaskState) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = h.status().await.unwrap();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{h}: still {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ttl_of(url: &str, key: &str) -> i64 {
    let mut c = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_handle_reports_queued_delayed_running_with_progress_and_a_typed_result() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let sum = add::spawn(&q, (2, 3)).await.unwrap();
    let later = add::spawn_in(&q, Duration::from_secs(3600), (4, 5))
        .await
        .unwrap();
    assert_eq!(sum.status().await.unwrap(), TaskState::Queued);
    assert_eq!(later.status().await.unwrap(), TaskState::Delayed);
    assert_eq!(sum.result().await.unwrap(), None, "no result yet");
    // Every record has a TTL; a delayed one outlives its delay.
    let key = |h: &TaskHandle<Sum>| keys::task_record("h", &h.id().to_string());
    let ttl = ttl_of(&url, &key(&sum)).await;
    assert!(ttl > 0 && ttl <= 24 * 3600 * 1000, "{ttl}");
    assert!(ttl_of(&url, &key(&later)).await > 3600 * 1000);

    // The handle is the id: shown as it, equal to another handle of it.
    let id: TaskId = sum.id();
    assert_eq!(sum.to_string(), id.to_string());
    assert_eq!(TaskId::from(&sum), id);
    let other = add::handle(&queue(&url).await, id);
    assert_eq!(other, sum);
    assert_ne!(later, sum);

    let step = stepper::spawn(&q, "step".into()).await.unwrap();
    let w = start_worker(&url, cfg(Duration::from_millis(50))).await;
    let done = sum.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    let got: Option<Sum> = other.result().await.unwrap();
    assert_eq!(
        got,
        Some(Sum {
            total: 5,
            label: "2+3".into()
        })
    );
    until_state(&step, TaskState::Running).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let p = loop {
        if let Some(p) = step.progress().await.unwrap() {
            break p;
        }
        assert!(Instant::now() < deadline, "no progress written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((p.fraction, p.message.as_str()), (0.4, "step 2"));
    let err = step.wait(Duration::from_millis(100)).await.unwrap_err();
    assert!(
        matches!(
            err,
            HandleError::Timeout {
                state: TaskState::Running,
                ..
            }
        ),
        "{err}"
    );
    RELEASED.lock().unwrap().insert("step".into());
    let r = step.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(r.state, TaskState::Succeeded);
    assert_eq!(step.result().await.unwrap(), Some(7));
    assert!(r.started_ms.is_some() && r.finished_ms.is_some(), "{r:?}");
    // The record never holds the token or the arguments.
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("step\""), "{json}");
    assert_eq!(later.status().await.unwrap(), TaskState::Delayed);
    // From the id alone (the admin API's reader).
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let found = pym_runtime::task_record::find(&mut c, step.id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.state, found.queue.as_str()),
        (TaskState::Succeeded, "h")
    );
    let none = pym_runtime::task_record::find(&mut c, uuid::Uuid::now_v7()).await;
    assert!(none.unwrap().is_none());
    w.stop().await;
}

#[tokio::test]
async fn failures_are_retrying_then_failed_and_bad_tasks_dead_or_expired() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let perished = perishable::spawn(&q, "perished".into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired_ctx = Arc::new(Context {
        claims: Some(serde_json::json!({ "exp": 1 })),
        ..Context::default()
    });
    let dead = context::scope(expired_ctx, needs_token::spawn(&q, "stale".into()))
        .await
        .unwrap();
    let fail = failing::spawn(&q, "fail".into()).await.unwrap();
    // Retries wait 1.5 s: long enough to see `retrying`.
    let w = start_worker(&url, cfg(Duration::from_millis(1500))).await;
    until_state(&fail, TaskState::Retrying).await;
    let r = fail.record().await.unwrap();
    assert_eq!(r.error.as_deref(), Some("first attempt: upstream down"));
    assert!(r.due_ms.is_some(), "{r:?}");
    let r = fail.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(r.state, TaskState::Failed);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.error.as_deref(), Some("second attempt: no such user"));
    assert_eq!(fail.result().await.unwrap(), None);

    let r = dead.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(r.state, TaskState::Dead);
    assert!(r.error.unwrap().contains("token expired"));
    let r = perished.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(r.state, TaskState::Expired);
    assert_eq!((ran("stale"), ran("perished")), (0, 0));
    w.stop().await;
}

#[tokio::test]
async fn a_cancelled_task_reports_cancelled_and_untracked_handles_say_so() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let h = add::spawn_in(&q, Duration::from_millis(500), (10, 20))
        .await
        .unwrap();
    assert_eq!(add::cancel(&q, &h).await.unwrap(), Cancelled::BeforeStart);
    assert_eq!(h.status().await.unwrap(), TaskState::Cancelled);
    assert_eq!(
        h.cancel().await.unwrap(),
        Cancelled::AlreadyFinished(TaskState::Cancelled)
    );
    let plain = untracked::spawn(&q, "plain".into()).await.unwrap();
    assert!(!plain.is_tracked());
    let err = plain.status().await.unwrap_err();
    assert!(err.to_string().contains("#[asynctask(track)]"), "{err}");
    let w = start_worker(&url, cfg(Duration::from_millis(50))).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while ran("plain") == 0 {
        assert!(Instant::now() < deadline, "the untracked task did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(ran("add-10-20"), 0, "cancelled: never ran");
    // An untracked task writes no record.
    let plain_key = keys::task_record("h", &plain.id().to_string());
    assert_eq!(ttl_of(&url, &plain_key).await, -2, "no such key");
    assert_eq!(h.status().await.unwrap(), TaskState::Cancelled);
    // Eager queues keep no record.
    let eager = add::spawn(&Queue::eager(), (1, 1)).await.unwrap();
    assert!(matches!(
        eager.status().await,
        Err(HandleError::Eager { .. })
    ));
    w.stop().await;
}

#[tokio::test]
async fn a_record_is_gone_after_its_ttl() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = queue(&url).await;
    let w = start_worker(&url, cfg(Duration::from_millis(50))).await;
    let h = brief::spawn(&q, "brief".into()).await.unwrap();
    let r = h.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(r.state, TaskState::Succeeded);
    assert_eq!(h.result().await.unwrap().as_deref(), Some("brief"));
    let ttl = ttl_of(&url, &keys::task_record("h", &h.id().to_string())).await;
    assert!((1..=1000).contains(&ttl), "{ttl}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let err = h.status().await.unwrap_err();
    assert!(matches!(err, HandleError::NotFound { .. }), "{err}");
    w.stop().await;
}
