//! The run of one task in a worker: whether it was cancelled, the progress
//! it reports, the result it returned. Task-local, like the [`crate::Context`]
//! (read through [`crate::Context::cancelled`] and set through
//! [`crate::Context::progress`]); the worker creates one per run, tells it of a
//! cancellation and writes its progress and result to the task's record.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Progress reported by a task: a fraction from 0 to 1 and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub fraction: f64,
    pub message: String,
}

/// One run of a task.
#[derive(Debug, Default)]
pub struct TaskRun {
    cancelled: AtomicBool,
    told: Notify,
    /// The latest progress not yet written.
    progress: Mutex<Option<Progress>>,
    /// The task's return value, as JSON (tracked tasks).
    result: Mutex<Option<String>>,
}

impl TaskRun {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Tell the task it is cancelled (it sees it at its next check).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.told.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Completes once the run is cancelled.
    pub async fn until_cancelled(&self) {
        loop {
            let told = self.told.notified();
            if self.is_cancelled() {
                return;
            }
            told.await;
        }
    }

    /// Keep `fraction` (clamped to 0..=1) and `message` as the latest
    /// progress; the worker writes it within a second.
    pub fn set_progress(&self, fraction: f64, message: String) {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        *self.progress.lock().unwrap() = Some(Progress { fraction, message });
    }

    /// The progress reported since the last call, if any.
    pub fn take_progress(&self) -> Option<Progress> {
        self.progress.lock().unwrap().take()
    }

    pub fn set_result(&self, json: String) {
        *self.result.lock().unwrap() = Some(json);
    }

    pub fn take_result(&self) -> Option<String> {
        self.result.lock().unwrap().take()
    }
}

tokio::task_local! {
    static RUN: Arc<TaskRun>;
}

/// Run `fut` as the run `run`.
///
/// Not an `async fn`: that would hold `fut` twice (its argument and the
/// scope's future), and the future of every task run is moved on spawn.
pub fn scope<F: Future>(run: Arc<TaskRun>, fut: F) -> impl Future<Output = F::Output> {
    RUN.scope(run, fut)
}

/// The current run (`None` outside a task run by a worker).
pub fn current() -> Option<Arc<TaskRun>> {
    RUN.try_with(Arc::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_is_told_and_keeps_its_latest_progress() {
        assert!(current().is_none());
        let run = TaskRun::new();
        let seen = scope(run.clone(), async {
            let r = current().unwrap();
            r.set_progress(1.7, "almost".into());
            r.set_progress(0.4, "step 2".into());
            r.is_cancelled()
        })
        .await;
        assert!(!seen);
        let p = run.take_progress().unwrap();
        assert_eq!((p.fraction, p.message.as_str()), (0.4, "step 2"));
        assert_eq!(run.take_progress(), None, "taken once");
        run.set_progress(f64::NAN, "x".into());
        assert_eq!(run.take_progress().unwrap().fraction, 0.0);
        let waiter = tokio::spawn({
            let run = run.clone();
            async move { run.until_cancelled().await }
        });
        run.cancel();
        waiter.await.unwrap();
        assert!(run.is_cancelled());
    }
}
