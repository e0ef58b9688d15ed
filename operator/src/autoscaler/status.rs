//! Pure: what one poll saw and did → the autoscaler's status and Events.
//!
//! [`next_status`] takes the status the autoscaler last wanted, the queue
//! statistics (or why they could not be read), the scaling [`Decision`]
//! and whether its `/scale` patch went through, and returns the next
//! [`AutoscalerStatus`] with the Events to publish. [`should_write`] decides
//! whether that status is worth an API write now. No clock (time is passed
//! in), no I/O: the poll shell in `poll.rs` does the reads and writes.

use super::scale::{Decision, Sample};
use crate::condition::{clip, condition};
use crate::crd::{AutoscalerStatus, AutoscalerWorkers};
use crate::error::Error;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// Condition type the autoscaler owns in `status.conditions`.
pub const CONDITION: &str = "Autoscaling";
/// Queue depth alone (no other change) is written to status at most this often.
pub const DEPTH_STATUS_EVERY: Duration = Duration::from_secs(5);

/// What one poll observed and did.
#[derive(Clone, Copy, Debug)]
pub struct Poll<'a> {
    /// Worker replicas before this poll.
    pub current: u32,
    /// The summed queue statistics, or why they could not be read.
    pub stats: Result<&'a Sample, &'a Error>,
    /// What the scaler decided.
    pub decision: &'a Decision,
    /// The `/scale` patch to `decision.replicas` went through (false when
    /// none was needed or it failed).
    pub scaled: bool,
    /// `metadata.generation` of the PymService.
    pub generation: Option<i64>,
    pub poll_interval_ms: u64,
}

/// An Event to publish on the PymService.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: String,
    pub note: String,
    pub action: &'static str,
}

/// The status after `poll`, and the Events it calls for. `prev` is what the
/// autoscaler last wanted (written or not); fields a poll does not learn
/// (queue depth while Redis is unreachable, the last scale) are kept.
pub fn next_status(
    prev: &AutoscalerStatus,
    poll: &Poll<'_>,
    now: &Time,
) -> (AutoscalerStatus, Vec<Notice>) {
    let mut next = prev.clone();
    let mut notices = Vec::new();
    let before = prev.condition(CONDITION);
    let cond = match poll.stats {
        Ok(sample) => {
            next.queue_depth = Some(i64::try_from(sample.work()).unwrap_or(i64::MAX));
            next.next_tick = sample.next_tick_ms.and_then(tick_time);
            next.workers = Some(AutoscalerWorkers {
                desired: i32::try_from(poll.decision.recommended).unwrap_or(i32::MAX),
            });
            let every = poll.poll_interval_ms / 1000;
            condition(
                CONDITION,
                before,
                true,
                "QueueRead",
                &format!("queue statistics read every {every}s"),
                poll.generation,
                now,
            )
        }
        Err(e) => {
            let message = format!("{e}; keeping {} workers", poll.current);
            let c = condition(
                CONDITION,
                before,
                false,
                e.reason(),
                &message,
                poll.generation,
                now,
            );
            if before.is_none_or(|b| b.status == "True") {
                notices.push(Notice {
                    warning: true,
                    reason: e.reason().into(),
                    note: c.message.clone(),
                    action: "ReadQueue",
                });
            }
            c
        }
    };
    next.conditions = vec![cond];
    if poll.scaled && poll.decision.changes(poll.current) {
        next.last_scale_time = Some(now.clone());
        next.last_scale_reason = Some(poll.decision.reason.clone());
        let up = poll.decision.replicas > poll.current;
        notices.push(Notice {
            warning: false,
            reason: if up { "ScaledUp" } else { "ScaledDown" }.into(),
            note: clip(&poll.decision.reason),
            action: "Scale",
        });
    }
    (next, notices)
}

/// A tick (ms since the epoch) as a status time.
fn tick_time(ms: u64) -> Option<Time> {
    let ms = i64::try_from(ms).ok()?;
    Some(Time(
        k8s_openapi::jiff::Timestamp::from_millisecond(ms).ok()?,
    ))
}

