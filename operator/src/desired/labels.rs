//! Label keys and values of every child object (`app.kubernetes.io/*`), the
//! [`Component`] each object belongs to, and the `key=value` label parser.

use std::collections::BTreeMap;

/// Label values and keys (`app.kubernetes.io/*`).
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/managed-by` value; the operator watches children by it.
pub const MANAGED_BY: &str = "pym-operator";

/// Components, used in labels and names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Api,
    Worker,
    Redis,
    Config,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::Worker => "worker",
            Component::Redis => "redis",
            Component::Config => "config",
        }
    }
}

/// Parses `key=value,key=value` (e.g. `--operator-pod-labels`) into labels,
/// each key and value checked against the Kubernetes label syntax, so a typo
/// fails at start and not on every NetworkPolicy apply. Blank: no labels.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if !is_label_key(k) {
            return Err(format!(
                "{k:?} is not a label key ([prefix/]name, name 1-63 of [A-Za-z0-9_.-] \
                 starting and ending alphanumeric, prefix a DNS subdomain)"
            ));
        }
        if !(v.is_empty() || is_label_name(v)) {
            return Err(format!(
                "{v:?} (label {k}) is not a label value (0-63 of [A-Za-z0-9_.-] \
                 starting and ending alphanumeric)"
            ));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("label {k} is given twice"));
        }
    }
    Ok(out)
}

/// The name part of a label key, or a non-empty label value.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        None => is_label_name(s),
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
    }
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated labels of
/// lowercase alphanumerics and '-', each starting and ending alphanumeric.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            (1..=63).contains(&b.len())
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures::labels;

    #[test]
    fn parse_labels_table() {
        // (input, Ok(pairs) or Err(part of the message))
        let ok = |p: &[(&str, &str)]| Ok::<_, &str>(labels(p));
        type Want = Result<BTreeMap<String, String>, &'static str>;
        let cases: &[(&str, Want)] = &[
            ("", ok(&[])),
            (" , ", ok(&[])),
            ("app=op", ok(&[("app", "op")])),
            (
                "app.kubernetes.io/name=pym-operator, app.kubernetes.io/instance=pym",
                ok(&[
                    ("app.kubernetes.io/instance", "pym"),
                    ("app.kubernetes.io/name", "pym-operator"),
                ]),
            ),
            ("tier=", ok(&[("tier", "")])),
            ("a=1,b=x_y.z-2", ok(&[("a", "1"), ("b", "x_y.z-2")])),
            ("app", Err("is not key=value")),
            ("=op", Err("is not a label key")),
            ("-app=op", Err("is not a label key")),
            ("Example.com/app=op", Err("is not a label key")),
            ("example.com/=op", Err("is not a label key")),
            ("a/b/c=op", Err("is not a label key")),
            ("app=op=x", Err("is not a label value")),
            ("app=has space", Err("is not a label value")),
            ("app=op-", Err("is not a label value")),
            ("app=op,app=other", Err("given twice")),
        ];
        for (input, want) in cases {
            let got = parse_labels(input);
            match want {
                Ok(w) => assert_eq!(got.as_ref(), Ok(w), "{input:?}"),
                Err(part) => {
                    let e = got.expect_err(input);
                    assert!(e.contains(part), "{input:?}: {e}");
                }
            }
        }
        let long_key = format!("{}=v", "k".repeat(64));
        assert!(parse_labels(&long_key).is_err());
        let long_value = format!("k={}", "v".repeat(64));
        assert!(parse_labels(&long_value).is_err());
        assert!(parse_labels(&format!("k={}", "v".repeat(63))).is_ok());
    }
}
