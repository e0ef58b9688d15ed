//! Kubernetes Conditions as the operator writes them (the reconciler's
//! `Ready`/`Progressing`/`Degraded`, the autoscaler's `Autoscaling`): status
//! `True`/`False`, the message clipped, and `lastTransitionTime` kept while
//! the status holds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Longest condition or Event message written, in characters.
pub const MAX_MESSAGE: usize = 1024;

/// The condition `type_` as of `now`; `prev` is the one of that type
/// written before, if any.
pub fn condition(
    type_: &str,
    prev: Option<&Condition>,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => now.clone(),
    };
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: clip(message),
        observed_generation: generation,
        last_transition_time,
    }
}

/// The condition of type `type_` in `conditions`.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `s` cut to [`MAX_MESSAGE`] characters.
pub fn clip(s: &str) -> String {
    s.chars().take(MAX_MESSAGE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_the_status_does() {
        let a = condition("Ready", None, false, "Waiting", "w", Some(1), &at(1));
        assert_eq!(a.last_transition_time, at(1), "first write");
        let b = condition(
            "Ready",
            Some(&a),
            false,
            "Waiting",
            "still",
            Some(2),
            &at(2),
        );
        assert_eq!(b.last_transition_time, at(1), "status held");
        assert_eq!(
            (b.message.as_str(), b.observed_generation),
            ("still", Some(2))
        );
        let c = condition("Ready", Some(&b), true, "AllReady", "ok", Some(2), &at(3));
        assert_eq!((c.status.as_str(), c.last_transition_time), ("True", at(3)));
        let long = "x".repeat(MAX_MESSAGE + 10);
        let d = condition("Ready", None, true, "R", &long, None, &at(4));
        assert_eq!(d.message.chars().count(), MAX_MESSAGE);
    }
}
