//! Every argument at once, each parameter shape, and the generated handles.

use pym_runtime::task::Task;
use pym_runtime::{Priority, Queue, TaskError, asynctask};
use std::time::Duration;

#[asynctask(
    name = "renamed",
    queue = "emails",
    max_retries = 8,
    timeout_secs = 30,
    priority = "high",
    fresh_token,
    replay_guard_secs = 3600,
    expires_in_secs = 600,
    on_expiry = "discard",
    track(ttl_secs = 90),
)]
pub async fn every_argument(to: String, _: u32, mut n: u8) -> Result<(), TaskError> {
    n += 1;
    let _ = (to, n);
    Ok(())
}

#[asynctask(
    unique(key = "user:{user_id}/{claim.tenant}", until = "started", ttl_secs = 60),
    rate = "5/s",
    max_concurrency = 3,
    limit_key = "{claim.tenant}",
)]
async fn flow_controlled(user_id: String, n: u32) -> Result<(), TaskError> {
    let _ = (user_id, n);
    Ok(())
}

#[asynctask(unique = "{n}", rate = "100/m")]
async fn unique_in_short(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

#[asynctask]
async fn no_argument() -> Result<(), std::io::Error> {
    Ok(())
}

#[asynctask(priority = "low")]
async fn one_argument(pair: (String, u64)) -> Result<(), TaskError> {
    let _ = pair;
    Ok(())
}

/// A periodic task taking the tick, and one taking nothing.
#[asynctask(queue = "cron", cron = "0 */5 * * * *", tz = "Europe/Paris", missed = "all:3")]
async fn every_five_minutes(tick: pym_runtime::Tick) -> Result<(), TaskError> {
    let _ = tick.time();
    Ok(())
}

#[asynctask(cron = "0 3 * * *")]
async fn nightly() -> Result<(), TaskError> {
    Ok(())
}

// Arguments coming from a `macro_rules!` expansion.
macro_rules! task_on {
    ($queue:expr, $retries:expr) => {
        #[asynctask(queue = $queue, max_retries = $retries)]
        async fn from_macro() -> Result<(), TaskError> {
            Ok(())
        }
    };
}
task_on!("generated", 2);

/// A tracked task: its handle reads a typed result.
#[derive(pym_runtime::__private::serde::Serialize, pym_runtime::__private::serde::Deserialize)]
#[serde(crate = "pym_runtime::__private::serde")]
pub struct Report {
    pub lines: u32,
}

#[asynctask(track)]
async fn tracked() -> Result<Report, TaskError> {
    Ok(Report { lines: 3 })
}

#[allow(dead_code)]
async fn spawn_all(queue: &Queue) {
    let _ = every_argument::spawn(queue, ("a".into(), 1, 2)).await;
    let _ = no_argument::spawn_in(queue, Duration::from_secs(1), ()).await;
    let _ = one_argument::spawn_at(queue, std::time::SystemTime::now(), ("b".into(), 3)).await;
    let _ = from_macro::spawn(queue, ()).await;
    let _ = from_macro::spawn_keyed(queue, "key", ()).await;
    let opts = pym_runtime::SpawnOptions {
        expires: Some(pym_runtime::Expiry::In(Duration::from_secs(5))),
        ..Default::default()
    };
    let _ = from_macro::spawn_with(queue, opts, ()).await;
    // Handles: the id, typed results, from an id or a handle.
    if let Ok(h) = tracked::spawn(queue, ()).await {
        let id: pym_runtime::TaskId = h.id();
        let _: Result<Option<Report>, pym_runtime::HandleError> = h.result().await;
        let _: Result<pym_runtime::TaskState, _> = tracked::handle(queue, id).status().await;
        let _ = tracked::cancel(queue, &h).await;
        let _ = tracked::cancel(queue, id).await;
        assert_eq!(h.to_string(), id.to_string());
    }
}

fn main() {
    let o = every_argument::Task::OPTIONS;
    assert_eq!(every_argument::Task::NAME, "renamed");
    assert_eq!(o.queue, "emails");
    assert_eq!(o.max_retries, 8);
    assert_eq!(o.timeout, Duration::from_secs(30));
    assert!(matches!(o.priority, Priority::High));
    assert!(o.fresh_token);
    assert_eq!(o.replay_guard, Some(Duration::from_secs(3600)));
    assert_eq!(o.expires_in, Some(Duration::from_secs(600)));
    assert!(o.discard_expired);
    assert_eq!(o.track, Some(Duration::from_secs(90)));
    assert_eq!(
        tracked::Task::OPTIONS.track,
        Some(pym_runtime::task_record::DEFAULT_TTL)
    );

    let d = no_argument::Task::OPTIONS;
    assert_eq!(no_argument::Task::NAME, "no_argument");
    assert_eq!(d.queue, pym_runtime::TaskOptions::DEFAULT.queue);
    assert!(!d.fresh_token);
    assert_eq!(d.replay_guard, None);
    assert_eq!(d.expires_in, None);
    assert!(!d.discard_expired);
    assert_eq!(d.track, None);
    assert!(matches!(one_argument::Task::OPTIONS.priority, Priority::Low));
    assert_eq!(d.schedule, None);
    let p = every_five_minutes::Task::OPTIONS.schedule.unwrap();
    assert_eq!((p.cron, p.tz, p.takes_tick), ("0 */5 * * * *", "Europe/Paris", true));
    assert_eq!(p.missed, pym_runtime::task::Missed::All(3));
    let n = nightly::Task::OPTIONS.schedule.unwrap();
    assert_eq!((n.cron, n.tz, n.takes_tick), ("0 3 * * *", "UTC", false));
    assert_eq!(n.missed, pym_runtime::task::Missed::Once);
    assert_eq!(from_macro::Task::OPTIONS.queue, "generated");
    assert_eq!(from_macro::Task::OPTIONS.max_retries, 2);

    let f = flow_controlled::Task::OPTIONS;
    assert_eq!(f.unique.map(|u| (u.until_started, u.ttl)), Some((true, Duration::from_secs(60))));
    assert_eq!(f.rate.map(|r| (r.count, r.period)), Some((5, Duration::from_secs(1))));
    assert_eq!(f.max_concurrency, Some(3));
    let keys = flow_controlled::Task::flow(&("ann".to_owned(), 1));
    assert_eq!(keys.unique.as_deref(), Some("user:ann/"), "no claim outside a request");
    assert_eq!(keys.limit.as_deref(), Some(""));
    let u = unique_in_short::Task::OPTIONS.unique.unwrap();
    assert!(!u.until_started);
    assert_eq!(unique_in_short::Task::flow(&7).unique.as_deref(), Some("7"));
    assert_eq!(unique_in_short::Task::OPTIONS.rate.unwrap().period, Duration::from_secs(60));
    assert_eq!(d.unique, None);
    assert_eq!(d.rate, None);
    assert_eq!(d.max_concurrency, None);
    assert!(no_argument::Task::flow(&()).is_empty());
}
