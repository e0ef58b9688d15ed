//! Pure: which worker pods a scale-down should take. Before the autoscaler
//! lowers the worker replicas, it sets `controller.kubernetes.io/pod-deletion-cost`
//! on each worker pod to the tasks that pod holds (its live workers'
//! `in_flight`, from the registry they beat in every second). The
//! ReplicaSet controller deletes the pods of lowest cost first, so idle
//! workers go and busy ones keep their tasks; a pod that still holds tasks
//! when it is stopped finishes them within its grace period (SIGTERM →
//! quiet → drain), as before.

use pym_broker::workers::WorkerInfo;

/// The annotation the ReplicaSet controller reads (Kubernetes ≥ 1.22).
pub const ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A worker pod as the autoscaler sees it: its name and its current
/// deletion-cost annotation, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPod {
    pub name: String,
    pub cost: Option<String>,
}

/// The annotations to write, `(pod, cost)`, for the pods whose cost
/// changed: a pod's cost is the number of tasks its live workers hold
/// (a pod restarted in place has a new worker per incarnation; dead ones
/// are not in `live`). A pod without a live worker (starting, or not
/// beating) costs 0, and is left alone when it has no annotation yet
/// (absent means 0).
pub fn changes(pods: &[WorkerPod], live: &[WorkerInfo]) -> Vec<(String, i32)> {
    pods.iter()
        .filter_map(|pod| {
            let held: usize = live
                .iter()
                .filter(|w| w.pod.as_deref() == Some(pod.name.as_str()))
                .map(|w| w.in_flight)
                .sum();
            let cost = i32::try_from(held).unwrap_or(i32::MAX);
            let current = pod.cost.as_deref().and_then(|c| c.parse::<i32>().ok());
            let unchanged = match current {
                Some(c) => c == cost,
                None => cost == 0 && pod.cost.is_none(),
            };
            (!unchanged).then(|| (pod.name.clone(), cost))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(name: &str, pod: Option<&str>, in_flight: usize) -> WorkerInfo {
        WorkerInfo {
            name: name.into(),
            pod: pod.map(String::from),
            queues: vec!["default".into()],
            concurrency: 8,
            in_flight,
            started_at: 0,
            version: "0.1.0".into(),
            last_beat: 0,
        }
    }

    fn pod(name: &str, cost: Option<&str>) -> WorkerPod {
        WorkerPod {
            name: name.into(),
            cost: cost.map(String::from),
        }
    }

    #[test]
    fn costs_are_the_tasks_each_pod_holds() {
        let live = [
            worker("w-a#1", Some("w-a"), 5),
            worker("w-a#2", Some("w-a"), 2), // restarted in place: both count
            worker("w-b#1", Some("w-b"), 0),
            worker("local#1", None, 9), // not a pod: ignored
        ];
        type Row<'a> = (&'a str, &'a [WorkerPod], &'a [(&'a str, i32)]);
        let rows: &[Row] = &[
            (
                "busy pod marked, idle unannotated pod left alone",
                &[pod("w-a", None), pod("w-b", None)],
                &[("w-a", 7)],
            ),
            (
                "no change: nothing written",
                &[pod("w-a", Some("7")), pod("w-b", Some("0"))],
                &[],
            ),
            (
                "a pod that went idle goes back to 0",
                &[pod("w-b", Some("3"))],
                &[("w-b", 0)],
            ),
            (
                "a pod without a live worker costs 0",
                &[pod("w-c", Some("4"))],
                &[("w-c", 0)],
            ),
            (
                "an unreadable annotation is replaced",
                &[pod("w-a", Some("many"))],
                &[("w-a", 7)],
            ),
            (
                "an unreadable annotation on an idle pod too",
                &[pod("w-b", Some("x"))],
                &[("w-b", 0)],
            ),
        ];
        for (name, pods, want) in rows {
            let want: Vec<(String, i32)> = want.iter().map(|(p, c)| (p.to_string(), *c)).collect();
            assert_eq!(changes(pods, &live), want, "{name}");
        }
    }
}
