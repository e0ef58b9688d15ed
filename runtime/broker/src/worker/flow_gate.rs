//! The worker's side of flow control ([`crate::flow`]): what a run of a
//! unique, rate-limited or capped task holds, and asking the gate before it
//! starts. Tasks without these options skip both (no round trip).

use super::execute::Executor;
use crate::Broker;
use crate::ack::{Release, Settle};
use crate::envelope::{Envelope, now_ms};
use crate::flow::{self, Admit};
use crate::task::Registration;
use pym_core::keys;

/// How long a task waits when the gate could not be asked (Redis down).
const GATE_UNAVAILABLE_DELAY_MS: u64 = 1000;

/// What a run of `r` (read from `queue`) holds until it is settled: a place
/// of its cap, the lock of a task unique until it finishes. `None` for a
/// task with neither.
pub(crate) fn held(queue: &str, env: &Envelope, reg: &Registration) -> Option<Box<Release>> {
    let o = &reg.options;
    let lock = match (o.unique, &env.flow.unique) {
        (Some(u), Some(k)) if !u.until_started => Some(keys::unique(queue, &env.task, k)),
        _ => None,
    };
    let cap = o
        .max_concurrency
        .map(|max| (flow::cap_keys(queue, env), max));
    (lock.is_some() || cap.is_some()).then(|| {
        Box::new(Release {
            id: env.id.to_string(),
            lock,
            cap,
        })
    })
}

/// What a task that will never start (dead-lettered before it ran,
/// expired, cancelled before it started) gives back: the lock of a unique
/// task, whether unique until it starts or until it finishes, released with
/// the dead letter or the ack. `None` for a task that is not unique.
pub(crate) fn held_unstarted(
    queue: &str,
    env: &Envelope,
    reg: &Registration,
) -> Option<Box<Release>> {
    let (Some(_), Some(k)) = (reg.options.unique, &env.flow.unique) else {
        return None;
    };
    Some(Box::new(Release {
        id: env.id.to_string(),
        lock: Some(keys::unique(queue, &env.task, k)),
        cap: None,
    }))
}

impl Executor {
    /// Ask the gate whether `env` (delivered as `message`) may start now:
    /// `Err` with how to settle it when it may not (deferred to its rate
    /// slot, or parked).
    pub(crate) async fn gate(
        &self,
        broker: &Broker,
        queue: &str,
        (env, reg, message): (&Envelope, &Registration, &str),
    ) -> Result<(), Settle> {
        let logical = keys::logical(queue);
        let admit = match flow::admit(broker, queue, env, reg).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(
                    queue, task = %env.task, id = %env.id, error = %e,
                    "flow gate unavailable: the task waits"
                );
                return Err(Settle::Retry {
                    due_ms: now_ms() + GATE_UNAVAILABLE_DELAY_MS,
                    member: keys::delayed_member(env.priority, message),
                });
            }
        };
        match admit {
            Admit::Run => Ok(()),
            Admit::Defer { slot_ms } => {
                self.metrics.deferred(&env.task, logical);
                let mut next = env.clone();
                next.flow.rate_slot = Some(slot_ms);
                Err(Settle::Retry {
                    due_ms: slot_ms,
                    member: keys::delayed_member(next.priority, &self.signer.seal(&next)),
                })
            }
            Admit::Park { .. } => {
                self.metrics.parked(&env.task, logical);
                Err(Settle::Park {
                    cap: Box::new(flow::cap_keys(queue, env)),
                    max: reg.options.max_concurrency.unwrap_or(1),
                    member: keys::delayed_member(env.priority, message),
                })
            }
        }
    }
}
