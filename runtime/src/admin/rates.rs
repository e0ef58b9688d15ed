//! Enqueue and completion rates over 1 and 15 minutes, from samples of
//! each queue's totals taken every few seconds by the process serving the
//! admin API (and at every read of the queues).
//!
//! The totals come from one statistics snapshot ([`QueueStats`]): every
//! task that entered the ready streams was fetched or is still ready, so
//! `enqueued = fetched_total + ready`; every fetched task is settled or
//! still in flight, so `completed = fetched_total − in_flight` (settled:
//! done, failed for a retry, or dead-lettered). A delayed task counts as
//! enqueued when it falls due.

use pym_broker::Broker;
use pym_broker::stats::{self, QueueStats};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::Duration;

/// How often the sampler reads the queues.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The rate windows (ms).
const MINUTE: u64 = 60_000;
const FIFTEEN_MINUTES: u64 = 15 * MINUTE;
/// Samples closer than this to the last one are not kept.
const MIN_GAP_MS: u64 = 1_000;
/// A rate needs samples at least this far apart.
const MIN_SPAN_MS: u64 = 4_000;

/// One queue's totals at one instant (Redis time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub at_ms: u64,
    pub enqueued: u64,
    pub completed: u64,
}

impl Sample {
    /// The totals of a snapshot, if Redis knows how many were fetched.
    pub(crate) fn of(s: &QueueStats) -> Option<Self> {
        let fetched = s.fetched_total?;
        Some(Sample {
            at_ms: s.at_ms,
            enqueued: fetched + s.ready,
            completed: fetched.saturating_sub(s.in_flight),
        })
    }
}

/// Per second, over each window; `None` until two samples far enough
/// apart exist. A window not yet covered is measured over what is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Rates {
    pub enqueued_1m: Option<f64>,
    pub enqueued_15m: Option<f64>,
    pub completed_1m: Option<f64>,
    pub completed_15m: Option<f64>,
}

/// The samples of one queue, oldest first, spanning at most 15 minutes.
#[derive(Debug, Default)]
pub(crate) struct History(VecDeque<Sample>);

impl History {
    /// Keep `s` (unless too close to the last sample), forget what is
    /// older than the longest window needs.
    pub(crate) fn push(&mut self, s: Sample) {
        if let Some(last) = self.0.back()
            && s.at_ms < last.at_ms + MIN_GAP_MS
        {
            return;
        }
        self.0.push_back(s);
        while self.0.len() > 2 && self.0[1].at_ms + FIFTEEN_MINUTES <= s.at_ms {
            self.0.pop_front();
        }
    }

    /// The rates at the newest sample.
    pub(crate) fn rates(&self) -> Rates {
        let (e1, c1) = self.over(MINUTE);
        let (e15, c15) = self.over(FIFTEEN_MINUTES);
        Rates {
            enqueued_1m: e1,
            enqueued_15m: e15,
            completed_1m: c1,
            completed_15m: c15,
        }
    }

    /// (enqueued, completed) per second over `window`, from the newest
    /// sample back to the newest one at least `window` older, else the
    /// oldest.
    fn over(&self, window: u64) -> (Option<f64>, Option<f64>) {
        let Some(last) = self.0.back() else {
            return (None, None);
        };
        let base = self
            .0
            .iter()
            .rev()
            .find(|s| s.at_ms + window <= last.at_ms)
            .or(self.0.front())
            .expect("not empty");
        let span = last.at_ms.saturating_sub(base.at_ms);
        if span < MIN_SPAN_MS {
            return (None, None);
        }
        let per_s = |a: u64, b: u64| Some(a.saturating_sub(b) as f64 * 1000.0 / span as f64);
        (
            per_s(last.enqueued, base.enqueued),
            per_s(last.completed, base.completed),
        )
    }
}

/// Every queue's history.
#[derive(Debug, Default)]
pub(crate) struct Recorder(Mutex<BTreeMap<String, History>>);

impl Recorder {
    /// Record the snapshots and return each queue's rates, in their order.
    pub(crate) fn record(&self, all: &[QueueStats]) -> Vec<Rates> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.iter()
            .map(|s| {
                let h = map.entry(s.queue.clone()).or_default();
                if let Some(sample) = Sample::of(s) {
                    h.push(sample);
                }
                h.rates()
            })
            .collect()
    }
}

/// Sample every queue every [`SAMPLE_EVERY`] while `recorder` lives.
pub(crate) fn spawn_sampler(broker: Broker, recorder: Weak<Recorder>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(recorder) = recorder.upgrade() else {
                return;
            };
            match stats::all_stats(&mut broker.conn()).await {
                Ok(all) => {
                    recorder.record(&all);
                }
                Err(e) => tracing::debug!(error = %e, "admin rates: cannot read the queues"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_s: u64, enqueued: u64, completed: u64) -> Sample {
        Sample {
            at_ms: at_s * 1000,
            enqueued,
            completed,
        }
    }

    #[test]
    fn totals_of_a_snapshot() {
        let stats = QueueStats {
            ready: 5,
            in_flight: 2,
            fetched_total: Some(100),
            at_ms: 7,
            ..QueueStats::default()
        };
        assert_eq!(
            Sample::of(&stats),
            Some(Sample {
                at_ms: 7,
                enqueued: 105,
                completed: 98
            })
        );
        let unknown = QueueStats {
            fetched_total: None,
            ..stats
        };
        assert_eq!(Sample::of(&unknown), None);
    }

    #[test]
    fn rates_over_one_and_fifteen_minutes() {
        // (samples, enqueued 1m, completed 1m, enqueued 15m)
        type Case = (Vec<Sample>, Option<f64>, Option<f64>, Option<f64>);
        let cases: Vec<Case> = vec![
            (vec![], None, None, None),
            (vec![s(0, 0, 0)], None, None, None),
            // closer than MIN_SPAN: no rate yet
            (vec![s(0, 0, 0), s(2, 10, 10)], None, None, None),
            // 10 s covered: both windows measured over it
            (
                vec![s(0, 0, 0), s(10, 100, 50)],
                Some(10.0),
                Some(5.0),
                Some(10.0),
            ),
            // 1 min from t=60 (enqueued 600 → 1200), 15 min from the oldest
            (
                vec![s(0, 0, 0), s(60, 600, 600), s(120, 1200, 900)],
                Some(10.0),
                Some(5.0),
                Some(10.0),
            ),
            // a sample at the same instant as the last is dropped
            (
                vec![s(0, 0, 0), s(10, 100, 100), s(10, 900, 900)],
                Some(10.0),
                Some(10.0),
                Some(10.0),
            ),
        ];
        for (samples, e1, c1, e15) in cases {
            let mut h = History::default();
            for x in &samples {
                h.push(*x);
            }
            let r = h.rates();
            assert_eq!(
                (r.enqueued_1m, r.completed_1m, r.enqueued_15m),
                (e1, c1, e15),
                "{samples:?}"
            );
        }
    }

    #[test]
    fn history_keeps_fifteen_minutes() {
        let mut h = History::default();
        for i in 0..400 {
            h.push(s(i * 5, i, i));
        }
        let span = h.0.back().unwrap().at_ms - h.0.front().unwrap().at_ms;
        assert!(
            (FIFTEEN_MINUTES..FIFTEEN_MINUTES + 5_000).contains(&span),
            "{span}"
        );
    }
}
