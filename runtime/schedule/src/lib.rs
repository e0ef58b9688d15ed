//! # pym-schedule
//!
//! The rules of periodic tasks (`#[asynctask(cron = "..", tz = "..",
//! missed = "..")]`), with no I/O, shared by the macro (literal
//! expressions are checked at compile time), the worker (which fires the
//! ticks, see `pym_broker::schedule`) and the operator (overrides):
//!
//! - [`Schedule`]: a cron expression of 5 fields (minute first; second 0)
//!   or 6 (second first), stepped in an IANA time zone. The zone database
//!   is bundled, so a zone name resolves on any image, tzdata or not.
//! - [`Missed`]: what happens to ticks no worker fired in time, and
//!   [`plan`], the pure decision of which pending ticks fire.
//! - [`Override`]: a deployment's change of a schedule (enabled, cron,
//!   tz), read from `PYM_SCHEDULES` ([`parse_overrides`]), applied by
//!   [`resolve`].

mod missed;
mod overrides;

pub use missed::{MISSED_AFTER_MS, Missed, Plan, plan};
pub use overrides::{Override, Overrides, Resolved, parse_overrides, resolve};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A schedule as `#[asynctask]` declares it: the cron expression, the
/// time zone (default [`DEFAULT_TZ`]) and the missed-tick policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Periodic {
    pub cron: &'static str,
    pub tz: &'static str,
    pub missed: Missed,
    /// The task takes the [`Tick`] it runs for (else no argument).
    pub takes_tick: bool,
}

/// The tick a periodic task runs for: the one argument a periodic task
/// may take. Each tick fires once, so it is a natural idempotency key.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Tick(pub u64);

impl Tick {
    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    pub fn time(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0)
    }
}

/// The zone of a schedule that names none.
pub const DEFAULT_TZ: &str = "UTC";

/// A bad cron expression, zone, policy or override.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "cron expression {expr:?}: {reason}; expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), e.g. \"0 */5 * * * *\""
    )]
    Cron { expr: String, reason: String },
    #[error(
        "time zone {name:?} is not an IANA time zone name (expected e.g. \"UTC\" or \"Europe/Paris\")"
    )]
    Tz { name: String },
    #[error("missed = {value:?}: expected \"skip\", \"once\" or \"all:N\" with N from 1 to {max}")]
    Missed { value: String, max: u32 },
    #[error("schedule override {name:?}: {reason}")]
    Override { name: String, reason: String },
    #[error("{var}: {reason}")]
    Overrides { var: &'static str, reason: String },
}

/// A cron expression checked and bound to its zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    tz: TimeZone,
    expr: String,
    tz_name: String,
}

/// Checks a cron expression: 5 or 6 fields, one that fires at least once.
pub fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    let fail = |reason: String| ScheduleError::Cron {
        expr: expr.to_owned(),
        reason,
    };
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
        return Err(fail(format!("{fields} fields")));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| fail(e.to_string()))?;
    let probe = Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
    if cron.find_next_occurrence(&probe, false).is_err() {
        return Err(fail("it never fires".into()));
    }
    Ok(cron)
}

/// Resolves an IANA time zone name in the bundled database.
pub fn parse_tz(name: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(name).map_err(|_| ScheduleError::Tz {
        name: name.to_owned(),
    })
}

