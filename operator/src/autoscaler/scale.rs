//! Pure: queue statistics + recent history → desired worker replicas.
//!
//! The autoscaler ([`crate::autoscaler`] (`poll.rs`)) polls the worker queues with
//! `pym_broker::stats::queue_stats`, sums them into a [`Sample`]
//! and calls [`recommend`] with the service's [`Policy`] and its
//! [`ScaleState`]. No clock, no I/O: time comes from the samples (Redis
//! server time), so every rule is a table test.
//!
//! Rules, in order:
//!
//! 1. **Work** = ready + in flight + delayed-and-due. Delayed tasks due later
//!    are not work, but if the next one falls due within one poll interval
//!    plus [`Policy::startup_allowance_ms`], at least one worker is wanted so
//!    it is running when the task falls due.
//! 2. **Depth target**: `ceil(work / targetPerWorker)`.
//!    **Latency target** (optional, `targetLatencySeconds` = W): with the
//!    measured per-worker service rate μ (tasks fetched per second per ready
//!    worker, measured while a backlog existed) and arrival rate λ, Little's
//!    law (L = λ·W) says the backlog L = ready drains within W when the
//!    capacity is λ + L/W: `ceil((λ + ready / W) / μ)`. Until μ is known, a
//!    queue older than W scales the current workers by age / W; otherwise
//!    the depth rule applies. Never fewer than `ceil(in_flight / targetPerWorker)`.
//! 3. **Zero**: from zero workers, work must exceed `activationThreshold`
//!    (default 0: any task wakes a worker). Zero is recommended only when
//!    ready, in flight and due are all 0 — a task held by a worker (or by a
//!    dead one, waiting to be reclaimed) always keeps one worker.
//!    **Caps**: when every task of the queues has a `max_concurrency` (no
//!    `limit_key`), no more than `ceil(cap / concurrency)` workers: more
//!    would idle, the cap keeping their slots empty.
//! 4. **Clamp** to `[minReplicas, maxReplicas]`.
//! 5. **Stabilization**: scale up at once; scale down only to the highest
//!    recommendation of the last `scaleDownWindowSeconds` (as the HPA does),
//!    so a saw-tooth load does not flap and zero needs a whole idle window.
//!    The window starts full of the current replica count, so a restarted
//!    operator does not scale down before one window has passed.
//! 6. **Bounds first**: a count outside `[minReplicas, maxReplicas]` (the
//!    bounds were edited) moves inside at once, with or without statistics;
//!    the autoscaler is the one writer of the worker replica count.
//! 8. **Periodic tasks** ([`super::ticks`]): with no other work, a tick
//!    due (or due within one poll interval plus the startup allowance)
//!    wants one worker, so ticks fire with zero workers running.
//! 7. **No statistics** (Redis unreachable): keep the current replicas.

use crate::crd::WorkersSpec;
use pym_broker::stats::QueueStats;
use std::collections::VecDeque;

/// Time a new worker pod needs to start fetching; delayed tasks due within
/// one poll interval plus this wake a worker ahead of time.
pub const DEFAULT_STARTUP_ALLOWANCE_MS: u64 = 10_000;

/// Weight of the newest measurement in the rate averages.
const RATE_WEIGHT: f64 = 0.3;

/// Scaling parameters of one PymService, from `spec.workers`.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Work (tasks) one worker should carry.
    pub target_per_worker: u64,
    /// From zero workers, work must exceed this to wake one.
    pub activation_threshold: u64,
    pub scale_down_window_ms: u64,
    pub poll_interval_ms: u64,
    /// Target wait of a ready task, if the latency mode is on.
    pub target_latency_ms: Option<u64>,
    pub startup_allowance_ms: u64,
    /// Tasks one worker runs at once (`spec.workers.concurrency`).
    pub concurrency: u64,
}

