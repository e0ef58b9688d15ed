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

#[asynctask]
async fn no_argument() -> Result<(), std::io::Error> {
    Ok(())
}

#[asynctask(priority = "low")]
async fn one_argument(pair: (String, u64)) -> Result<(), TaskError> {
    let _ = pair;
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
    assert_eq!(from_macro::Task::OPTIONS.queue, "generated");
    assert_eq!(from_macro::Task::OPTIONS.max_retries, 2);
}
