//! Pure: what the reconciler observed → the `PymService` status it writes.
//!
//! The operator owns `observedGeneration`, `conditions`, `api`,
//! `workers.current/ready/summary` and `redisEndpoint`. The autoscaler
//! (issue #7) owns `workers.desired`, `queueDepth`, `lastScaleTime` and
//! `lastScaleReason` under its own field manager; the status built here
//! leaves those unset so a server-side apply never touches them.

use crate::condition;
use crate::crd::{PymServiceStatus, ReplicaStatus, WorkerStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// The condition types the operator's reconciler owns.
pub const OWN_CONDITIONS: [&str; 3] = [READY, PROGRESSING, DEGRADED];

/// Replica counts of one Deployment, as the reconciler saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    /// The Deployment controller has seen the latest spec.
    pub observed: bool,
}

impl Counts {
    pub fn of(d: &Deployment) -> Counts {
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = d.status.clone().unwrap_or_default();
        Counts {
            desired,
            ready: st.ready_replicas.unwrap_or(0),
            updated: st.updated_replicas.unwrap_or(0),
            observed: st.observed_generation.is_some()
                && st.observed_generation == d.metadata.generation,
        }
    }

    /// Rolled out: the controller saw the spec, and every wanted pod is new and ready.
    pub fn done(&self) -> bool {
        self.observed && self.ready >= self.desired && self.updated >= self.desired
    }
}

/// What one reconcile observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub generation: Option<i64>,
    pub api: Counts,
    pub workers: Option<Counts>,
    pub redis: Option<Counts>,
    pub redis_endpoint: Option<String>,
}

/// A failed reconcile: condition reason (PascalCase) and a message that says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
}

/// Status after a successful apply.
pub fn after_apply(
    prev: Option<&PymServiceStatus>,
    obs: &Observed,
    now: &Time,
) -> PymServiceStatus {
    let mut waiting = Vec::new();
    if !obs.api.done() {
        waiting.push(format!("api {}/{}", obs.api.ready, obs.api.desired));
    }
    if let Some(w) = obs.workers.filter(|w| !w.done()) {
        waiting.push(format!("workers {}/{}", w.ready, w.desired));
    }
    if let Some(r) = obs.redis.filter(|r| !r.done()) {
        waiting.push(format!("redis {}/{}", r.ready, r.desired));
    }
    let ready = waiting.is_empty();
    let cond = conditions_after(prev, obs.generation, now);
    let conditions = vec![
        if ready {
            cond(READY, true, "AllReady", "API, workers and Redis are ready")
        } else {
            cond(
                READY,
                false,
                "Waiting",
                &format!("waiting for {}", waiting.join(", ")),
            )
        },
        if ready {
            cond(
                PROGRESSING,
                false,
                "RolledOut",
                "every Deployment is rolled out",
            )
        } else {
            cond(
                PROGRESSING,
                true,
                "RollingOut",
                &format!("rolling out: {}", waiting.join(", ")),
            )
        },
        cond(
            DEGRADED,
            false,
            "ReconcileSucceeded",
            "the last reconcile applied every object",
        ),
    ];
    PymServiceStatus {
        observed_generation: obs.generation,
        conditions,
        api: Some(ReplicaStatus {
            desired: obs.api.desired,
            ready: obs.api.ready,
            summary: format!("{}/{}", obs.api.ready, obs.api.desired),
        }),
        workers: obs.workers.map(|w| WorkerStatus {
            current: w.desired,
            ready: w.ready,
            desired: None,
            summary: format!("{}/{}", w.ready, w.desired),
        }),
        redis_endpoint: obs.redis_endpoint.clone(),
        ..Default::default()
    }
}

/// Status after a failed reconcile: the operator's previous counts are kept
/// (a server-side apply that left them out would delete them), Ready turns
/// False only if it was not already known, Degraded turns True.
pub fn after_failure(
    prev: Option<&PymServiceStatus>,
    generation: Option<i64>,
    failure: &Failure,
    now: &Time,
) -> PymServiceStatus {
    let prev_ready = prev
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == READY))
        .map(|c| c.status == "True")
        .unwrap_or(false);
    let msg = failure.message.as_str();
    let cond = conditions_after(prev, generation, now);
    let conditions = vec![
        if prev_ready {
            cond(
                READY,
                true,
                "AllReady",
                "pods are ready, but the last reconcile failed",
            )
        } else {
            cond(READY, false, &failure.reason, msg)
        },
        cond(PROGRESSING, false, &failure.reason, msg),
        cond(DEGRADED, true, &failure.reason, msg),
    ];
    let mut st = own_fields(prev);
    st.observed_generation = generation;
    st.conditions = conditions;
    st
}