impl Policy {
    pub fn from_spec(w: &WorkersSpec) -> Policy {
        let a = &w.autoscaling;
        let nonneg = |v: i32| u64::try_from(v).unwrap_or(0);
        let min = u32::try_from(w.min_replicas).unwrap_or(0);
        Policy {
            min_replicas: min,
            max_replicas: u32::try_from(w.max_replicas).unwrap_or(0).max(min),
            target_per_worker: nonneg(a.target_per_worker.unwrap_or(w.concurrency)).max(1),
            activation_threshold: nonneg(a.activation_threshold),
            scale_down_window_ms: nonneg(a.scale_down_window_seconds) * 1000,
            poll_interval_ms: nonneg(a.poll_interval_seconds).max(1) * 1000,
            target_latency_ms: a.target_latency_seconds.map(|s| nonneg(s).max(1) * 1000),
            startup_allowance_ms: DEFAULT_STARTUP_ALLOWANCE_MS,
            concurrency: nonneg(w.concurrency).max(1),
        }
    }
}

/// The worker queues of one service at one instant (their stats summed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Redis server time (ms since the epoch).
    pub at_ms: u64,
    pub ready: u64,
    pub in_flight: u64,
    pub delayed_due: u64,
    pub delayed_later: u64,
    /// Oldest ready task over the queues.
    pub oldest_ready_age_ms: Option<u64>,
    /// Soonest delayed task over the queues.
    pub next_due_in_ms: Option<u64>,
    /// Tasks ever fetched, summed; `None` if any queue does not know.
    pub fetched_total: Option<u64>,
    /// The soonest next tick of the queues' periodic tasks (ms since the
    /// epoch, the workers' record; see [`super::ticks`]).
    pub next_tick_ms: Option<u64>,
    /// Most tasks the queues' concurrency caps let run at once, when every
    /// task of every queue has one (`pym_broker::concurrency::queue_caps`);
    /// `None`: not all capped.
    pub cap: Option<u64>,
}

impl Sample {
    /// Sums the statistics of a service's worker queues.
    pub fn of(stats: &[QueueStats]) -> Sample {
        let mut s = Sample {
            fetched_total: Some(0),
            ..Default::default()
        };
        for q in stats {
            s.at_ms = s.at_ms.max(q.at_ms);
            s.ready += q.ready;
            s.in_flight += q.in_flight;
            s.delayed_due += q.delayed_due;
            s.delayed_later += q.delayed_later;
            s.oldest_ready_age_ms = max_opt(s.oldest_ready_age_ms, q.oldest_ready_age_ms);
            s.next_due_in_ms = match (s.next_due_in_ms, q.next_due_in_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            s.fetched_total = s.fetched_total.zip(q.fetched_total).map(|(a, b)| a + b);
        }
        s
    }

    /// Work for workers now: ready + in flight + due.
    pub fn work(&self) -> u64 {
        self.ready + self.in_flight + self.delayed_due
    }
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// What the scaler remembers about one service between polls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScaleState {
    /// Recommendations (time, replicas) of the last scale-down window.
    recent: VecDeque<(u64, u32)>,
    last: Option<Sample>,
    /// Tasks fetched per second per ready worker, while a backlog existed.
    pub per_worker_rate: Option<f64>,
    /// Tasks arriving per second.
    pub arrival_rate: Option<f64>,
}

/// What the scaler wants now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Replicas to set (equal to the current count when nothing changes).
    pub replicas: u32,
    /// This poll's recommendation before stabilization.
    pub recommended: u32,
    /// Human sentence for the Event and `status.lastScaleReason`.
    pub reason: String,
}

impl Decision {
    pub fn changes(&self, current: u32) -> bool {
        self.replicas != current
    }
}

/// What the autoscaler observed besides the queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Workers {
    /// `spec.replicas` of the worker Deployment.
    pub current: u32,
    /// Ready worker pods.
    pub ready: u32,
}

