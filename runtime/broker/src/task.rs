//! Tasks: the [`Task`] trait implemented by `#[asynctask]`, per-task options,
//! the error a task returns, and the process-wide registry the worker uses to
//! find every task linked into the binary (via `inventory`, no hand-written list).

use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::time::Duration;

pub use crate::flow;
pub use pym_core::Priority;
pub use pym_schedule::{Missed, Periodic, Tick};

/// The future a task body returns, boxed so the registry can hold it.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send + 'static>>;

/// Per-task options, set as `#[asynctask(...)]` attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOptions {
    /// Queue the task is sent to (`queue = "..."`, default `"default"`).
    pub queue: &'static str,
    /// Retries after the first failed run (`max_retries = N`, default 5).
    pub max_retries: u32,
    /// Run-time limit of one attempt (`timeout_secs = N`, default 300).
    pub timeout: Duration,
    /// Priority within the queue (`priority = "high"|"normal"|"low"`).
    pub priority: Priority,
    /// Refuse to run once the caller's token has expired (`fresh_token`).
    pub fresh_token: bool,
    /// Replay guard (`replay_guard_secs = N`): the id of a task that
    /// succeeded is kept in Redis this long, and a delivery of an id kept
    /// there is acked and skipped, not run again. `None`: off.
    pub replay_guard: Option<Duration>,
    /// Expiry (`expires_in_secs = N`): a task whose first attempt has not
    /// started N seconds after it was due expires (see [`crate::Expiry`]).
    /// `None`: never.
    pub expires_in: Option<Duration>,
    /// An expired task is acked and dropped (`on_expiry = "discard"`), not
    /// dead-lettered with reason `expired` (`on_expiry = "dead_letter"`,
    /// the default).
    pub discard_expired: bool,
    /// A periodic task (`cron = "..", tz = "..", missed = ".."`): fired
    /// once per tick by the workers of its queue ([`crate::schedule`]).
    pub schedule: Option<Periodic>,
    /// `unique(..)`: one task per key at a time ([`crate::unique`]).
    pub unique: Option<crate::flow::Unique>,
    /// `rate = "N/s"`: a global rate limit ([`crate::flow`]).
    pub rate: Option<crate::flow::Rate>,
    /// `max_concurrency = N`: a global cap ([`crate::concurrency`]).
    pub max_concurrency: Option<u32>,
    /// `limit_key` given: the rate and the cap count per key.
    pub limit_per_key: bool,
    /// Each run is the root of a trace of its own, with a link to the
    /// span that enqueued it (`trace_link`), rather than that span's child:
    /// for a task one run of which may answer many requests.
    pub trace_link: bool,
    /// Tracked (`track`, `track(ttl_secs = N)`): the task keeps a record
    /// (state, progress, result) with this time to live, read through its
    /// handle ([`crate::task_record`]). `None`: no record.
    pub track: Option<Duration>,
}

impl TaskOptions {
    pub const DEFAULT: TaskOptions = TaskOptions {
        queue: pym_core::contract::DEFAULT_QUEUE,
        max_retries: 5,
        timeout: Duration::from_secs(300),
        priority: Priority::Normal,
        fresh_token: false,
        replay_guard: None,
        expires_in: None,
        discard_expired: false,
        schedule: None,
        unique: None,
        rate: None,
        max_concurrency: None,
        limit_per_key: false,
        trace_link: false,
        track: None,
    };
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a task attempt failed.
///
/// Any `std::error::Error` converts into a retryable `TaskError` with `?`;
/// use [`TaskError::fatal`] for failures that retrying cannot fix (the task
/// goes straight to the dead letters).
pub struct TaskError {
    message: String,
    retryable: bool,
}

impl TaskError {
    /// A failure worth retrying (the default for `?`).
    pub fn retry(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retryable: true,
        }
    }

    /// A failure that retrying cannot fix: dead-letter at once.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retryable: false,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TaskError({}{})",
            self.message,
            if self.retryable { "" } else { ", fatal" }
        )
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// Like anyhow::Error, TaskError is not itself a std Error, which lets every
// std Error convert into it with `?`.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        TaskError::retry(message)
    }
}

/// What a task function returns: `Result<T, E>`; `T` is the result a
/// tracked task keeps in its record.
pub trait TaskReturn {
    type Ok;
}

impl<T, E> TaskReturn for Result<T, E> {
    type Ok = T;
}