/// The operator-owned part of a status (see the module doc).
fn own_fields(prev: Option<&PymServiceStatus>) -> PymServiceStatus {
    let p = prev.cloned().unwrap_or_default();
    PymServiceStatus {
        observed_generation: p.observed_generation,
        // Conditions are a list-map keyed by type: only ours (the
        // autoscaler owns its own, e.g. Autoscaling).
        conditions: p
            .conditions
            .into_iter()
            .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
            .collect(),
        api: p.api,
        workers: p.workers.map(|w| WorkerStatus { desired: None, ..w }),
        redis_endpoint: p.redis_endpoint,
        ..Default::default()
    }
}

/// Builds this status's conditions: `(type, ok, reason, message)` → a
/// [`Condition`] whose transition time carries over from `prev` while its
/// status holds.
fn conditions_after<'a>(
    prev: Option<&'a PymServiceStatus>,
    generation: Option<i64>,
    now: &'a Time,
) -> impl Fn(&str, bool, &str, &str) -> Condition + 'a {
    move |type_, ok, reason, message| {
        let before = prev.and_then(|p| condition::find(&p.conditions, type_));
        condition::condition(type_, before, ok, reason, message, generation, now)
    }
}

/// Whether writing `next` would change the operator-owned part of `prev`
/// (skip no-op status writes, which would otherwise wake every watcher).
pub fn same(prev: Option<&PymServiceStatus>, next: &PymServiceStatus) -> bool {
    prev.is_some() && own_fields(prev) == *next
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn done(n: i32) -> Counts {
        Counts {
            desired: n,
            ready: n,
            updated: n,
            observed: true,
        }
    }

    fn get<'a>(s: &'a PymServiceStatus, ty: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == ty).unwrap()
    }

    #[test]
    fn all_done_is_ready() {
        let obs = Observed {
            generation: Some(3),
            api: done(2),
            workers: Some(done(1)),
            redis: Some(done(1)),
            redis_endpoint: Some("r:6379".into()),
        };
        let s = after_apply(None, &obs, &t(10));
        assert_eq!(get(&s, READY).status, "True");
        assert_eq!(get(&s, PROGRESSING).status, "False");
        assert_eq!(get(&s, DEGRADED).status, "False");
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.api.as_ref().unwrap().summary, "2/2");
        assert_eq!(s.workers.as_ref().unwrap().summary, "1/1");
        assert_eq!(s.queue_depth, None, "autoscaler field left alone");
        assert_eq!(s.redis_endpoint.as_deref(), Some("r:6379"));
    }

    #[test]
    fn waiting_names_the_part() {
        let obs = Observed {
            api: done(1),
            workers: Some(Counts {
                desired: 3,
                ready: 1,
                updated: 3,
                observed: true,
            }),
            ..Default::default()
        };
        let s = after_apply(None, &obs, &t(10));
        let r = get(&s, READY);
        assert_eq!(r.status, "False");
        assert!(r.message.contains("workers 1/3"), "{}", r.message);
        assert_eq!(get(&s, PROGRESSING).status, "True");
    }

    #[test]
    fn other_managers_conditions_do_not_force_a_write() {
        let obs = Observed {
            api: done(1),
            ..Default::default()
        };
        let mut prev = after_apply(None, &obs, &t(10));
        prev.conditions.push(condition::condition(
            "Autoscaling",
            None,
            true,
            "Scaled",
            "x",
            None,
            &t(10),
        ));
        prev.queue_depth = Some(7);
        let next = after_apply(Some(&prev), &obs, &t(20));
        assert!(same(Some(&prev), &next));
        assert!(!next.conditions.iter().any(|c| c.type_ == "Autoscaling"));
    }

    #[test]
    fn unobserved_generation_is_not_done() {
        let c = Counts {
            observed: false,
            ..done(1)
        };
        assert!(!c.done());
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let obs = Observed {
            api: done(1),
            ..Default::default()
        };
        let first = after_apply(None, &obs, &t(10));
        let second = after_apply(Some(&first), &obs, &t(20));
        assert_eq!(get(&second, READY).last_transition_time, t(10));
        assert!(same(Some(&first), &second));
        let not_ready = Observed {
            api: Counts {
                ready: 0,
                ..done(1)
            },
            ..Default::default()
        };
        let third = after_apply(Some(&second), &not_ready, &t(30));
        assert_eq!(get(&third, READY).last_transition_time, t(30));
    }

    #[test]
    fn failure_marks_degraded_and_keeps_counts() {
        let obs = Observed {
            api: done(2),
            ..Default::default()
        };
        let ok = after_apply(None, &obs, &t(10));
        let f = Failure {
            reason: "SecretNotFound".into(),
            message: "secret default/jwt not found".into(),
        };
        let s = after_failure(Some(&ok), Some(4), &f, &t(20));
        assert_eq!(get(&s, DEGRADED).status, "True");
        assert_eq!(get(&s, DEGRADED).reason, "SecretNotFound");
        assert_eq!(get(&s, READY).status, "True", "pods still serve");
        assert_eq!(s.api, ok.api);
        let fresh = after_failure(None, Some(1), &f, &t(20));
        assert_eq!(get(&fresh, READY).status, "False");
        assert_eq!(get(&fresh, READY).reason, "SecretNotFound");
    }
}
