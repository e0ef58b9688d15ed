//! The worker's side of cancellation, progress and task records: the ids
//! cancelled on the queues it reads (refreshed once a second by
//! [`watch_loop`]), the runs of the tasks it is running (told of a cancel,
//! their progress written), and the record write that goes with each
//! outcome of a tracked task ([`recorded`]).

use super::Shared;
use crate::Broker;
use crate::ack::Settle;
use crate::cancel;
use crate::dead::Reason;
use crate::envelope::Signer;
use crate::task_record::{self, Outcome, RecordWrite, TaskState, field};
use pym_core::keys;
use pym_core::task_run::TaskRun;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// How often cancels are read and progress is written.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// A task this worker runs.
struct Running {
    run: Arc<TaskRun>,
    /// Tracked: the queue (shard) of its record, and the record's TTL.
    record: Option<(Arc<str>, Duration)>,
}

/// Cancelled ids and running tasks.
#[derive(Default)]
pub(crate) struct Watch {
    /// Ids cancelled on the queues read, with when (ms, Redis's clock).
    cancelled: Mutex<HashMap<Uuid, u64>>,
    /// Whether `cancelled` holds any id: while none is, a run's check is
    /// one atomic load, not a lock (the path of every untracked task).
    any_cancelled: AtomicBool,
    /// Per queue read: ids cancelled at or after this were not all read.
    since: Mutex<Vec<u64>>,
    running: Mutex<HashMap<Uuid, Running>>,
}

impl Watch {
    /// Whether `id` was cancelled (as of the last read, at most a second ago).
    pub fn is_cancelled(&self, id: &Uuid) -> bool {
        self.any_cancelled.load(Ordering::Acquire)
            && self.cancelled.lock().unwrap().contains_key(id)
    }

    /// Task `id` starts as `run` (tracked: its record on `queue`, kept `ttl`).
    pub fn enter(&self, id: Uuid, run: Arc<TaskRun>, record: Option<(Arc<str>, Duration)>) {
        if self.is_cancelled(&id) {
            run.cancel();
        }
        self.running
            .lock()
            .unwrap()
            .insert(id, Running { run, record });
    }

    pub fn leave(&self, id: &Uuid) {
        self.running.lock().unwrap().remove(id);
    }

    /// Read the ids cancelled on `queues` since the last read, tell the
    /// running tasks among them, and write the progress reported since.
    pub async fn poll(&self, broker: &Broker, queues: &[String]) -> crate::Result<()> {
        let since = {
            let mut s = self.since.lock().unwrap();
            s.resize(queues.len(), 0);
            s.clone()
        };
        let read = cancel::since(&mut broker.conn(), queues, &since).await?;
        let fresh = self.note(&read);
        let mut pipe = redis::pipe();
        for (id, r) in self.running.lock().unwrap().iter() {
            if fresh.contains(id) {
                r.run.cancel();
            }
            if let (Some((queue, ttl)), Some(p)) = (&r.record, r.run.take_progress()) {
                RecordWrite::new(queue, id, *ttl)
                    .set(field::FRACTION, p.fraction)
                    .set(field::MESSAGE, p.message)
                    .add_to_pipe(&mut pipe);
            }
        }
        if pipe.cmd_iter().next().is_some() {
            let () = pipe.query_async(&mut broker.conn()).await?;
        }
        Ok(())
    }

    /// Keep the ids of `read` (one list per queue), move each queue's
    /// `since` to the latest time read, forget ids older than the cancel
    /// keep; the ids not seen before.
    fn note(&self, read: &[Vec<(String, f64)>]) -> Vec<Uuid> {
        let mut cancelled = self.cancelled.lock().unwrap();
        let mut since = self.since.lock().unwrap();
        let mut fresh = Vec::new();
        for (i, ids) in read.iter().enumerate() {
            for (id, at) in ids {
                let at = *at as u64;
                since[i] = since[i].max(at);
                if let Ok(id) = id.parse::<Uuid>()
                    && cancelled.insert(id, at).is_none()
                {
                    fresh.push(id);
                }
            }
        }
        let latest = since.iter().copied().max().unwrap_or(0);
        cancelled.retain(|_, at| *at + keys::CANCEL_KEEP_MS > latest);
        self.any_cancelled
            .store(!cancelled.is_empty(), Ordering::Release);
        fresh
    }
}

/// Once a second until the worker is quiet and its last task ended:
/// [`Watch::poll`].
pub(super) async fn watch_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let t = &shared.tasks;
        if shared.quiet.is_cancelled() && t.is_closed() && t.is_empty() {
            return;
        }
        match shared
            .executor
            .watch
            .poll(&shared.broker, &shared.shards)
            .await
        {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read cancelled tasks or write progress; retrying each second");
            }
            Err(_) => {}
        }
    }
}

/// The state and record contents an outcome leaves, for a run that was
/// told of a cancel or not. A cancelled run that did not succeed is acked
/// (no retry, no dead letter) and recorded `cancelled`.
pub(crate) fn after_run(
    settle: &Settle,
    cancelled: bool,
    result: Option<String>,
) -> (TaskState, Outcome) {
    match settle {
        Settle::Ack | Settle::AckProcessed { .. } => {
            (TaskState::Succeeded, Outcome::Result(result))
        }
        _ if cancelled => (
            TaskState::Cancelled,
            Outcome::Error("cancelled while running".into()),
        ),
        Settle::Retry { due_ms, .. } => (
            TaskState::Retrying,
            Outcome::RetryAt(*due_ms, String::new()),
        ),
        Settle::Dead(d) => (dead_state(d.reason), Outcome::Error(d.error.clone())),
        // Parked by its concurrency cap: in the delayed set until a place frees.
        Settle::Park { .. } => (TaskState::Delayed, Outcome::Result(None)),
        Settle::Release { then, .. } => after_run(then, cancelled, result),
        Settle::HandBack { .. } | Settle::Record { .. } => {
            (TaskState::Queued, Outcome::Result(None))
        }
    }
}

