//! Running one delivered task: verify, decode, restore the caller's context,
//! run with a timeout and panic guard, and decide how to settle it.

use super::tracking::{self, Watch};
use crate::Broker;
use crate::ack::Settle;
use crate::dead::{DeadLetter, Reason};
use crate::envelope::{Envelope, Signer, now_ms};
use crate::fetch::Delivery;
use crate::metrics::{TaskHandles, TaskMetrics};
use crate::retry::{Backoff, next_attempt};
use crate::task::{Registration, Registry, TaskFuture, TaskOptions};
use crate::task_record;
use crate::task_spans;
use futures::FutureExt;
use pym_core::context;
use pym_core::keys;
use pym_core::panic_message;
use pym_core::task_run::{self, TaskRun};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// What the executor needs, shared by all tasks of a worker.
pub(crate) struct Executor {
    pub signer: Signer,
    pub registry: &'static Registry,
    pub backoff: Backoff,
    pub max_deliveries: u64,
    /// Metric handles of each task whose own queue this worker consumes,
    /// resolved once at start.
    pub handles: HashMap<&'static str, TaskHandles>,
    pub metrics: Arc<TaskMetrics>,
    /// Told of every dead letter.
    pub reporter: Option<pym_core::ErrorReporter>,
    /// Cancelled ids and the running tasks ([`tracking`]).
    pub watch: Arc<Watch>,
}

impl Executor {
    pub fn new(
        signer: Signer,
        registry: &'static Registry,
        backoff: Backoff,
        max_deliveries: u64,
        queues: &[String],
        metrics: Arc<TaskMetrics>,
    ) -> Self {
        let m = &metrics;
        let handles = registry
            .names()
            .filter_map(|t| {
                let queue = registry.get(t)?.options.queue;
                queues
                    .iter()
                    .any(|q| q == queue)
                    .then(|| (t, m.handles(t, queue)))
            })
            .collect();
        Executor {
            signer,
            registry,
            backoff,
            max_deliveries,
            handles,
            metrics,
            reporter: None,
            watch: Arc::default(),
        }
    }

