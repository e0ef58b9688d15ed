//! Missed ticks: which of a schedule's pending ticks fire.
//!
//! The pending ticks are those after the last tick recorded for the
//! schedule and at or before now. A pending tick at most
//! [`MISSED_AFTER_MS`] old is on time and always fires (a worker woke a
//! little late, or several ticks fell due within a short stall). An older
//! one was missed (no worker ran the schedule then: all were down, or
//! scaled to zero) and follows the schedule's [`Missed`] policy:
//!
//! | policy | missed ticks |
//! |---|---|
//! | `skip` | none fires |
//! | `once` (default) | the newest fires, unless an on-time tick fires now |
//! | `all:N` | the newest N fire, oldest first |
//!
//! Whatever fires, the record advances to the newest pending tick, so a
//! tick is decided once.

use crate::ScheduleError;
use std::fmt;
use std::str::FromStr;

/// A pending tick older than this (ms) was missed.
pub const MISSED_AFTER_MS: u64 = 10_000;

/// What happens to missed ticks (`missed = "skip" | "once" | "all:N"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Missed {
    Skip,
    #[default]
    Once,
    /// The newest N (1 ..= [`Missed::MAX_ALL`]).
    All(u32),
}

impl Missed {
    /// Most missed ticks `all:N` runs.
    pub const MAX_ALL: u32 = 1000;

    /// How many missed ticks the policy may fire.
    pub fn most(self) -> usize {
        match self {
            Missed::Skip => 0,
            Missed::Once => 1,
            Missed::All(n) => n as usize,
        }
    }
}

impl FromStr for Missed {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, ScheduleError> {
        let bad = || ScheduleError::Missed {
            value: s.to_owned(),
            max: Missed::MAX_ALL,
        };
        match s {
            "skip" => Ok(Missed::Skip),
            "once" => Ok(Missed::Once),
            _ => match s.strip_prefix("all:").map(str::parse::<u32>) {
                Some(Ok(n)) if (1..=Missed::MAX_ALL).contains(&n) => Ok(Missed::All(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for Missed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missed::Skip => f.write_str("skip"),
            Missed::Once => f.write_str("once"),
            Missed::All(n) => write!(f, "all:{n}"),
        }
    }
}

/// The decision on a schedule's pending ticks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ticks to enqueue, oldest first.
    pub fire: Vec<u64>,
    /// The newest pending tick: the record advances to it.
    pub newest: Option<u64>,
    /// Missed ticks dropped by the policy (for the log).
    pub dropped: usize,
}

/// Which of `pending` (oldest first, all at or before `now`) fire.
/// `pending` may hold only the newest ticks: with `policy.most()` + the
/// ticks of [`MISSED_AFTER_MS`] among them, the decision is the same.
pub fn plan(pending: &[u64], now: u64, policy: Missed) -> Plan {
    let split = pending.partition_point(|t| now.saturating_sub(*t) > MISSED_AFTER_MS);
    let (missed, on_time) = pending.split_at(split);
    let take = match policy {
        Missed::Once if !on_time.is_empty() => 0,
        p => p.most().min(missed.len()),
    };
    let mut fire = missed[missed.len() - take..].to_vec();
    fire.extend_from_slice(on_time);
    Plan {
        dropped: missed.len() - take,
        newest: pending.last().copied(),
        fire,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print() {
        for (s, want) in [
            ("skip", Missed::Skip),
            ("once", Missed::Once),
            ("all:1", Missed::All(1)),
            ("all:1000", Missed::All(1000)),
        ] {
            assert_eq!(s.parse::<Missed>(), Ok(want));
            assert_eq!(want.to_string(), s);
        }
        for bad in ["", "all", "all:0", "all:1001", "all:-1", "ALL:3", "twice"] {
            let e = bad.parse::<Missed>().unwrap_err().to_string();
            assert!(
                e.contains("expected \"skip\", \"once\" or \"all:N\""),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn on_time_ticks_fire_missed_ones_follow_the_policy() {
        let now = 1_000_000;
        let s = 1_000;
        // Ticks every 60 s, the last three missed, then one on time.
        let late = [now - 180 * s, now - 120 * s, now - 60 * s];
        let mut with_current = late.to_vec();
        with_current.push(now - 2 * s);
        let table: [(&[u64], Missed, &[u64], usize); 12] = [
            // nothing pending
            (&[], Missed::Once, &[], 0),
            // a tick on time fires under every policy
            (&[now - 2 * s], Missed::Skip, &[now - 2 * s], 0),
            (&[now - 2 * s], Missed::Once, &[now - 2 * s], 0),
            (&[now - 2 * s], Missed::All(3), &[now - 2 * s], 0),
            // a stall: two ticks within the grace both fire
            (&[now - 9 * s, now], Missed::Skip, &[now - 9 * s, now], 0),
            // only missed ticks
            (&late, Missed::Skip, &[], 3),
            (&late, Missed::Once, &[now - 60 * s], 2),
            (&late, Missed::All(2), &[now - 120 * s, now - 60 * s], 1),
            (&late, Missed::All(5), &late, 0),
            // missed ticks, then one on time
            (&with_current, Missed::Skip, &[now - 2 * s], 3),
            (&with_current, Missed::Once, &[now - 2 * s], 3),
            (
                &with_current,
                Missed::All(2),
                &[now - 120 * s, now - 60 * s, now - 2 * s],
                1,
            ),
        ];
        for (pending, policy, fire, dropped) in table {
            let p = plan(pending, now, policy);
            assert_eq!(p.fire, fire, "{pending:?} {policy}");
            assert_eq!(p.dropped, dropped, "{pending:?} {policy}");
            assert_eq!(p.newest, pending.last().copied(), "{pending:?} {policy}");
        }
    }

    #[test]
    fn the_grace_is_inclusive() {
        let now = 50_000;
        let p = plan(&[now - MISSED_AFTER_MS], now, Missed::Skip);
        assert_eq!(p.fire, [now - MISSED_AFTER_MS]);
        let p = plan(&[now - MISSED_AFTER_MS - 1], now, Missed::Skip);
        assert_eq!((p.fire.len(), p.dropped), (0, 1));
    }
}