/// The state of a task dead-lettered for `reason`.
pub(crate) fn dead_state(reason: Reason) -> TaskState {
    match reason {
        Reason::Expired => TaskState::Expired,
        Reason::Fatal | Reason::RetriesExhausted => TaskState::Failed,
        _ => TaskState::Dead,
    }
}

/// `settle` with the record write of a tracked task's outcome.
pub(crate) fn recorded(settle: Settle, write: RecordWrite) -> Settle {
    Settle::Record {
        write: Box::new(write),
        then: Box::new(settle),
    }
}

/// The settlement of a run of a tracked task (`record`: its queue and TTL):
/// `settle`, acked instead if it was cancelled and did not succeed, with its
/// record write. A retry's record gets the error the next attempt carries.
pub(crate) fn settle_run(
    settle: Settle,
    run: &TaskRun,
    record: Option<(&str, &Uuid, Duration)>,
    signer: &Signer,
) -> Settle {
    let cancelled = run.is_cancelled();
    let Some((queue, id, ttl)) = record else {
        return match settle {
            Settle::Retry { .. } | Settle::Dead(_) if cancelled => Settle::Ack,
            s => s,
        };
    };
    let (state, mut outcome) = after_run(&settle, cancelled, run.take_result());
    if let (Outcome::RetryAt(_, e), Settle::Retry { member, .. }) = (&mut outcome, &settle) {
        *e = signer
            .open(member.get(1..).unwrap_or(""))
            .ok()
            .and_then(|env| env.last_error)
            .unwrap_or_default();
    }
    let settle = match settle {
        Settle::Retry { .. } | Settle::Dead(_) if cancelled => Settle::Ack,
        s => s,
    };
    recorded(settle, task_record::settled(queue, id, ttl, state, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead::DeadLetter;

    #[test]
    fn each_outcome_leaves_its_state() {
        let retry = Settle::Retry {
            due_ms: 9,
            member: "m".into(),
        };
        let dead = |reason| {
            Settle::Dead(Box::new(DeadLetter::new(
                "q",
                "1-0",
                "msg",
                reason,
                "why".into(),
                1,
            )))
        };
        let table = [
            (Settle::Ack, false, TaskState::Succeeded),
            (Settle::Ack, true, TaskState::Succeeded),
            (retry.clone(), false, TaskState::Retrying),
            (retry, true, TaskState::Cancelled),
            (dead(Reason::Fatal), false, TaskState::Failed),
            (dead(Reason::RetriesExhausted), false, TaskState::Failed),
            (dead(Reason::Expired), false, TaskState::Expired),
            (dead(Reason::BadArgs), false, TaskState::Dead),
            (dead(Reason::TooManyDeliveries), false, TaskState::Dead),
            (dead(Reason::Fatal), true, TaskState::Cancelled),
        ];
        for (settle, cancelled, want) in table {
            let (got, _) = after_run(&settle, cancelled, None);
            assert_eq!(got, want, "{settle:?} cancelled={cancelled}");
        }
        let (_, out) = after_run(&Settle::Ack, false, Some("3".into()));
        assert_eq!(out, Outcome::Result(Some("3".into())));
    }

    #[test]
    fn a_cancelled_run_that_failed_is_acked_not_retried() {
        let signer = Signer::new(b"s");
        let run = TaskRun::new();
        run.cancel();
        let retry = Settle::Retry {
            due_ms: 9,
            member: "m".into(),
        };
        assert!(matches!(
            settle_run(retry.clone(), &run, None, &signer),
            Settle::Ack
        ));
        let id = Uuid::now_v7();
        let s = settle_run(
            retry,
            &run,
            Some(("q", &id, Duration::from_secs(5))),
            &signer,
        );
        let Settle::Record { write, then } = s else {
            panic!("recorded: {s:?}");
        };
        assert!(matches!(*then, Settle::Ack));
        assert!(write.fields.contains(&("s", "cancelled".into())));
        let calm = TaskRun::new();
        assert!(matches!(
            settle_run(Settle::Ack, &calm, None, &signer),
            Settle::Ack
        ));
    }

    #[test]
    fn cancels_are_read_once_and_since_moves_on() {
        let w = Watch::default();
        *w.since.lock().unwrap() = vec![0, 0];
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let read = vec![vec![(a.to_string(), 100.0)], vec![(b.to_string(), 50.0)]];
        assert_eq!(w.note(&read), [a, b]);
        assert_eq!(*w.since.lock().unwrap(), [100, 50]);
        assert!(w.note(&read).is_empty(), "seen already");
        assert!(w.is_cancelled(&a) && w.is_cancelled(&b));
        let run = TaskRun::new();
        w.enter(a, run.clone(), None);
        assert!(
            run.is_cancelled(),
            "a task cancelled before it entered is told at once"
        );
        w.leave(&a);
        let later = vec![
            vec![("junk".to_string(), keys::CANCEL_KEEP_MS as f64 + 60.0)],
            vec![],
        ];
        assert!(w.note(&later).is_empty());
        assert!(!w.is_cancelled(&b), "forgotten after the keep");
    }
}
