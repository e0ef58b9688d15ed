//! Retry schedule: exponential backoff with jitter (pure), and the envelope
//! of the next attempt.

use crate::envelope::{Envelope, now_ms};
use std::time::Duration;

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// Delay before retry number `retry` (0 = first retry), with "equal
    /// jitter": half of the exponential delay is fixed, half is random
    /// (`jitter` in [0, 1)), so retries of a burst of failures spread out.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let factor = 2f64.powi(retry.min(62) as i32);
        let exp = (self.base.as_secs_f64() * factor).min(self.max.as_secs_f64());
        let jitter = jitter.clamp(0.0, 1.0);
        Duration::from_secs_f64(exp / 2.0 + exp / 2.0 * jitter)
    }
}

/// The envelope of the next attempt after `error`, due after `delay`.
pub fn next_attempt(env: &Envelope, error: &str, delay: Duration) -> Envelope {
    let mut next = env.clone();
    next.attempt += 1;
    next.last_error = Some(error.to_owned());
    next.eta = Some(now_ms() + delay.as_millis() as u64);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_bounds() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(0, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(8));
        for retry in 0..100 {
            let d = b.delay(retry, 0.999);
            assert!(d <= b.max, "{retry}: {d:?}");
            assert!(d >= b.delay(retry, 0.0));
        }
        assert_eq!(b.delay(40, 1.0), b.max);
    }

    #[test]
    fn next_attempt_counts_and_keeps_identity() {
        let env = Envelope::new(
            "t",
            "q",
            Default::default(),
            serde_json::value::RawValue::from_string("1".into()).unwrap(),
            Default::default(),
        );
        let n = next_attempt(&env, "boom", Duration::from_secs(2));
        assert_eq!(n.id, env.id);
        assert_eq!(n.attempt, 1);
        assert_eq!(n.last_error.as_deref(), Some("boom"));
        assert!(n.eta.unwrap() >= now_ms() + 1900);
    }
}