    /// Tell `reporter` of every dead letter.
    pub fn with_reporter(mut self, reporter: Option<pym_core::ErrorReporter>) -> Self {
        self.reporter = reporter;
        self
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            signer: &self.signer,
            registry: self.registry,
            max_deliveries: self.max_deliveries,
        }
    }

    /// Run `d` (from `queue`, a shard of a sharded queue) to completion and
    /// say how to settle it; metrics are labelled with the queue, not the
    /// shard. `broker` answers the replay guard of the tasks that have one.
    pub async fn run(&self, broker: &Broker, queue: &str, d: &Delivery) -> Settle {
        let mut held = None;
        let settle = self.run_tracked(broker, queue, d, &mut held).await;
        match held {
            Some(release) => Settle::Release {
                then: Box::new(settle),
                release,
            },
            None => settle,
        }
    }

    /// [`Executor::run`], with the task's record and cancellation when it
    /// has them; `held` is what the run holds once the flow gate let it
    /// start ([`super::flow_gate`]).
    async fn run_tracked(
        &self,
        broker: &Broker,
        queue: &str,
        d: &Delivery,
        held: &mut Option<Box<crate::ack::Release>>,
    ) -> Settle {
        let r = match triage(d, queue, &self.rules(), now_ms()) {
            Ok(r) => r,
            Err(dead) => {
                *held = self.unstarted(queue, d);
                return self.dead_recorded(dead);
            }
        };
        let id = r.env.id;
        let record = r.reg.options.track.map(|ttl| (ttl, r.reg.options.timeout));
        if self.watch.is_cancelled(&id) {
            tracing::info!(queue, task = %r.env.task, %id, "task cancelled: acked, not run");
            *held = super::flow_gate::held_unstarted(queue, &r.env, r.reg);
            return self.cancelled(queue, &id, record.map(|r| r.0));
        }
        if let Some((ttl, timeout)) = record {
            let ttl_secs = (ttl + timeout).as_secs();
            // Boxed, as every rare await of the run: a run's future is
            // allocated at its full size for every task.
            match Box::pin(task_record::start(broker, queue, &r.env, ttl_secs)).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(queue, task = %r.env.task, %id, "task cancelled: acked, not run");
                    *held = super::flow_gate::held_unstarted(queue, &r.env, r.reg);
                    return Settle::Ack;
                }
                Err(e) => {
                    tracing::warn!(queue, %id, error = %e, "cannot record the task's start: it runs");
                }
            }
        }
        let run = TaskRun::new();
        let shard = record.map(|(ttl, _)| (Arc::from(queue), ttl));
        self.watch.enter(id, run.clone(), shard);
        let settle =
            task_run::scope(run.clone(), self.run_runnable(broker, queue, d, r, held)).await;
        self.watch.leave(&id);
        let record = record.map(|(ttl, _)| (queue, &id, ttl));
        tracking::settle_run(settle, &run, record, &self.signer)
    }

    /// What delivery `d`, dead-lettered before it started, gives back (the
    /// lock of a unique task), if its message can be read.
    fn unstarted(&self, queue: &str, d: &Delivery) -> Option<Box<crate::ack::Release>> {
        let env = self.signer.open(d.message.as_deref()?).ok()?;
        let reg = self.registry.get(&env.task)?;
        super::flow_gate::held_unstarted(queue, &env, reg)
    }

    /// Acked unrun, and recorded `cancelled` if tracked (`ttl`).
    fn cancelled(&self, queue: &str, id: &uuid::Uuid, ttl: Option<Duration>) -> Settle {
        match ttl {
            None => Settle::Ack,
            Some(ttl) => {
                let outcome = task_record::Outcome::Error("cancelled before it started".into());
                let state = task_record::TaskState::Cancelled;
                let write = task_record::settled(queue, id, ttl, state, outcome);
                tracking::recorded(Settle::Ack, write)
            }
        }
    }

    /// [`Executor::dead`], with the record write of a tracked task
    /// (`expired`, `dead`).
    fn dead_recorded(&self, dead: Box<DeadLetter>) -> Settle {
        let track = dead
            .task
            .as_deref()
            .and_then(|t| self.registry.get(t)?.options.track);
        let id = dead.id.parse::<uuid::Uuid>();
        let (queue, state, error) = (
            dead.queue.clone(),
            tracking::dead_state(dead.reason),
            dead.error.clone(),
        );
        let settle = self.dead(dead);
        match (track, id) {
            (Some(ttl), Ok(id)) => {
                let outcome = task_record::Outcome::Error(error);
                let write = task_record::settled(&queue, &id, ttl, state, outcome);
                tracking::recorded(settle, write)
            }
            _ => settle,
        }
    }

    /// Run a delivery that passed triage (under its replay guard, if it
    /// has one) and say how to settle it.
    async fn run_runnable(
        &self,
        broker: &Broker,
        queue: &str,
        d: &Delivery,
        r: Runnable<'_>,
        held: &mut Option<Box<crate::ack::Release>>,
    ) -> Settle {
        let logical = keys::logical(queue);
        let guard = r
            .reg
            .options
            .replay_guard
            .map(|ttl| (keys::processed(queue, &r.env.id.to_string()), ttl));
        if let Some((key, _)) = &guard
            && Box::pin(already_processed(broker, key)).await
        {
            tracing::info!(
                queue, task = %r.env.task, id = %r.env.id, entry = %d.id,
                "task already processed (replay guard): acked, not run"
            );
            self.metrics.replay_skipped(&r.env.task, logical);
            return Settle::Ack;
        }
        if crate::flow::gated(r.reg)
            && let Err(settle) =
                Box::pin(self.gate(broker, queue, (&r.env, r.reg, r.message))).await
        {
            return settle;
        }
        *held = super::flow_gate::held(queue, &r.env, r.reg);
        // A task sent to a queue other than its own has no handles yet.
        let m = match self.handles.get(r.reg.name) {
            Some(h) if r.reg.options.queue == logical => h.clone(),
            _ => self.metrics.handles(&r.env.task, logical),
        };
        m.started();
        let started = Instant::now();
        let Runnable {
            message,
            env,
            reg,
            fut,
        } = r;
        let (error, retryable) = match execute(&env, &reg.options, fut).await {
            Ok(()) => {
                m.finished(true, started.elapsed().as_secs_f64());
                return match guard {
                    Some((key, ttl)) => Settle::AckProcessed {
                        key,
                        ttl_secs: ttl.as_secs().max(1),
                    },
                    None => Settle::Ack,
                };
            }
            Err(failure) => failure,
        };
        m.finished(false, started.elapsed().as_secs_f64());
        let failure = Failure {
            error,
            retryable,
            max_retries: reg.options.max_retries,
        };
        self.failed(queue, d, message, env, failure)
    }

    /// Record and return a dead letter; an expired task of a task declared
    /// with `on_expiry = "discard"` is acked instead.
    fn dead(&self, dead: Box<DeadLetter>) -> Settle {
        if dead.reason == Reason::Expired
            && let Some(task) = &dead.task
        {
            self.metrics.expired(task, keys::logical(&dead.queue));
            if self
                .registry
                .get(task)
                .is_some_and(|r| r.options.discard_expired)
            {
                tracing::info!(
                    queue = %dead.queue, id = %dead.id, task, error = %dead.error,
                    "task expired: discarded"
                );
                return Settle::Ack;
            }
        }
        tracing::warn!(
            queue = %dead.queue, id = %dead.id, reason = dead.reason.label(),
            error = %dead.error, "task dead-lettered"
        );
        let queue = keys::logical(&dead.queue);
        self.metrics.dead_lettered(queue, dead.reason.label());
        if let Some(reporter) = &self.reporter {
            reporter.report(&dead.report());
        }
        Settle::Dead(dead)
    }

    /// Schedule the next attempt of a failed task, or dead-letter it.
    fn failed(
        &self,
        queue: &str,
        d: &Delivery,
        message: &str,
        env: Envelope,
        f: Failure,
    ) -> Settle {
        let Failure {
            error,
            retryable,
            max_retries,
        } = f;
        if retryable && env.attempt < max_retries {
            let delay = self.backoff.delay(env.attempt, rand::random::<f64>());
            tracing::info!(
                queue, task = %env.task, id = %env.id, entry = %d.id, attempt = env.attempt,
                retry_in = ?delay, %error, "task failed; retry scheduled"
            );
            self.metrics.retried(&env.task, keys::logical(queue));
            let next = next_attempt(&env, &error, delay);
            return Settle::Retry {
                due_ms: next.eta.unwrap_or(0),
                member: keys::delayed_member(next.priority, &self.signer.seal(&next)),
            };
        }
        let (reason, error) = if retryable {
            let error = format!("failed {} times; last error: {error}", env.attempt + 1);
            (Reason::RetriesExhausted, error)
        } else {
            (Reason::Fatal, error)
        };
        let dead = DeadLetter::new(queue, &d.id, message, reason, error, env.attempt + 1);
        self.dead(Box::new(dead))
    }
}

