//! Pure: the periodic tasks' next tick as work. Workers record each
//! schedule's next fire time (`pym_broker::schedule::next_tick`); with no
//! worker running nobody fires the tick, so a tick that is due, or falls
//! due within one poll interval plus [`Policy::startup_allowance_ms`],
//! wants one worker (which fires it, by the schedule's missed-tick policy
//! if it is late, and records the next one).

use super::scale::{Policy, Sample};

/// Why one worker is wanted for a tick, or `None`.
pub fn wakes_a_worker(p: &Policy, s: &Sample) -> Option<String> {
    let tick = s.next_tick_ms?;
    let ahead = p.poll_interval_ms + p.startup_allowance_ms;
    if tick <= s.at_ms {
        Some(format!(
            "a periodic task's tick is due since {}ms: waking a worker to fire it",
            s.at_ms - tick
        ))
    } else if tick - s.at_ms <= ahead {
        Some(format!(
            "a periodic task ticks in {}ms: waking a worker ahead of it",
            tick - s.at_ms
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::scale::{ScaleState, Workers, recommend};
    use super::*;

    fn policy() -> Policy {
        Policy {
            min_replicas: 0,
            max_replicas: 10,
            target_per_worker: 10,
            concurrency: 10,
            activation_threshold: 0,
            scale_down_window_ms: 0,
            poll_interval_ms: 1_000,
            target_latency_ms: None,
            startup_allowance_ms: 10_000,
        }
    }

    #[test]
    fn a_due_or_near_tick_wants_one_worker_from_zero() {
        let at = 1_000_000;
        let table = [
            // (next tick, ready tasks, current workers, want replicas)
            (None, 0, 0, 0),
            (Some(at - 5_000), 0, 0, 1),
            (Some(at), 0, 0, 1),
            (Some(at + 11_000), 0, 0, 1),
            (Some(at + 11_001), 0, 0, 0),
            (Some(at + 3_600_000), 0, 0, 0),
            // other work decides as before
            (Some(at + 3_600_000), 25, 0, 3),
            (Some(at), 25, 0, 3),
            // a running worker with a tick soon is kept (down to 1, not 0)
            (Some(at + 2_000), 0, 4, 1),
        ];
        for (tick, ready, current, want) in table {
            let s = Sample {
                at_ms: at,
                ready,
                next_tick_ms: tick,
                fetched_total: Some(0),
                ..Default::default()
            };
            let mut st = ScaleState::default();
            let d = recommend(
                &policy(),
                Some(&s),
                Workers {
                    current,
                    ready: current,
                },
                &mut st,
            );
            assert_eq!(
                d.recommended, want,
                "{tick:?} {ready} {current}: {}",
                d.reason
            );
            if tick.is_some() && ready == 0 && want == 1 && current == 0 {
                assert!(d.reason.contains("periodic task"), "{}", d.reason);
            }
        }
    }
}