/// The scaling decision for one poll; `sample` is `None` when the queue
/// statistics could not be read (the replicas stay as they are, moved into
/// `[minReplicas, maxReplicas]` if the bounds changed).
pub fn recommend(
    policy: &Policy,
    sample: Option<&Sample>,
    workers: Workers,
    state: &mut ScaleState,
) -> Decision {
    let current = workers.current;
    let (min, max) = (
        policy.min_replicas,
        policy.max_replicas.max(policy.min_replicas),
    );
    let Some(s) = sample else {
        let replicas = current.clamp(min, max);
        let reason = if replicas == current {
            format!("queue statistics unavailable: keeping {current} workers")
        } else {
            format!("queue statistics unavailable: {current} workers bounded to {min}..{max}")
        };
        return Decision {
            replicas,
            recommended: replicas,
            reason,
        };
    };
    update_rates(state, s, workers.ready);
    let (raw, why) = raw_recommendation(policy, s, current, state);
    let recommended = raw.clamp(min, max);

    // Stabilization window (seeded with the current count on the first poll).
    if state.recent.is_empty() && state.last.is_none() {
        state.recent.push_back((s.at_ms, current));
    }
    state.recent.push_back((s.at_ms, recommended));
    let oldest_kept = s.at_ms.saturating_sub(policy.scale_down_window_ms);
    while state.recent.len() > 1 && state.recent.front().is_some_and(|(t, _)| *t < oldest_kept) {
        state.recent.pop_front();
    }
    state.last = Some(s.clone());

    let window_max = state
        .recent
        .iter()
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(recommended);
    // Up at once; down to the window's highest, but never above the bound
    // (a lowered maxReplicas applies at once).
    let replicas = if recommended >= current {
        recommended
    } else {
        window_max.min(current).min(max)
    };
    Decision {
        replicas,
        recommended,
        reason: reason(policy, s, current, (raw, &why), recommended, replicas),
    }
}

/// The human sentence of a decision.
fn reason(
    policy: &Policy,
    s: &Sample,
    current: u32,
    (raw, why): (u32, &str),
    recommended: u32,
    replicas: u32,
) -> String {
    let depth = format!(
        "queue {} ready, {} in flight, {} due",
        s.ready, s.in_flight, s.delayed_due
    );
    let window_s = policy.scale_down_window_ms / 1000;
    if replicas == current && recommended < current {
        format!(
            "{depth} → {recommended} workers wanted; holding {current} for the {window_s}s scale-down window"
        )
    } else if replicas == policy.max_replicas && current > replicas && replicas != recommended {
        format!(
            "{depth} → {replicas} workers (maxReplicas; {recommended} wanted, held by the {window_s}s scale-down window)"
        )
    } else if replicas != recommended {
        format!("{depth} → {replicas} workers (highest of the last {window_s}s)")
    } else if recommended != raw {
        format!(
            "{depth} → {replicas} workers ({why}, bounded to {}..{})",
            policy.min_replicas, policy.max_replicas
        )
    } else {
        format!("{depth} → {replicas} workers ({why})")
    }
}

/// Updates the measured rates from the previous sample to `s`.
fn update_rates(state: &mut ScaleState, s: &Sample, ready_workers: u32) {
    let Some(prev) = &state.last else { return };
    let dt_ms = s.at_ms.saturating_sub(prev.at_ms);
    if dt_ms == 0 {
        return;
    }
    let (Some(f0), Some(f1)) = (prev.fetched_total, s.fetched_total) else {
        return;
    };
    if f1 < f0 {
        // A stream was recreated: the counter restarted.
        return;
    }
    let dt = dt_ms as f64 / 1000.0;
    let fetched = (f1 - f0) as f64;
    let arrived = (s.ready as f64 - prev.ready as f64 + fetched).max(0.0);
    state.arrival_rate = Some(ewma(state.arrival_rate, arrived / dt));
    // Only a backlog shows what the workers can do (otherwise they idle).
    if prev.ready > 0 && ready_workers > 0 {
        let rate = fetched / dt / f64::from(ready_workers);
        if rate > 0.0 {
            state.per_worker_rate = Some(ewma(state.per_worker_rate, rate));
        }
    }
}