/// Whether the replay guard `key` is set: the task succeeded before. When
/// Redis cannot say, the task runs (at-least-once wins over the guard).
async fn already_processed(broker: &Broker, key: &str) -> bool {
    match redis::cmd("EXISTS")
        .arg(key)
        .query_async::<bool>(&mut broker.conn())
        .await
    {
        Ok(seen) => seen,
        Err(e) => {
            tracing::warn!(key, error = %e, "replay guard unreadable: the task runs");
            false
        }
    }
}

/// How a run failed, and what the task allows.
struct Failure {
    error: String,
    retryable: bool,
    max_retries: u32,
}

/// Run a task in its caller's context, with its timeout and a panic guard,
/// in its `run` span ([`task_spans`]). `Err((error, retryable))` when it
/// failed.
async fn execute(
    env: &Envelope,
    options: &TaskOptions,
    fut: TaskFuture,
) -> Result<(), (String, bool)> {
    let timeout = options.timeout;
    let (otel, traceparent) = task_spans::run(env, options.trace_link);
    let mut ctx = env.ctx.clone();
    if traceparent.is_some() {
        ctx.traceparent = traceparent;
    }
    let ctx = Arc::new(ctx);
    let span = tracing::info_span!(
        "task",
        task = %env.task,
        id = %env.id,
        attempt = env.attempt,
        user_id = ctx.user_id.as_deref().unwrap_or(""),
    );
    let result = tokio::time::timeout(
        timeout,
        AssertUnwindSafe(context::scope(ctx, fut)).catch_unwind(),
    )
    .instrument(span)
    .await;
    let outcome = match result {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err((e.message().to_owned(), e.is_retryable())),
        Ok(Err(panic)) => Err((format!("task panicked: {}", panic_message(&*panic)), true)),
        Err(_) => Err((
            format!("task timed out after {}", fmt_duration(timeout)),
            true,
        )),
    };
    task_spans::ran(
        otel,
        outcome.as_ref().map(|_| ()).map_err(|(e, _)| e.as_str()),
    );
    outcome
}

