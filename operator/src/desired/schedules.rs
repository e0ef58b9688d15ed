//! `spec.workers.schedules` → the workers' `PYM_SCHEDULES` (the JSON the
//! runtime reads with `pym_schedule::parse_overrides`), or no variable
//! when nothing is overridden. The cron expressions and zones are checked
//! here with the runtime's own rules, so a bad one is reported on the
//! PymService (`InvalidSpec`) instead of crash-looping the workers; the
//! task names can only be checked by the workers, which know their tasks.

use super::DesiredError;
use super::env::plain_env;
use crate::crd::{PymServiceSpec, WorkersSpec};
use k8s_openapi::api::core::v1::EnvVar;
use pym_broker::schedule::{Override, Overrides, parse_cron, parse_tz};
use pym_core::contract;

/// The `PYM_SCHEDULES` variable of the worker pods, if any schedule is
/// overridden.
pub(super) fn schedules_env(w: &WorkersSpec) -> Option<EnvVar> {
    if w.schedules.is_empty() {
        return None;
    }
    let overrides: Overrides = w
        .schedules
        .iter()
        .map(|(name, o)| {
            let o = Override {
                enabled: o.enabled,
                cron: o.cron.clone(),
                tz: o.tz.clone(),
            };
            (name.clone(), o)
        })
        .collect();
    let json = serde_json::to_string(&overrides).expect("overrides serialise");
    Some(plain_env(contract::ENV_SCHEDULES, json))
}

/// Checks the cron expression and zone of every override.
pub(super) fn check_schedules(spec: &PymServiceSpec) -> Result<(), DesiredError> {
    let Some(w) = spec.effective_workers() else {
        return Ok(());
    };
    for (name, o) in &w.schedules {
        let bad = |e: pym_broker::schedule::ScheduleError| DesiredError::Schedule {
            name: name.clone(),
            reason: e.to_string(),
        };
        if let Some(c) = &o.cron {
            parse_cron(c).map_err(bad)?;
        }
        if let Some(tz) = &o.tz {
            parse_tz(tz).map_err(bad)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ScheduleOverride;
    use pym_broker::schedule::parse_overrides;

    #[test]
    fn bad_crons_and_zones_are_refused_naming_the_schedule() {
        let spec = |cron: Option<&str>, tz: Option<&str>| -> PymServiceSpec {
            let o = ScheduleOverride {
                enabled: None,
                cron: cron.map(str::to_owned),
                tz: tz.map(str::to_owned),
            };
            serde_json::from_value(serde_json::json!({
                "image": "pym/hello:dev",
                "withAsync": true,
                "workers": {"schedules": {"nightly_cleanup": o}},
            }))
            .expect("a spec")
        };
        let table = [
            (Some("0 30 4 * * *"), Some("Europe/Paris"), None),
            (None, None, None),
            (Some("0 30 4 * *  * *"), None, Some("7 fields")),
            (
                None,
                Some("Europe/Pariss"),
                Some("not an IANA time zone name"),
            ),
        ];
        for (cron, tz, want) in table {
            let got = check_schedules(&spec(cron, tz)).map_err(|e| e.to_string());
            match want {
                None => assert_eq!(got, Ok(()), "{cron:?} {tz:?}"),
                Some(w) => {
                    let e = got.unwrap_err();
                    assert!(
                        e.starts_with("spec.workers.schedules.nightly_cleanup: "),
                        "{e}"
                    );
                    assert!(e.contains(w), "{e}");
                }
            }
        }
    }

    #[test]
    fn overrides_become_the_json_the_workers_read() {
        let o = |enabled, cron: Option<&str>, tz: Option<&str>| ScheduleOverride {
            enabled,
            cron: cron.map(str::to_owned),
            tz: tz.map(str::to_owned),
        };
        let table = [
            (vec![], None),
            (
                vec![("nightly_cleanup", o(Some(false), None, None))],
                Some(r#"{"nightly_cleanup":{"enabled":false}}"#),
            ),
            (
                vec![
                    (
                        "report",
                        o(None, Some("0 30 4 * * *"), Some("Europe/Paris")),
                    ),
                    ("a", o(Some(true), None, None)),
                ],
                Some(
                    r#"{"a":{"enabled":true},"report":{"cron":"0 30 4 * * *","tz":"Europe/Paris"}}"#,
                ),
            ),
        ];
        for (schedules, want) in table {
            let w = WorkersSpec {
                schedules: schedules
                    .into_iter()
                    .map(|(n, o)| (n.to_owned(), o))
                    .collect(),
                ..WorkersSpec::default()
            };
            let env = schedules_env(&w);
            assert_eq!(env.as_ref().and_then(|e| e.value.as_deref()), want);
            if let Some(e) = env {
                assert_eq!(e.name, contract::ENV_SCHEDULES);
                let back = parse_overrides(e.value.as_deref().unwrap(), contract::ENV_SCHEDULES);
                assert_eq!(
                    back.unwrap().len(),
                    w.schedules.len(),
                    "the workers read it back"
                );
            }
        }
    }
}