/// Whether `next` should be written, given what was `written` last and how
/// long ago (`None`: never). A change of the queue depth or next tick alone waits
/// [`DEPTH_STATUS_EVERY`], so a busy queue does not cost one write per poll.
pub fn should_write(
    written: &AutoscalerStatus,
    next: &AutoscalerStatus,
    since_last_write: Option<Duration>,
) -> bool {
    if next == written {
        return false;
    }
    let depth_only = AutoscalerStatus {
        queue_depth: written.queue_depth,
        next_tick: written.next_tick.clone(),
        ..next.clone()
    } == *written;
    !depth_only || since_last_write.is_none_or(|d| d >= DEPTH_STATUS_EVERY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::MAX_MESSAGE;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn sample(ready: u64) -> Sample {
        Sample {
            ready,
            ..Sample::default()
        }
    }

    fn decision(replicas: u32, recommended: u32) -> Decision {
        Decision {
            replicas,
            recommended,
            reason: format!("→ {replicas} workers"),
        }
    }

    fn unreachable() -> Error {
        Error::QueueStats {
            endpoint: "redis:6379".into(),
            message: "connection refused".into(),
        }
    }

    /// A status as a poll with readable stats at `t` leaves it.
    fn readable(depth: i64, desired: i32, t: i64) -> AutoscalerStatus {
        AutoscalerStatus {
            workers: Some(AutoscalerWorkers { desired }),
            queue_depth: Some(depth),
            conditions: vec![condition(
                CONDITION,
                None,
                true,
                "QueueRead",
                "queue statistics read every 1s",
                Some(1),
                &at(t),
            )],
            ..AutoscalerStatus::default()
        }
    }

    struct Row {
        name: &'static str,
        prev: AutoscalerStatus,
        current: u32,
        stats: Option<u64>,
        decision: Decision,
        scaled: bool,
        want: AutoscalerStatus,
        notices: Vec<(&'static str, bool)>,
    }

    fn scaled(mut s: AutoscalerStatus, t: i64, reason: &str) -> AutoscalerStatus {
        s.last_scale_time = Some(at(t));
        s.last_scale_reason = Some(reason.into());
        s
    }

    fn down(now: i64, current: u32) -> Condition {
        condition(
            CONDITION,
            None,
            false,
            "RedisUnreachable",
            &format!("{}; keeping {current} workers", unreachable()),
            Some(1),
            &at(now),
        )
    }

    fn with_cond(mut s: AutoscalerStatus, c: Condition) -> AutoscalerStatus {
        s.conditions = vec![c];
        s
    }

    #[test]
    fn next_status_table() {
        let now = 100;
        let rows = vec![
            Row {
                name: "first poll, nothing to do: depth and desired, condition True, no event",
                prev: AutoscalerStatus::default(),
                current: 0,
                stats: Some(0),
                decision: decision(0, 0),
                scaled: false,
                want: readable(0, 0, now),
                notices: vec![],
            },
            Row {
                name: "scale up from zero",
                prev: readable(0, 0, 10),
                current: 0,
                stats: Some(30),
                decision: decision(3, 3),
                scaled: true,
                want: scaled(readable(30, 3, 10), now, "→ 3 workers"),
                notices: vec![("ScaledUp", false)],
            },
            Row {
                name: "hold during the scale-down window: desired drops, replicas and last scale stay",
                prev: scaled(readable(30, 3, 10), 50, "→ 3 workers"),
                current: 3,
                stats: Some(0),
                decision: decision(3, 0),
                scaled: false,
                want: scaled(readable(0, 0, 10), 50, "→ 3 workers"),
                notices: vec![],
            },
            Row {
                name: "scale down after the window",
                prev: scaled(readable(0, 0, 10), 50, "→ 3 workers"),
                current: 3,
                stats: Some(0),
                decision: decision(0, 0),
                scaled: true,
                want: scaled(readable(0, 0, 10), now, "→ 0 workers"),
                notices: vec![("ScaledDown", false)],
            },
            Row {
                name: "scale patch failed: no last scale, no event",
                prev: readable(0, 0, 10),
                current: 0,
                stats: Some(30),
                decision: decision(3, 3),
                scaled: false,
                want: readable(30, 3, 10),
                notices: vec![],
            },
            Row {
                name: "unchanged: same status, no event",
                prev: scaled(readable(4, 1, 10), 50, "→ 1 workers"),
                current: 1,
                stats: Some(4),
                decision: decision(1, 1),
                scaled: false,
                want: scaled(readable(4, 1, 10), 50, "→ 1 workers"),
                notices: vec![],
            },
            Row {
                name: "stats unreachable: depth and desired kept, condition False, one Warning",
                prev: scaled(readable(4, 2, 10), 50, "→ 2 workers"),
                current: 2,
                stats: None,
                decision: decision(2, 2),
                scaled: false,
                want: with_cond(scaled(readable(4, 2, 10), 50, "→ 2 workers"), down(now, 2)),
                notices: vec![("RedisUnreachable", true)],
            },
            Row {
                name: "still unreachable: transition time kept, no second Warning",
                prev: with_cond(readable(4, 2, 10), down(60, 2)),
                current: 2,
                stats: None,
                decision: decision(2, 2),
                scaled: false,
                want: with_cond(readable(4, 2, 10), down(60, 2)),
                notices: vec![],
            },
            Row {
                name: "unreachable on the very first poll: Warning",
                prev: AutoscalerStatus::default(),
                current: 1,
                stats: None,
                decision: decision(1, 1),
                scaled: false,
                want: with_cond(AutoscalerStatus::default(), down(now, 1)),
                notices: vec![("RedisUnreachable", true)],
            },
            Row {
                name: "readable again: condition True from now, no event",
                prev: with_cond(readable(4, 2, 10), down(60, 2)),
                current: 2,
                stats: Some(4),
                decision: decision(2, 2),
                scaled: false,
                want: readable(4, 2, now),
                notices: vec![],
            },
        ];
        let err = unreachable();
        for r in rows {
            let s = r.stats.map(sample);
            let poll = Poll {
                current: r.current,
                stats: s.as_ref().ok_or(&err),
                decision: &r.decision,
                scaled: r.scaled,
                generation: Some(1),
                poll_interval_ms: 1000,
            };
            let (got, notices) = next_status(&r.prev, &poll, &at(now));
            assert_eq!(got, r.want, "{}", r.name);
            let kinds: Vec<(&str, bool)> = notices
                .iter()
                .map(|n| (n.reason.as_str(), n.warning))
                .collect();
            assert_eq!(kinds, r.notices, "{}", r.name);
        }
    }

    #[test]
    fn notices_carry_the_reason_and_the_kept_count() {
        let err = unreachable();
        let d = decision(2, 2);
        let poll = Poll {
            current: 2,
            stats: Err(&err),
            decision: &d,
            scaled: false,
            generation: None,
            poll_interval_ms: 1000,
        };
        let (_, n) = next_status(&AutoscalerStatus::default(), &poll, &at(1));
        assert_eq!(n[0].action, "ReadQueue");
        assert!(
            n[0].note.contains("unreachable")
                && !n[0].note.contains("connection refused")
                && n[0].note.ends_with("keeping 2 workers"),
            "{}",
            n[0].note
        );
        let d = Decision {
            reason: "x".repeat(5000),
            ..decision(4, 4)
        };
        let s = sample(40);
        let poll = Poll {
            stats: Ok(&s),
            decision: &d,
            scaled: true,
            ..poll
        };
        let (st, n) = next_status(&AutoscalerStatus::default(), &poll, &at(1));
        assert_eq!(
            (n[0].action, n[0].note.chars().count()),
            ("Scale", MAX_MESSAGE)
        );
        assert_eq!(st.last_scale_reason.map(|r| r.len()), Some(5000));
    }

    #[test]
    fn should_write_table() {
        let base = readable(4, 1, 10);
        let depth = AutoscalerStatus {
            queue_depth: Some(9),
            ..base.clone()
        };
        let desired = AutoscalerStatus {
            workers: Some(AutoscalerWorkers { desired: 2 }),
            ..depth.clone()
        };
        let tick = AutoscalerStatus {
            next_tick: tick_time(1_772_330_400_000),
            ..depth.clone()
        };
        let secs = |s| Some(Duration::from_secs(s));
        let rows = [
            ("unchanged", &base, secs(60), false),
            (
                "depth and next tick only, just written",
                &tick,
                secs(1),
                false,
            ),
            (
                "depth and next tick only, written long ago",
                &tick,
                secs(5),
                true,
            ),
            ("depth only, just written", &depth, secs(1), false),
            ("depth only, written long ago", &depth, secs(5), true),
            ("depth only, never written", &depth, None, true),
            ("another field changed", &desired, secs(1), true),
        ];
        for (name, next, since, want) in rows {
            assert_eq!(should_write(&base, next, since), want, "{name}");
        }
    }

    #[test]
    fn the_next_tick_read_becomes_next_tick() {
        let sample = Sample {
            next_tick_ms: Some(1_772_330_400_000),
            ..Sample::default()
        };
        let d = decision(1, 1);
        let poll = Poll {
            current: 1,
            stats: Ok(&sample),
            decision: &d,
            scaled: false,
            generation: Some(1),
            poll_interval_ms: 1000,
        };
        let (st, _) = next_status(&AutoscalerStatus::default(), &poll, &at(1));
        let t = st.next_tick.clone().expect("nextTick set");
        assert_eq!(t.0.as_millisecond(), 1_772_330_400_000);
        assert_eq!(
            serde_json::to_value(&st).unwrap()["nextTick"],
            "2026-03-01T02:00:00Z"
        );
        let none = Sample::default();
        let poll = Poll {
            stats: Ok(&none),
            ..poll
        };
        let (st, _) = next_status(&st, &poll, &at(2));
        assert_eq!(st.next_tick, None, "no schedule: no next tick");
    }

    #[test]
    fn condition_keeps_transition_time_while_status_holds() {
        let a = condition(
            CONDITION,
            None,
            false,
            "RedisUnreachable",
            "down",
            None,
            &at(1),
        );
        let b = condition(
            CONDITION,
            Some(&a),
            false,
            "RedisUnreachable",
            "still down",
            None,
            &at(2),
        );
        assert_eq!(b.last_transition_time, at(1));
        let c = condition(CONDITION, Some(&b), true, "QueueRead", "ok", None, &at(3));
        assert_eq!((c.status.as_str(), c.last_transition_time), ("True", at(3)));
    }
}