/// Keep `value` as the result of the running tracked task (called by the
/// code `#[asynctask(track)]` generates); a value that does not serialise
/// fails the task for good.
pub fn keep_result<T: Serialize>(value: &T) -> Result<(), TaskError> {
    let json = serde_json::to_string(value)
        .map_err(|e| TaskError::fatal(format!("the task's result does not serialise: {e}")))?;
    if let Some(run) = pym_core::task_run::current() {
        run.set_result(json);
    }
    Ok(())
}

/// A task: implemented by `#[asynctask]`, rarely by hand.
pub trait Task: 'static {
    /// The arguments: one parameter's type, or a tuple of several.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// Name on the wire (the function name unless `name = "..."`).
    const NAME: &'static str;
    const OPTIONS: TaskOptions;
    /// Run the task body.
    fn call(args: Self::Args) -> TaskFuture;
    /// The flow-control keys of a spawn of `args` (its unique key and limit
    /// key, rendered), in the caller's context.
    fn flow(_args: &Self::Args) -> crate::flow::Flow {
        crate::flow::Flow::default()
    }
}

/// One entry of the task registry, submitted by `#[asynctask]`.
pub struct Registration {
    pub name: &'static str,
    pub options: TaskOptions,
    decode_and_call: fn(&RawValue) -> Result<TaskFuture, serde_json::Error>,
}

impl Registration {
    pub const fn of<T: Task>() -> Self {
        Registration {
            name: T::NAME,
            options: T::OPTIONS,
            decode_and_call: decode_and_call::<T>,
        }
    }

    /// Decode JSON arguments and start the task; fails if the JSON does not
    /// have the shape of the task's arguments.
    pub fn start(&self, args: &RawValue) -> Result<TaskFuture, serde_json::Error> {
        (self.decode_and_call)(args)
    }
}

fn decode_and_call<T: Task>(raw: &RawValue) -> Result<TaskFuture, serde_json::Error> {
    let args: T::Args = serde_json::from_str(raw.get())?;
    Ok(T::call(args))
}

inventory::collect!(Registration);

/// Two tasks registered under one name.
#[derive(Debug, thiserror::Error)]
#[error(
    "task name {name:?} is registered {count} times: give each #[asynctask] a unique name with `name = \"...\"`"
)]
pub struct DuplicateTask {
    pub name: &'static str,
    pub count: usize,
}

/// Every task linked into this binary, by name.
pub struct Registry {
    by_name: HashMap<&'static str, &'static Registration>,
}

static REGISTRY: LazyLock<Result<Registry, DuplicateTask>> = LazyLock::new(Registry::build);

impl Registry {
    fn build() -> Result<Registry, DuplicateTask> {
        let mut by_name = HashMap::new();
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        for r in inventory::iter::<Registration> {
            *counts.entry(r.name).or_default() += 1;
            by_name.insert(r.name, r);
        }
        if let Some((name, count)) = counts.into_iter().find(|(_, c)| *c > 1) {
            return Err(DuplicateTask { name, count });
        }
        Ok(Registry { by_name })
    }

    /// The process-wide registry; an error if two tasks share a name.
    /// A registry of exactly `regs` (tests of the worker's decisions).
    #[cfg(all(test, feature = "worker"))]
    pub(crate) fn of(regs: &[&'static Registration]) -> Registry {
        Registry {
            by_name: regs.iter().map(|r| (r.name, *r)).collect(),
        }
    }

    pub fn global() -> Result<&'static Registry, &'static DuplicateTask> {
        REGISTRY.as_ref()
    }

    pub fn get(&self, name: &str) -> Option<&'static Registration> {
        self.by_name.get(name).copied()
    }

    /// Queues used by the registered tasks, sorted.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut q: Vec<_> = self.by_name.values().map(|r| r.options.queue).collect();
        q.sort_unstable();
        q.dedup();
        q
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

/// The queue-name check (defined once, in [`crate::contract`]).
pub use pym_core::contract::validate_queue_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_round_trip_and_errors() {
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
            assert_eq!(Priority::from_index(p.index()), Some(p));
        }
        let err = "urgent".parse::<Priority>().unwrap_err();
        assert!(err.contains("\"high\""), "{err}");
        assert_eq!(serde_json::to_string(&Priority::Low).unwrap(), "\"low\"");
    }

    #[test]
    fn std_errors_convert_retryable_with_sources() {
        let e: TaskError = std::io::Error::other("disk full").into();
        assert!(e.is_retryable());
        assert_eq!(e.message(), "disk full");
        assert!(!TaskError::fatal("no such user").is_retryable());
    }
}
