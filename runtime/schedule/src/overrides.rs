//! A deployment's changes to the schedules declared in code: per task
//! name, `enabled`, `cron` and `tz` (each optional), as the operator writes
//! them from `spec.workers.schedules` into `PYM_SCHEDULES` (a JSON object).

use crate::{Missed, Periodic, Schedule, ScheduleError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The change of one schedule; an absent field keeps the declared value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

/// Overrides by task name.
pub type Overrides = BTreeMap<String, Override>;

/// Reads the overrides from the JSON of the variable `var` (empty: none).
pub fn parse_overrides(json: &str, var: &'static str) -> Result<Overrides, ScheduleError> {
    if json.trim().is_empty() {
        return Ok(Overrides::new());
    }
    serde_json::from_str(json).map_err(|e| ScheduleError::Overrides {
        var,
        reason: format!(
            "{e}; expected a JSON object of task name → {{\"enabled\": bool, \"cron\": \"..\", \"tz\": \"..\"}}"
        ),
    })
}

/// A schedule as it runs: the declaration with its override applied.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub name: String,
    pub schedule: Schedule,
    pub missed: Missed,
    pub enabled: bool,
    pub takes_tick: bool,
}

/// Applies `overrides` to the `declared` schedules (by task name); an
/// override naming no periodic task, or a bad cron or zone, is an error
/// naming the schedule.
pub fn resolve(
    declared: &[(&str, Periodic)],
    overrides: &Overrides,
) -> Result<Vec<Resolved>, ScheduleError> {
    if let Some(name) = overrides
        .keys()
        .find(|n| !declared.iter().any(|(d, _)| d == n))
    {
        let mut known: Vec<&str> = declared.iter().map(|(d, _)| *d).collect();
        known.sort_unstable();
        return Err(ScheduleError::Override {
            name: name.clone(),
            reason: format!(
                "no periodic task of that name (periodic tasks: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        });
    }
    let mut out = Vec::with_capacity(declared.len());
    for (name, p) in declared {
        let o = overrides.get(*name).cloned().unwrap_or_default();
        let cron = o.cron.as_deref().unwrap_or(p.cron);
        let tz = o.tz.as_deref().unwrap_or(p.tz);
        let schedule = Schedule::parse(cron, tz).map_err(|e| ScheduleError::Override {
            name: (*name).to_owned(),
            reason: e.to_string(),
        })?;
        out.push(Resolved {
            name: (*name).to_owned(),
            schedule,
            missed: p.missed,
            enabled: o.enabled.unwrap_or(true),
            takes_tick: p.takes_tick,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIGHTLY: Periodic = Periodic {
        cron: "0 0 3 * * *",
        tz: "UTC",
        missed: Missed::Once,
        takes_tick: false,
    };

    #[test]
    fn overrides_change_enable_cron_and_zone() {
        let declared = [("nightly", NIGHTLY), ("hourly", NIGHTLY)];
        let json = r#"{"nightly": {"cron": "0 30 4 * * *", "tz": "Europe/Paris"}, "hourly": {"enabled": false}}"#;
        let o = parse_overrides(json, "PYM_SCHEDULES").unwrap();
        let r = resolve(&declared, &o).unwrap();
        assert_eq!(
            (
                r[0].name.as_str(),
                r[0].schedule.expr(),
                r[0].schedule.tz(),
                r[0].enabled
            ),
            ("nightly", "0 30 4 * * *", "Europe/Paris", true)
        );
        assert_eq!(
            (r[1].name.as_str(), r[1].schedule.expr(), r[1].enabled),
            ("hourly", "0 0 3 * * *", false)
        );
        let none = resolve(&declared, &parse_overrides("", "V").unwrap()).unwrap();
        assert!(
            none.iter()
                .all(|r| r.enabled && r.schedule.expr() == NIGHTLY.cron)
        );
    }

    #[test]
    fn bad_overrides_name_the_schedule_and_what_is_expected() {
        let declared = [("nightly", NIGHTLY)];
        let table = [
            (
                r#"{"weekly": {"enabled": false}}"#,
                "\"weekly\": no periodic task of that name (periodic tasks: nightly)",
            ),
            (
                r#"{"nightly": {"cron": "* *"}}"#,
                "\"nightly\": cron expression \"* *\"",
            ),
            (
                r#"{"nightly": {"tz": "Mars/Olympus"}}"#,
                "\"Mars/Olympus\" is not an IANA",
            ),
        ];
        for (json, want) in table {
            let o = parse_overrides(json, "PYM_SCHEDULES").unwrap();
            let e = resolve(&declared, &o).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
        for json in [r#"{"nightly": {"enable": false}}"#, "[1]", "{"] {
            let e = parse_overrides(json, "PYM_SCHEDULES")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("PYM_SCHEDULES: "), "{e}");
            assert!(e.contains("expected a JSON object of task name"), "{e}");
        }
    }
}
