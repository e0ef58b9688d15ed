//! Shared test builders: the PymService fixtures, the resolved inputs, the
//! chart's operator pods and a label map helper.

use super::{Inputs, OperatorPods, parse_labels};
use crate::crd::PymService;
use std::collections::BTreeMap;

pub(super) fn svc_from_yaml(yaml: &str) -> PymService {
    let mut svc: PymService = yaml_serde::from_str(yaml).expect("fixture parses");
    svc.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    svc.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    svc
}

pub(super) fn inputs() -> Inputs {
    Inputs {
        redis_password: Some("test-password".into()),
        task_secret: Some("test-task-secret".into()),
        secrets_hash: "0011223344556677".into(),
        operator_pods: Some(operator_pods()),
    }
}

/// The chart's operator pods (release `pym` in `pym-system`).
pub(super) fn operator_pods() -> OperatorPods {
    OperatorPods {
        namespace: "pym-system".into(),
        labels: parse_labels(
            "app.kubernetes.io/name=pym-operator,app.kubernetes.io/instance=pym,\
             app.kubernetes.io/component=operator",
        )
        .unwrap(),
    }
}

pub(super) const MINIMAL: &str = "
apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {name: tiny}
spec:
  image: pym/tiny:1
";

pub(super) const HELLO: &str = "
apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {name: hello, namespace: demo}
spec:
  image: pym/hello:dev
  withAsync: true
  jwtSecretRef: {name: hello-jwt, key: secret}
  config:
    name: hello
    jwt_issuer: https://hello.example
  workers:
    minReplicas: 2
    maxReplicas: 5
    concurrency: 4
    queues: [default, emails]
  redis:
    managed:
      persistence: {size: 2Gi}
";

pub(super) const EXTERNAL: &str = "
apiVersion: pym.dev/v1alpha1
kind: PymService
metadata: {name: ext}
spec:
  image: pym/ext:1
  imagePullPolicy: IfNotPresent
  withAsync: true
  env: [{name: PYM_LOG_FORMAT, value: pretty}, {name: EXTRA, value: '1'}]
  api:
    replicas: 3
    port: 9000
    env: [{name: API_ONLY, value: x}]
  redis:
    external:
      urlSecretRef: {name: redis-url, key: url}
  imagePullSecrets: [{name: regcred}]
  serviceAccountName: ext-sa
  nodeSelector: {pool: general}
  tolerations: [{key: dedicated, operator: Equal, value: pym, effect: NoSchedule}]
";

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
