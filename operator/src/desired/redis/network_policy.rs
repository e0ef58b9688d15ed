//! The managed Redis NetworkPolicy: ingress on 6379 only, from the service's
//! own API and worker pods and from the operator's pods ([`OperatorPods`]).

use super::super::labels::{Component, LABEL_COMPONENT, LABEL_INSTANCE};
use super::super::meta::Ctx;
use super::super::names;
use super::REDIS_PORT;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Label every namespace carries with its own name (set by the apiserver).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The operator's own pods. The autoscaler runs inside them and reads queue
/// statistics from each managed Redis through its Service, so the Redis
/// NetworkPolicy admits them next to the service's own pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPods {
    /// The operator's namespace (`$POD_NAMESPACE`).
    pub namespace: String,
    /// Labels that select the operator's pods (the chart's selector labels).
    pub labels: BTreeMap<String, String>,
}

impl OperatorPods {
    /// `None` when there is nothing to select: no labels (an empty selector
    /// would admit every pod of the namespace) or no namespace.
    pub fn new(namespace: &str, labels: BTreeMap<String, String>) -> Option<Self> {
        (!namespace.is_empty() && !labels.is_empty()).then(|| OperatorPods {
            namespace: namespace.to_string(),
            labels,
        })
    }
}

/// The managed Redis admits, on its port only, this service's own API and
/// worker pods and, when it runs in the cluster, the operator's pods (the
/// autoscaler reads queue statistics from there).
pub(super) fn redis_network_policy(ctx: &Ctx, operator: Option<&OperatorPods>) -> NetworkPolicy {
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                LABEL_INSTANCE.to_string(),
                ctx.name.to_string(),
            )])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: LABEL_COMPONENT.into(),
                operator: "In".into(),
                values: Some(vec![
                    Component::Api.as_str().into(),
                    Component::Worker.as_str().into(),
                ]),
            }]),
        }),
        ..Default::default()
    };
    let operator_pods = operator.map(|o| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                o.namespace.clone(),
            )])),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(o.labels.clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    NetworkPolicy {
        metadata: ctx.meta(names::redis(ctx.name), Component::Redis),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(ctx.selector(Component::Redis)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(
                    [Some(own_pods), operator_pods]
                        .into_iter()
                        .flatten()
                        .collect(),
                ),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(REDIS_PORT)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{NAMESPACE_NAME_LABEL, OperatorPods};
    use crate::desired::fixtures::{HELLO, inputs, labels, operator_pods, svc_from_yaml};
    use crate::desired::labels::{LABEL_COMPONENT, LABEL_INSTANCE};
    use crate::desired::{Inputs, desired};
    use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use std::collections::BTreeMap;

    #[test]
    fn redis_network_policy_admits_own_pods_and_the_operator_on_6379_only() {
        let own = NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(&[(LABEL_INSTANCE, "hello")])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: LABEL_COMPONENT.into(),
                    operator: "In".into(),
                    values: Some(vec!["api".into(), "worker".into()]),
                }]),
            }),
            ..Default::default()
        };
        let operator = |ns: &str, l: &[(&str, &str)]| NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(labels(&[(NAMESPACE_NAME_LABEL, ns)])),
                ..Default::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(l)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let chart = [
            ("app.kubernetes.io/component", "operator"),
            ("app.kubernetes.io/instance", "pym"),
            ("app.kubernetes.io/name", "pym-operator"),
        ];
        // (operator pods, the peers the policy admits)
        let cases = [
            // outside the cluster (the e2e's local process): own pods only
            (None, vec![own.clone()]),
            (
                Some(operator_pods()),
                vec![own.clone(), operator("pym-system", &chart)],
            ),
            // the operator in the service's own namespace: still its labels only
            (
                OperatorPods::new("demo", labels(&[("app", "op")])),
                vec![own.clone(), operator("demo", &[("app", "op")])],
            ),
        ];
        for (op, want) in cases {
            let d = desired(
                &svc_from_yaml(HELLO),
                &Inputs {
                    operator_pods: op.clone(),
                    ..inputs()
                },
            )
            .unwrap();
            let np = d.managed_redis.unwrap().network_policy;
            assert_eq!(np.metadata.name.as_deref(), Some("hello-redis"));
            let spec = np.spec.unwrap();
            assert_eq!(
                spec.pod_selector.unwrap().match_labels,
                Some(labels(&[
                    (LABEL_INSTANCE, "hello"),
                    (LABEL_COMPONENT, "redis")
                ])),
                "{op:?}"
            );
            assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
            let rules = spec.ingress.unwrap();
            assert_eq!(rules.len(), 1, "{op:?}");
            assert_eq!(rules[0].from.as_ref(), Some(&want), "{op:?}");
            let ports = rules[0].ports.as_ref().unwrap();
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0].port, Some(IntOrString::Int(6379)));
            assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
            assert_eq!(ports[0].end_port, None);
        }
    }

    #[test]
    fn operator_pods_need_a_namespace_and_labels() {
        let l = labels(&[("app", "op")]);
        assert!(OperatorPods::new("ops", l.clone()).is_some());
        assert_eq!(OperatorPods::new("", l), None, "no namespace");
        assert_eq!(
            OperatorPods::new("ops", BTreeMap::new()),
            None,
            "an empty selector would admit the whole namespace"
        );
    }
}