impl Schedule {
    /// `cron` stepped in the zone `tz`.
    pub fn parse(cron: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        Ok(Schedule {
            cron: parse_cron(cron)?,
            tz: parse_tz(tz)?,
            expr: cron.to_owned(),
            tz_name: tz.to_owned(),
        })
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn tz(&self) -> &str {
        &self.tz_name
    }

    fn zoned(&self, ms: u64) -> Option<jiff::Zoned> {
        let ts = Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
        Some(ts.to_zoned(self.tz.clone()))
    }

    /// The first tick strictly after `ms` (ms since the epoch).
    pub fn next_after(&self, ms: u64) -> Option<u64> {
        let next = self
            .cron
            .find_next_occurrence(&self.zoned(ms)?, false)
            .ok()?;
        u64::try_from(next.timestamp().as_millisecond()).ok()
    }

    /// The newest ticks in `(after, until]`, at most `max`, oldest first.
    pub fn ticks_back(&self, after: u64, until: u64, max: usize) -> Vec<u64> {
        let Some(start) = self.zoned(until) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut t = start;
        let mut inclusive = true;
        while out.len() < max {
            let Ok(prev) = self.cron.find_previous_occurrence(&t, inclusive) else {
                break;
            };
            inclusive = false;
            let Ok(ms) = u64::try_from(prev.timestamp().as_millisecond()) else {
                break;
            };
            if ms <= after || ms > until {
                break;
            }
            out.push(ms);
            t = prev;
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        s.parse::<Timestamp>().unwrap().as_millisecond() as u64
    }

    #[test]
    fn expressions_of_five_or_six_fields_in_a_zone() {
        let table = [
            // (cron, tz, after, want next)
            (
                "0 */5 * * * *",
                "UTC",
                "2026-03-01T10:02:30Z",
                "2026-03-01T10:05:00Z",
            ),
            (
                "*/5 * * * *",
                "UTC",
                "2026-03-01T10:02:30Z",
                "2026-03-01T10:05:00Z",
            ),
            (
                "* * * * * *",
                "UTC",
                "2026-03-01T10:02:30.500Z",
                "2026-03-01T10:02:31Z",
            ),
            // 03:00 in Paris is 02:00 UTC in winter, 01:00 UTC in summer.
            (
                "0 0 3 * * *",
                "Europe/Paris",
                "2026-01-10T12:00:00Z",
                "2026-01-11T02:00:00Z",
            ),
            (
                "0 0 3 * * *",
                "Europe/Paris",
                "2026-07-10T12:00:00Z",
                "2026-07-11T01:00:00Z",
            ),
            (
                "0 3 * * *",
                "UTC",
                "2026-07-10T12:00:00Z",
                "2026-07-11T03:00:00Z",
            ),
        ];
        for (cron, tz, after, want) in table {
            let s = Schedule::parse(cron, tz).unwrap();
            assert_eq!(
                s.next_after(ms(after)),
                Some(ms(want)),
                "{cron} {tz} {after}"
            );
        }
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_expected() {
        let table = [
            ("0 0 * *", "UTC", "4 fields"),
            ("0 0 0 * * * 2030", "UTC", "7 fields"),
            ("61 * * * *", "UTC", "cron expression \"61 * * * *\""),
            ("0 0 30 2 *", "UTC", "never fires"),
            ("* * * * *", "Europe/Pariss", "not an IANA time zone name"),
            ("* * * * *", "", "not an IANA time zone name"),
        ];
        for (cron, tz, want) in table {
            let e = Schedule::parse(cron, tz).unwrap_err().to_string();
            assert!(e.contains(want), "{cron} {tz}: {e}");
        }
        let e = parse_cron("nonsense").unwrap_err().to_string();
        assert!(e.contains("expected 5 fields"), "{e}");
    }

    #[test]
    fn ticks_back_lists_the_newest_ticks_oldest_first() {
        let s = Schedule::parse("* * * * * *", "UTC").unwrap();
        let t0 = ms("2026-03-01T10:00:00Z");
        assert_eq!(
            s.ticks_back(t0, t0 + 3_500, 10),
            [t0 + 1_000, t0 + 2_000, t0 + 3_000]
        );
        assert_eq!(
            s.ticks_back(t0, t0 + 3_000, 10),
            [t0 + 1_000, t0 + 2_000, t0 + 3_000]
        );
        assert_eq!(s.ticks_back(t0, t0 + 9_000, 2), [t0 + 8_000, t0 + 9_000]);
        assert_eq!(s.ticks_back(t0 + 3_000, t0 + 3_000, 10), Vec::<u64>::new());
        let m = Schedule::parse("0 * * * * *", "UTC").unwrap();
        assert_eq!(m.ticks_back(t0 - 1, t0 + 59_000, 10), [t0]);
    }
}
