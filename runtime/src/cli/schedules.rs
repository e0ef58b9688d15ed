//! `stats` of periodic tasks: each schedule's cron, zone, missed policy,
//! next fire time and last run (`stats --schedules`, and after the queue
//! table of a plain `stats`).

use super::{Fail, runtime};
use pym_broker::schedule::{self, ScheduleInfo};
use pym_broker::{BrokerConn, stats};

/// The schedules of `queue`, or of every known queue.
pub(super) async fn read(
    conn: &mut BrokerConn,
    queue: Option<&str>,
) -> Result<Vec<ScheduleInfo>, Fail> {
    let queues = match queue {
        Some(q) => vec![q.to_owned()],
        None => stats::all_stats(conn)
            .await
            .map_err(runtime)?
            .into_iter()
            .map(|s| s.queue)
            .collect(),
    };
    let mut out = Vec::new();
    for q in queues {
        out.extend(schedule::list(conn, &q).await.map_err(runtime)?);
    }
    Ok(out)
}

/// A time (ms since the epoch) in RFC 3339, UTC, or `-`.
fn when(ms: Option<u64>) -> String {
    ms.and_then(|ms| chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
        .map_or_else(
            || "-".to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// Prints `all` as a table.
pub(super) fn print(all: &[ScheduleInfo]) {
    println!(
        "{:<28} {:<16} {:<16} {:<14} {:<7} {:<8} {:<21} last run",
        "periodic task", "queue", "cron", "tz", "missed", "enabled", "next"
    );
    for s in all {
        println!(
            "{:<28} {:<16} {:<16} {:<14} {:<7} {:<8} {:<21} {}",
            s.task,
            s.queue,
            s.def.cron,
            s.def.tz,
            s.def.missed,
            s.def.enabled,
            when(s.next_ms),
            when(s.last_run_ms)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn times_print_in_utc_or_as_a_dash() {
        assert_eq!(when(Some(1_772_330_400_000)), "2026-03-01T02:00:00Z");
        assert_eq!(when(None), "-");
    }
}