/// What a delivery is checked against before it runs.
pub(crate) struct Rules<'a> {
    pub signer: &'a Signer,
    pub registry: &'a Registry,
    pub max_deliveries: u64,
}

/// A delivery that passed every check, with its task ready to be polled.
pub(crate) struct Runnable<'d> {
    /// The message as delivered (kept for a later dead letter).
    pub message: &'d str,
    pub env: Envelope,
    pub reg: &'static Registration,
    pub fut: TaskFuture,
}

/// Decide whether delivery `d` of `queue` may run (at `now_ms`, ms since
/// the epoch): it must carry a message, signed with our secret, of a known
/// envelope version, signed for `queue` itself (or the queue of which
/// `queue` is a shard), delivered no more than `max_deliveries` times, naming
/// a task of this worker with arguments of its shape, not expired (a first
/// attempt past its `expires_at`), and, if the task asks for a fresh token,
/// with one that has not expired. Otherwise the dead letter that says why.
pub(crate) fn triage<'d>(
    d: &'d Delivery,
    queue: &str,
    rules: &Rules<'_>,
    now_ms: u64,
) -> Result<Runnable<'d>, Box<DeadLetter>> {
    let message = d.message.as_deref().unwrap_or("");
    let dead = |reason: Reason, error: String, attempts: u32| {
        Box::new(DeadLetter {
            failed_at: now_ms,
            ..DeadLetter::new(queue, &d.id, message, reason, error, attempts)
        })
    };
    if d.message.is_none() {
        let error = format!("stream entry has no `{}` field", keys::FIELD_MESSAGE);
        return Err(dead(Reason::Malformed, error, 0));
    }
    let env = rules
        .signer
        .open(message)
        .map_err(|e| dead((&e).into(), e.to_string(), 0))?;
    if env.queue != keys::logical(queue) {
        let error = format!(
            "signed for queue {:?} but read from queue {queue:?}: copied across queues, not run",
            env.queue
        );
        return Err(dead(Reason::WrongQueue, error, env.attempt));
    }
    if d.deliveries > rules.max_deliveries {
        let error = format!(
            "delivered {} times without finishing (limit {}): its workers crashed or were killed while running it",
            d.deliveries, rules.max_deliveries
        );
        return Err(dead(Reason::TooManyDeliveries, error, env.attempt + 1));
    }
    let Some(reg) = rules.registry.get(&env.task) else {
        let mut known: Vec<_> = rules.registry.names().collect();
        known.sort_unstable();
        let error = format!(
            "no task named {:?} in this worker (it has: {})",
            env.task,
            known.join(", ")
        );
        return Err(dead(Reason::UnknownTask, error, env.attempt));
    };
    if env.attempt == 0
        && let Some(at) = env.expires_at
        && at <= now_ms
    {
        let error = format!(
            "not started before its expiry: {} ms late, not run",
            now_ms - at
        );
        return Err(dead(Reason::Expired, error, 0));
    }
    let now_s = now_ms / 1000;
    if reg.options.fresh_token
        && let Some(exp) = env.ctx.token_expiry()
        && exp <= now_s
    {
        let error = format!(
            "the caller's token expired {}s ago, while the task was queued, and task {:?} requires a fresh token",
            now_s - exp,
            env.task
        );
        return Err(dead(Reason::TokenExpired, error, env.attempt));
    }
    match reg.start(&env.args) {
        Ok(fut) => Ok(Runnable {
            message,
            env,
            reg,
            fut,
        }),
        Err(e) => {
            let error = format!(
                "arguments do not match the parameters of task {:?}: {e}",
                env.task
            );
            Err(dead(Reason::BadArgs, error, env.attempt))
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Task, TaskOptions};
    use pym_core::{Context, Priority};
    use serde_json::value::RawValue;

    struct Add;
    impl Task for Add {
        type Args = (u32, u32);
        const NAME: &'static str = "add";
        const OPTIONS: TaskOptions = TaskOptions::DEFAULT;
        fn call(_: (u32, u32)) -> TaskFuture {
            Box::pin(async { Ok(()) })
        }
    }

    struct Fresh;
    impl Task for Fresh {
        type Args = ();
        const NAME: &'static str = "fresh";
        const OPTIONS: TaskOptions = TaskOptions {
            fresh_token: true,
            ..TaskOptions::DEFAULT
        };
        fn call(_: ()) -> TaskFuture {
            Box::pin(async { Ok(()) })
        }
    }

    static ADD: Registration = Registration::of::<Add>();
    static FRESH: Registration = Registration::of::<Fresh>();

    const NOW_MS: u64 = 1_800_000_000_000;
    const NOW_S: u64 = NOW_MS / 1000;

    fn signer() -> Signer {
        Signer::new(b"secret")
    }

    /// A signed message of `task` with `args`, the token expiring at `exp`.
    fn msg(task: &str, args: &str, exp: Option<u64>) -> String {
        msg_for("q", task, args, exp)
    }

    /// [`msg`], signed for `queue`.
    fn msg_for(queue: &str, task: &str, args: &str, exp: Option<u64>) -> String {
        let ctx = Context {
            claims: exp.map(|e| serde_json::json!({ "exp": e })),
            ..Context::default()
        };
        let args = RawValue::from_string(args.into()).unwrap();
        let mut env = Envelope::new(task, queue, Priority::Normal, args, ctx);
        env.attempt = 2;
        signer().seal(&env)
    }

    fn delivery(message: Option<String>, deliveries: u64) -> Delivery {
        Delivery {
            stream: "s".into(),
            id: "1-0".into(),
            message,
            deliveries,
        }
    }

    /// The task that runs, or the dead letter's (reason, part of its
    /// error, attempts).
    type Want = Result<&'static str, (Reason, &'static str, u32)>;

    /// One row per dead-letter reason, and the cases that run.
    fn rows(s: &Signer) -> Vec<(&'static str, Delivery, Want)> {
        let ok = msg("add", "[1,2]", None);
        vec![
            ("runnable", delivery(Some(ok.clone()), 1), Ok("add")),
            (
                "at the delivery limit",
                delivery(Some(ok.clone()), 5),
                Ok("add"),
            ),
            (
                "fresh token still valid",
                delivery(Some(msg("fresh", "null", Some(NOW_S + 1))), 1),
                Ok("fresh"),
            ),
            (
                "fresh task, no token",
                delivery(Some(msg("fresh", "null", None)), 1),
                Ok("fresh"),
            ),
            (
                "no message field",
                delivery(None, 1),
                Err((Reason::Malformed, "no `m` field", 0)),
            ),
            (
                "not signed",
                delivery(Some("hello".into()), 1),
                Err((Reason::Malformed, "<signature>.", 0)),
            ),
            (
                "forged",
                delivery(Some(Signer::new(b"other").seal_json("{}")), 1),
                Err((Reason::BadSignature, "forged", 0)),
            ),
            (
                "undecodable",
                delivery(Some(s.seal_json(r#"{"v":1}"#)), 1),
                Err((Reason::Undecodable, "missing field", 0)),
            ),
            (
                "future version",
                delivery(Some(s.seal_json(r#"{"v":9}"#)), 1),
                Err((Reason::UnsupportedVersion, "version 9", 0)),
            ),
            (
                "signed for another queue",
                delivery(Some(msg_for("other", "add", "[1,2]", None)), 1),
                Err((Reason::WrongQueue, "signed for queue \"other\"", 2)),
            ),
            (
                "another queue, unknown task",
                delivery(Some(msg_for("other", "nope", "[]", None)), 1),
                Err((Reason::WrongQueue, "read from queue \"q\"", 2)),
            ),
            (
                "too many deliveries",
                delivery(Some(ok.clone()), 6),
                Err((Reason::TooManyDeliveries, "delivered 6 times", 3)),
            ),
            (
                "unknown task",
                delivery(Some(msg("nope", "[]", None)), 1),
                Err((Reason::UnknownTask, "it has: add, fresh", 2)),
            ),
            (
                "bad args",
                delivery(Some(msg("add", r#"["x"]"#, None)), 1),
                Err((Reason::BadArgs, "parameters of task \"add\"", 2)),
            ),
            (
                "token expired",
                delivery(Some(msg("fresh", "null", Some(NOW_S - 7))), 1),
                Err((Reason::TokenExpired, "expired 7s ago", 2)),
            ),
            (
                "token expires now",
                delivery(Some(msg("fresh", "null", Some(NOW_S))), 1),
                Err((Reason::TokenExpired, "expired 0s ago", 2)),
            ),
        ]
    }

    /// The rules of the tests: tasks `add` and `fresh`, 5 deliveries.
    fn rules<'a>(registry: &'a Registry, signer: &'a Signer) -> Rules<'a> {
        Rules {
            signer,
            registry,
            max_deliveries: 5,
        }
    }

    #[test]
    fn triage_table() {
        let (registry, s) = (Registry::of(&[&ADD, &FRESH]), signer());
        let rules = rules(&registry, &s);
        for (name, d, want) in rows(&s) {
            match (triage(&d, "q", &rules, NOW_MS), want) {
                (Ok(r), Ok(task)) => assert_eq!(r.reg.name, task, "{name}"),
                (Err(dead), Err((reason, error, attempts))) => {
                    assert_eq!(dead.reason, reason, "{name}: {}", dead.error);
                    assert!(dead.error.contains(error), "{name}: {}", dead.error);
                    assert_eq!(dead.attempts, attempts, "{name}");
                    assert_eq!(dead.queue, "q", "{name}");
                    assert_eq!(dead.failed_at, NOW_MS, "{name}");
                    // Only a verified message read from its own queue
                    // speaks for its task id.
                    assert_eq!(
                        dead.id.starts_with("entry-"),
                        !reason.keyed_by_task() || dead.task.is_none(),
                        "{name}: {}",
                        dead.id
                    );
                    assert_eq!(
                        dead.message,
                        d.message.clone().unwrap_or_default(),
                        "{name}"
                    );
                }
                (Ok(r), Err(want)) => panic!("{name}: ran {}, wanted {want:?}", r.reg.name),
                (Err(dead), Ok(_)) => panic!("{name}: dead-lettered: {}", dead.error),
            }
        }
    }

    #[test]
    fn only_a_first_attempt_past_its_expiry_expires() {
        let (registry, s) = (Registry::of(&[&ADD, &FRESH]), signer());
        let rules = rules(&registry, &s);
        let table = [
            // (attempt, expires_at, expired)
            (0, None, false),
            (0, Some(NOW_MS + 1), false),
            (0, Some(NOW_MS), true),
            (0, Some(NOW_MS - 7), true),
            (1, Some(NOW_MS - 7), false),
        ];
        for (attempt, expires_at, expired) in table {
            let args = RawValue::from_string("[1,2]".into()).unwrap();
            let mut env = Envelope::new("add", "q", Priority::Normal, args, Context::default());
            (env.attempt, env.expires_at) = (attempt, expires_at);
            let d = delivery(Some(s.seal(&env)), 1);
            match triage(&d, "q", &rules, NOW_MS) {
                Ok(_) => assert!(!expired, "{attempt} {expires_at:?} ran"),
                Err(dead) => {
                    assert!(expired, "{attempt} {expires_at:?}: {}", dead.error);
                    assert_eq!(dead.reason, Reason::Expired);
                    assert_eq!(dead.task.as_deref(), Some("add"));
                }
            }
        }
    }

    #[test]
    fn a_shard_runs_the_tasks_signed_for_its_queue_only() {
        let (registry, s) = (Registry::of(&[&ADD, &FRESH]), signer());
        let rules = rules(&registry, &s);
        let table = [
            ("q#1", "q", None),
            ("q#7", "q", None),
            (
                "q#1",
                "other",
                Some("signed for queue \"other\" but read from queue \"q#1\""),
            ),
            ("q1", "q", Some("signed for queue \"q\"")),
        ];
        for (read_from, signed_for, want) in table {
            let d = delivery(Some(msg_for(signed_for, "add", "[1,2]", None)), 1);
            match (triage(&d, read_from, &rules, NOW_MS), want) {
                (Ok(r), None) => assert_eq!(r.reg.name, "add"),
                (Err(dead), Some(error)) => {
                    assert_eq!(dead.reason, Reason::WrongQueue, "{read_from}");
                    assert!(dead.error.contains(error), "{read_from}: {}", dead.error);
                    // dead-lettered on the shard it was read from
                    assert_eq!(dead.queue, read_from);
                }
                (Ok(_), Some(_)) => panic!("{read_from}: ran a task of {signed_for}"),
                (Err(dead), None) => panic!("{read_from}: dead-lettered: {}", dead.error),
            }
        }
    }
}
