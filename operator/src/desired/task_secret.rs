//! The task Secret the operator generates for `withAsync` without
//! `taskSecretRef` (the key that signs task payloads).

use super::labels::Component;
use super::meta::Ctx;
use super::{DesiredError, names};
use crate::crd::PymServiceSpec;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;

/// Key of the generated task Secret ([`names::task_secret`]).
pub const TASK_SECRET_KEY: &str = "secret";

/// The generated task Secret, holding `value` (the reconciler's input);
/// None when `withAsync` is off or the user gives `taskSecretRef`.
pub(super) fn task_secret(
    ctx: &Ctx,
    spec: &PymServiceSpec,
    value: Option<&str>,
) -> Result<Option<Secret>, DesiredError> {
    Ok(match (spec.with_async, &spec.task_secret_ref) {
        (true, None) => {
            let value = value.ok_or(DesiredError::MissingTaskSecret)?;
            Some(Secret {
                metadata: ctx.meta(names::task_secret(ctx.name), Component::Config),
                type_: Some("Opaque".into()),
                data: Some(BTreeMap::from([(
                    TASK_SECRET_KEY.to_string(),
                    ByteString(value.as_bytes().to_vec()),
                )])),
                ..Default::default()
            })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::TASK_SECRET_KEY;
    use crate::crd::SecretKeyRef;
    use crate::desired::fixtures::{EXTERNAL, HELLO, MINIMAL, inputs, svc_from_yaml};
    use crate::desired::{DesiredError, Inputs, desired};
    use k8s_openapi::api::apps::v1::Deployment;
    use pym_core::contract;

    /// (name, key) of the Secret `var` comes from in the container, if any.
    fn secret_ref_of(d: &Deployment, var: &str) -> Option<(String, String)> {
        let c = &d.spec.as_ref()?.template.spec.as_ref()?.containers[0];
        let e = c.env.as_ref()?.iter().find(|e| e.name == var)?;
        let s = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
        Some((s.name.clone(), s.key.clone()))
    }

    #[test]
    fn with_async_pods_always_get_a_task_secret() {
        // (fixture, taskSecretRef, want Secret of PYM_TASK_SECRET, want a generated Secret)
        let user_ref = SecretKeyRef {
            name: "my-task".into(),
            key: "k".into(),
        };
        let cases = [
            (HELLO, None, ("hello-pym-task", TASK_SECRET_KEY), true),
            (EXTERNAL, None, ("ext-pym-task", TASK_SECRET_KEY), true),
            (HELLO, Some(user_ref.clone()), ("my-task", "k"), false),
        ];
        for (yaml, task_ref, (want_name, want_key), generated) in cases {
            let mut svc = svc_from_yaml(yaml);
            svc.spec.task_secret_ref = task_ref;
            let d = desired(&svc, &inputs()).unwrap();
            let want = Some((want_name.to_string(), want_key.to_string()));
            for dep in [&d.api_deployment, d.worker_deployment.as_ref().unwrap()] {
                assert_eq!(secret_ref_of(dep, contract::ENV_TASK_SECRET), want);
            }
            assert_eq!(d.task_secret.is_some(), generated);
            if let Some(s) = &d.task_secret {
                assert_eq!(s.metadata.name.as_deref(), Some(want_name));
                let v = &s.data.as_ref().unwrap()[TASK_SECRET_KEY];
                assert_eq!(v.0, b"test-task-secret");
            }
        }
        // Without withAsync: no task secret at all.
        let d = desired(&svc_from_yaml(MINIMAL), &Inputs::default()).unwrap();
        assert_eq!(
            secret_ref_of(&d.api_deployment, contract::ENV_TASK_SECRET),
            None
        );
        assert!(d.task_secret.is_none());
        // withAsync without the generated value is a reconciler bug, not a pod that exits.
        let no_task = Inputs {
            task_secret: None,
            ..inputs()
        };
        let err = desired(&svc_from_yaml(EXTERNAL), &no_task).unwrap_err();
        assert_eq!(err, DesiredError::MissingTaskSecret);
    }
}