fn ewma(old: Option<f64>, new: f64) -> f64 {
    match old {
        Some(o) => o + RATE_WEIGHT * (new - o),
        None => new,
    }
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Rules 1–3: replicas wanted now, before clamping and stabilization.
fn raw_recommendation(p: &Policy, s: &Sample, current: u32, st: &ScaleState) -> (u32, String) {
    let work = s.work();
    if work == 0 {
        if let Some(why) = super::ticks::wakes_a_worker(p, s) {
            return (1, why);
        }
        return match s.next_due_in_ms {
            Some(due)
                if s.delayed_later > 0 && due <= p.poll_interval_ms + p.startup_allowance_ms =>
            {
                (
                    1,
                    format!("a delayed task falls due in {due}ms: waking a worker ahead of it"),
                )
            }
            _ => (0, "idle".into()),
        };
    }
    if current == 0 && s.in_flight == 0 && work <= p.activation_threshold {
        return (
            0,
            format!(
                "work {work} not above the activation threshold {}",
                p.activation_threshold
            ),
        );
    }
    let floor_in_flight = ceil_div(s.in_flight, p.target_per_worker);
    let by_depth = ceil_div(work, p.target_per_worker);
    let (n, why) = match p.target_latency_ms {
        None => (by_depth, format!("{} per worker", p.target_per_worker)),
        Some(w_ms) => latency_replicas(p, s, current, st, w_ms, by_depth),
    };
    let n = n.max(floor_in_flight).max(1);
    match s.cap.map(|cap| ceil_div(cap, p.concurrency).max(1)) {
        Some(fill) if fill < n => (
            to_u32(fill),
            format!(
                "{why}; capped: {} tasks at once fill {fill} workers of {}",
                s.cap.unwrap_or(0),
                p.concurrency
            ),
        ),
        _ => (to_u32(n), why),
    }
}

/// Rule 2, latency mode (Little's law).
fn latency_replicas(
    p: &Policy,
    s: &Sample,
    current: u32,
    st: &ScaleState,
    w_ms: u64,
    by_depth: u64,
) -> (u64, String) {
    let w = w_ms as f64 / 1000.0;
    match st.per_worker_rate {
        Some(mu) if mu > 0.0 => {
            let lambda = st.arrival_rate.unwrap_or(0.0);
            let need = (lambda + s.ready as f64 / w) / mu;
            let n = need.ceil().max(0.0) as u64;
            (
                n,
                format!(
                    "wait target {w}s: {lambda:.1}/s arriving + {} ready to drain, {mu:.1}/s per worker",
                    s.ready
                ),
            )
        }
        _ => match s.oldest_ready_age_ms {
            Some(age) if age > w_ms && current > 0 => {
                let n = (u64::from(current) * age).div_ceil(w_ms);
                (
                    n,
                    format!(
                        "oldest task waited {:.1}s > target {w}s, service rate not measured yet",
                        age as f64 / 1000.0
                    ),
                )
            }
            _ => (
                by_depth,
                format!(
                    "{} per worker until the service rate is measured",
                    p.target_per_worker
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min_replicas: 0,
            max_replicas: 10,
            target_per_worker: 10,
            activation_threshold: 0,
            scale_down_window_ms: 60_000,
            poll_interval_ms: 1_000,
            target_latency_ms: None,
            startup_allowance_ms: 10_000,
            concurrency: 10,
        }
    }

    #[test]
    fn no_worker_is_added_that_a_concurrency_cap_would_leave_idle() {
        let p = policy();
        let table = [
            // (ready, cap, current workers, want)
            (100, None, 1, 10),
            (100, Some(2), 1, 1),
            (100, Some(10), 1, 1),
            (100, Some(11), 1, 2),
            (100, Some(35), 1, 4),
            (30, Some(1000), 1, 3),
            (0, Some(2), 0, 0),
            (5, Some(2), 0, 1),
        ];
        for (ready, cap, current, want) in table {
            let s = Sample {
                cap,
                ..sample(0, ready, 0, 0)
            };
            let d = once(&p, &s, current);
            assert_eq!(
                d.recommended, want,
                "{ready} ready, cap {cap:?}: {}",
                d.reason
            );
            if cap.is_some() && want < 10 && ready == 100 {
                assert!(d.reason.contains("capped"), "{}", d.reason);
            }
        }
    }

    fn sample(at_s: u64, ready: u64, in_flight: u64, due: u64) -> Sample {
        Sample {
            at_ms: at_s * 1000,
            ready,
            in_flight,
            delayed_due: due,
            fetched_total: Some(0),
            ..Default::default()
        }
    }

    fn w(current: u32) -> Workers {
        Workers {
            current,
            ready: current,
        }
    }

    /// One poll with a fresh state (no history).
    fn once(p: &Policy, s: &Sample, current: u32) -> Decision {
        recommend(p, Some(s), w(current), &mut ScaleState::default())
    }

    #[test]
    fn desired_is_ceil_of_work_over_target_clamped() {
        let p = Policy {
            min_replicas: 1,
            max_replicas: 5,
            ..policy()
        };
        // (ready, in flight, due, current) → replicas
        let table = [
            ((0, 0, 0), 1, 1),   // idle: min
            ((1, 0, 0), 1, 1),   // 1 task: 1
            ((10, 0, 0), 1, 1),  // exactly the target
            ((11, 0, 0), 1, 2),  // one more: 2
            ((5, 5, 5), 1, 2),   // ready + in flight + due = 15
            ((12, 40, 0), 1, 5), // 52 → 6 → max 5
            ((1000, 0, 0), 1, 5),
        ];
        for ((r, f, d), cur, want) in table {
            let got = once(&p, &sample(0, r, f, d), cur);
            assert_eq!(got.replicas, want, "ready {r} in flight {f} due {d}");
        }
    }

    #[test]
    fn policy_from_spec_defaults_target_to_concurrency() {
        let spec = WorkersSpec {
            concurrency: 8,
            ..Default::default()
        };
        let p = Policy::from_spec(&spec);
        assert_eq!(p.target_per_worker, 8);
        assert_eq!(p.scale_down_window_ms, 60_000);
        assert_eq!(p.poll_interval_ms, 1_000);
        assert_eq!((p.min_replicas, p.max_replicas), (1, 10));
        assert_eq!(p.target_latency_ms, None);
        let mut spec2 = spec.clone();
        spec2.autoscaling.target_per_worker = Some(100);
        spec2.autoscaling.target_latency_seconds = Some(5);
        let p2 = Policy::from_spec(&spec2);
        assert_eq!(p2.target_per_worker, 100);
        assert_eq!(p2.target_latency_ms, Some(5_000));
    }

    #[test]
    fn scales_from_zero_as_soon_as_work_appears() {
        let p = policy();
        let d = once(&p, &sample(0, 1, 0, 0), 0);
        assert_eq!(d.replicas, 1);
        let d = once(&p, &sample(0, 0, 0, 1), 0);
        assert_eq!(d.replicas, 1, "a due delayed task is work");
        assert!(
            d.reason.contains("0 ready, 0 in flight, 1 due"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn activation_threshold_holds_zero_until_exceeded() {
        let p = Policy {
            activation_threshold: 5,
            ..policy()
        };
        assert_eq!(once(&p, &sample(0, 5, 0, 0), 0).replicas, 0);
        assert_eq!(once(&p, &sample(0, 6, 0, 0), 0).replicas, 1);
        // Once running, the threshold does not apply: work keeps a worker.
        assert_eq!(once(&p, &sample(0, 3, 0, 0), 1).replicas, 1);
        // Orphaned in-flight tasks need a worker to reclaim them.
        assert_eq!(once(&p, &sample(0, 0, 2, 0), 0).replicas, 1);
    }

    #[test]
    fn in_flight_task_blocks_scale_to_zero() {
        let p = policy();
        let mut st = ScaleState::default();
        // A long task keeps running for ten minutes, nothing else queued.
        for t in 0..600 {
            let d = recommend(&p, Some(&sample(t, 0, 1, 0)), w(1), &mut st);
            assert_eq!(d.replicas, 1, "at {t}s");
        }
        // It finishes: zero only after the whole window.
        for t in 600..660 {
            let d = recommend(&p, Some(&sample(t, 0, 0, 0)), w(1), &mut st);
            assert_eq!(d.replicas, 1, "at {t}s, inside the window");
        }
        let d = recommend(&p, Some(&sample(661, 0, 0, 0)), w(1), &mut st);
        assert_eq!(d.replicas, 0);
    }

    #[test]
    fn delayed_task_due_soon_wakes_a_worker() {
        let p = policy();
        let delayed = |due_in_ms| Sample {
            delayed_later: 1,
            next_due_in_ms: Some(due_in_ms),
            ..sample(0, 0, 0, 0)
        };
        // Due in 5 s < 1 s poll + 10 s start-up: wake one now.
        let d = once(&p, &delayed(5_000), 0);
        assert_eq!(d.replicas, 1);
        assert!(d.reason.contains("falls due in 5000ms"), "{}", d.reason);
        assert_eq!(once(&p, &delayed(11_000), 0).replicas, 1, "at the edge");
        // Due in an hour: not work yet.
        assert_eq!(once(&p, &delayed(3_600_000), 0).replicas, 0);
        // And a running worker may go to zero only when none is due soon.
        let mut st = ScaleState::default();
        for t in 0..120 {
            let s = Sample {
                at_ms: t * 1000,
                ..delayed(3_600_000)
            };
            recommend(&p, Some(&s), w(1), &mut st);
        }
        let s = Sample {
            at_ms: 121_000,
            ..delayed(3_600_000)
        };
        assert_eq!(recommend(&p, Some(&s), w(1), &mut st).replicas, 0);
    }

    #[test]
    fn scales_up_at_once_and_down_after_the_window() {
        let p = Policy {
            min_replicas: 1,
            ..policy()
        };
        let mut st = ScaleState::default();
        let d = recommend(&p, Some(&sample(0, 100, 0, 0)), w(1), &mut st);
        assert_eq!(d.replicas, 10, "up at once");
        // Queue drained at t=10.
        let mut replicas = 10;
        let mut changed_at = None;
        for t in 10..=100 {
            let d = recommend(&p, Some(&sample(t, 0, 0, 0)), w(replicas), &mut st);
            if d.changes(replicas) {
                changed_at.get_or_insert(t);
                replicas = d.replicas;
            }
        }
        assert_eq!(replicas, 1, "back to min");
        assert_eq!(
            changed_at,
            Some(61),
            "first poll after 60 s without a higher recommendation"
        );
    }

    #[test]
    fn scale_down_steps_follow_the_highest_recent_recommendation() {
        let p = policy();
        let mut st = ScaleState::default();
        recommend(&p, Some(&sample(0, 80, 0, 0)), w(0), &mut st); // 8
        recommend(&p, Some(&sample(30, 40, 0, 0)), w(8), &mut st); // 4
        // At 61 s the 8 has left the window; the 4 of t=30 is the highest.
        let d = recommend(&p, Some(&sample(61, 10, 0, 0)), w(8), &mut st);
        assert_eq!(d.replicas, 4);
        assert!(d.reason.contains("highest of the last 60s"), "{}", d.reason);
        let d = recommend(&p, Some(&sample(91, 10, 0, 0)), w(4), &mut st);
        assert_eq!(d.replicas, 1);
    }

    #[test]
    fn saw_tooth_load_does_not_flap() {
        // 500 tasks arrive every 20 s and are drained in 5 s: a saw tooth.
        let p = Policy {
            min_replicas: 0,
            max_replicas: 50,
            ..policy()
        };
        let mut st = ScaleState::default();
        let mut replicas = 0;
        let mut changes = Vec::new();
        for t in 0..600u64 {
            let phase = t % 20;
            let ready = if phase < 5 { 500 - phase * 100 } else { 0 };
            let d = recommend(&p, Some(&sample(t, ready, 0, 0)), w(replicas), &mut st);
            if d.changes(replicas) {
                changes.push((t, d.replicas));
                replicas = d.replicas;
            }
        }
        assert_eq!(changes, vec![(0, 50)], "one scale-up, then steady");
        // The load stops: replicas step down, the first step one window
        // after the last peak's tail, and reach zero.
        let mut downs = Vec::new();
        for t in 600..800u64 {
            let d = recommend(&p, Some(&sample(t, 0, 0, 0)), w(replicas), &mut st);
            if d.changes(replicas) {
                downs.push((t, d.replicas));
                replicas = d.replicas;
            }
        }
        assert_eq!(downs.first(), Some(&(641, 40)), "{downs:?}");
        assert!(downs.windows(2).all(|p| p[1].1 < p[0].1), "{downs:?}");
        assert_eq!(replicas, 0);
    }

    #[test]
    fn restarted_scaler_waits_a_window_before_scaling_down() {
        let p = policy();
        let mut st = ScaleState::default();
        let d = recommend(&p, Some(&sample(1000, 0, 0, 0)), w(5), &mut st);
        assert_eq!(d.replicas, 5);
        assert!(d.reason.contains("holding 5"), "{}", d.reason);
        let d = recommend(&p, Some(&sample(1061, 0, 0, 0)), w(5), &mut st);
        assert_eq!(d.replicas, 0);
    }

    #[test]
    fn zero_window_scales_down_at_once() {
        let p = Policy {
            scale_down_window_ms: 0,
            ..policy()
        };
        let mut st = ScaleState::default();
        recommend(&p, Some(&sample(0, 100, 0, 0)), w(0), &mut st);
        let d = recommend(&p, Some(&sample(1, 0, 0, 0)), w(10), &mut st);
        assert_eq!(d.replicas, 0);
    }

    #[test]
    fn unreachable_redis_keeps_replicas() {
        let p = policy();
        let mut st = ScaleState::default();
        let d = recommend(&p, None, w(3), &mut st);
        assert_eq!(d.replicas, 3);
        assert!(d.reason.contains("unavailable"), "{}", d.reason);
        assert_eq!(st, ScaleState::default(), "no history recorded");
    }

    #[test]
    fn bounds_apply_at_once_with_or_without_statistics() {
        let p = Policy {
            min_replicas: 2,
            max_replicas: 4,
            ..policy()
        };
        // (name, stats: ready tasks or None, current, replicas, reason has)
        let rows = [
            ("no stats, inside", None, 3, 3, "keeping 3"),
            ("no stats, above max", None, 9, 4, "bounded to 2..4"),
            ("no stats, below min", None, 0, 2, "bounded to 2..4"),
            (
                "idle, above max: max at once, not after the window",
                Some(0),
                9,
                4,
                "maxReplicas",
            ),
            ("busy, above max", Some(500), 9, 4, "bounded to 2..4"),
            ("idle, below min", Some(0), 0, 2, "bounded to 2..4"),
            ("idle, inside: the window holds", Some(0), 3, 3, "holding 3"),
        ];
        for (name, ready, current, want, has) in rows {
            let s = ready.map(|r| sample(1000, r, 0, 0));
            let d = recommend(&p, s.as_ref(), w(current), &mut ScaleState::default());
            assert_eq!(d.replicas, want, "{name}: {}", d.reason);
            assert!(d.reason.contains(has), "{name}: {}", d.reason);
        }
    }

    #[test]
    fn lowered_max_applies_while_the_window_remembers_more() {
        let mut p = policy();
        let mut st = ScaleState::default();
        let d = recommend(&p, Some(&sample(0, 100, 0, 0)), w(0), &mut st);
        assert_eq!(d.replicas, 10);
        p.max_replicas = 3;
        let d = recommend(&p, Some(&sample(1, 0, 0, 0)), w(10), &mut st);
        assert_eq!(d.replicas, 3, "{}", d.reason);
    }

    fn measured(at_s: u64, ready: u64, fetched: u64) -> Sample {
        Sample {
            fetched_total: Some(fetched),
            ..sample(at_s, ready, 0, 0)
        }
    }

    #[test]
    fn latency_target_uses_service_rate_and_littles_law() {
        // Each worker fetches 10 tasks/s; 50 tasks/s arrive; 1000 queued.
        // Wait target 10 s: capacity 50 + 1000/10 = 150/s → 15 workers.
        let p = Policy {
            max_replicas: 100,
            target_per_worker: 1000,
            target_latency_ms: Some(10_000),
            ..policy()
        };
        let mut st = ScaleState::default();
        let workers = Workers {
            current: 2,
            ready: 2,
        };
        // Two workers fetch 20/s, 50/s arrive: the backlog grows by 30/s.
        let mut ready = 880;
        let mut fetched = 0;
        let mut d = recommend(&p, Some(&measured(0, ready, fetched)), workers, &mut st);
        for t in 1..=4 {
            ready += 30;
            fetched += 20;
            d = recommend(&p, Some(&measured(t, ready, fetched)), workers, &mut st);
        }
        assert_eq!(ready, 1000);
        let mu = st.per_worker_rate.unwrap();
        let lambda = st.arrival_rate.unwrap();
        assert!((mu - 10.0).abs() < 1e-9, "{mu}");
        assert!((lambda - 50.0).abs() < 1e-9, "{lambda}");
        assert_eq!(d.replicas, 15, "{}", d.reason);
        assert!(d.reason.contains("wait target 10s"), "{}", d.reason);
        // The depth rule alone (1000 per worker) would have said 1.
        let depth_only = Policy {
            target_latency_ms: None,
            ..p.clone()
        };
        assert_eq!(once(&depth_only, &measured(0, 1000, 0), 2).recommended, 1);
    }

    #[test]
    fn latency_target_before_rate_is_known_uses_queue_age() {
        let p = Policy {
            target_per_worker: 1000,
            target_latency_ms: Some(5_000),
            ..policy()
        };
        let old = Sample {
            oldest_ready_age_ms: Some(20_000),
            ..sample(0, 100, 0, 0)
        };
        // 2 workers, the oldest task waited 4× the target → 8 workers.
        let d = once(&p, &old, 2);
        assert_eq!(d.replicas, 8, "{}", d.reason);
        // Young queue: depth rule.
        let young = Sample {
            oldest_ready_age_ms: Some(1_000),
            ..sample(0, 100, 0, 0)
        };
        assert_eq!(once(&p, &young, 2).recommended, 1);
    }

    #[test]
    fn latency_mode_keeps_workers_for_in_flight_tasks() {
        let p = Policy {
            target_per_worker: 10,
            target_latency_ms: Some(1_000),
            ..policy()
        };
        let mut st = ScaleState {
            per_worker_rate: Some(100.0),
            ..Default::default()
        };
        let d = recommend(&p, Some(&sample(0, 0, 35, 0)), w(4), &mut st);
        assert_eq!(d.replicas, 4, "35 in flight at 10 per worker");
    }

    #[test]
    fn rates_ignore_idle_workers_and_counter_resets() {
        let mut st = ScaleState::default();
        let p = policy();
        recommend(&p, Some(&measured(0, 0, 100)), w(3), &mut st);
        // No backlog: the fetch rate says nothing about capacity.
        recommend(&p, Some(&measured(1, 0, 105)), w(3), &mut st);
        assert_eq!(st.per_worker_rate, None);
        assert_eq!(st.arrival_rate, Some(5.0));
        // Counter went backwards (stream recreated): ignored.
        recommend(&p, Some(&measured(2, 0, 3)), w(3), &mut st);
        assert_eq!(st.arrival_rate, Some(5.0));
    }

    #[test]
    fn sample_sums_queues() {
        let q = |ready, oldest, next, fetched| QueueStats {
            queue: "q".into(),
            ready,
            in_flight: 1,
            delayed_due: 2,
            delayed_later: 3,
            dead: 9,
            oldest_ready_age_ms: oldest,
            next_due_in_ms: next,
            at_ms: 7,
            fetched_total: fetched,
        };
        let s = Sample::of(&[
            q(4, Some(10), None, Some(5)),
            q(6, Some(30), Some(50), Some(1)),
        ]);
        assert_eq!(
            (s.ready, s.in_flight, s.delayed_due, s.delayed_later),
            (10, 2, 4, 6)
        );
        assert_eq!(s.work(), 16);
        assert_eq!(s.oldest_ready_age_ms, Some(30));
        assert_eq!(s.next_due_in_ms, Some(50));
        assert_eq!(s.fetched_total, Some(6));
        assert_eq!(s.at_ms, 7);
        let s = Sample::of(&[q(1, None, None, Some(5)), q(1, None, None, None)]);
        assert_eq!(s.fetched_total, None);
    }
}
