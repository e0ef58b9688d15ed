//! The crate's one error type. Every variant has a metrics label
//! ([`Error::metric_label`]) and a condition reason ([`Error::reason`]); its
//! message says what to do and never contains a secret value.

use crate::desired::DesiredError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("{field}: Secret {namespace}/{name} not found; create it or fix {field}.name")]
    SecretNotFound {
        field: &'static str,
        namespace: String,
        name: String,
    },

    #[error("{field}: Secret {namespace}/{name} has no key {key:?}; add it or fix {field}.key")]
    SecretKeyMissing {
        field: &'static str,
        namespace: String,
        name: String,
        key: String,
    },

    /// `reason` comes from [`pym_broker::redis_url::describe`]: the form
    /// recognised and what is wrong, or the accepted forms; never a password.
    #[error(
        "{field}: the value of Secret {namespace}/{name} key {key:?} is not a Redis URL the operator accepts: {reason}"
    )]
    BadRedisUrl {
        field: &'static str,
        namespace: String,
        name: String,
        key: String,
        reason: String,
    },

    #[error(
        "{kind} {namespace}/{name} exists and is {holder}; the operator left it untouched. Rename the PymService, or delete that {kind} if it is not needed"
    )]
    NotOwned {
        kind: &'static str,
        namespace: String,
        name: String,
        /// Who controls it, in words ("controlled by PymService x").
        holder: String,
    },

    /// Shown (condition, Event) without `message`: the raw connect error to
    /// a user-chosen URL would make the status a port-scan oracle; the
    /// operator's own log has it ([`Error::detail`]).
    #[error("{}", queue_stats_text(endpoint, message))]
    QueueStats { endpoint: String, message: String },

    #[error("cannot build the desired objects: {0}")]
    Desired(#[from] DesiredError),

    #[error("leader election on the Lease failed: {0}; check RBAC for coordination.k8s.io leases")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),

    #[error(
        "no Kubernetes configuration found: {0}; set KUBECONFIG, pass --kubeconfig, or run in a pod"
    )]
    Config(String),

    #[error("cannot serve metrics/health on {addr}: {source}; pick another --http-addr")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Low-cardinality label for `pym_operator_reconcile_errors_total{error=...}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.is_conflict() => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.is_forbidden() => "forbidden",
            Error::Kube(kube::Error::Api(s)) if s.code == 422 => "invalid",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::SecretNotFound { .. } => "secret_not_found",
            Error::SecretKeyMissing { .. } => "secret_key_missing",
            Error::BadRedisUrl { .. } => "bad_redis_url",
            Error::NotOwned { .. } => "not_owned",
            Error::QueueStats { .. } => "queue_stats",
            Error::Desired(_) => "desired",
            Error::Lease(_) => "lease",
            Error::Config(_) => "config",
            Error::Bind { .. } => "bind",
        }
    }

    /// PascalCase reason for the Degraded condition and the Warning Event.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.is_forbidden() => "Forbidden",
            Error::Kube(kube::Error::Api(s)) if s.code == 422 => "InvalidObject",
            Error::Kube(_) => "ApiError",
            Error::SecretNotFound { .. } => "SecretNotFound",
            Error::SecretKeyMissing { .. } => "SecretKeyMissing",
            Error::BadRedisUrl { .. } => "BadRedisUrl",
            Error::NotOwned { .. } => "NameConflict",
            Error::QueueStats { .. } => "RedisUnreachable",
            Error::Desired(_) => "InvalidSpec",
            Error::Lease(_) => "LeaseError",
            Error::Config(_) => "ConfigError",
            Error::Bind { .. } => "BindError",
        }
    }
}

fn queue_stats_text(endpoint: &str, message: &str) -> String {
    if endpoint.is_empty() {
        format!("cannot read queue statistics: {message}")
    } else {
        format!("Redis {endpoint} unreachable: queue statistics not read")
    }
}

impl Error {
    /// What only the operator's log shows (the cause behind a short message).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::QueueStats { message, .. } => Some(message),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_errors_say_what_to_do() {
        let e = Error::SecretNotFound {
            field: "spec.jwtSecretRef",
            namespace: "demo".into(),
            name: "jwt".into(),
        };
        assert_eq!(
            e.to_string(),
            "spec.jwtSecretRef: Secret demo/jwt not found; create it or fix spec.jwtSecretRef.name"
        );
        assert_eq!(e.metric_label(), "secret_not_found");
        assert_eq!(e.reason(), "SecretNotFound");
    }

    #[test]
    fn api_errors_are_classified() {
        let st = kube::core::Status {
            code: 409,
            reason: "Conflict".into(),
            ..Default::default()
        };
        let e = Error::Kube(kube::Error::Api(Box::new(st)));
        assert_eq!(e.metric_label(), "conflict");
        assert_eq!(e.reason(), "ApiError");
    }

    #[test]
    fn unreachable_redis_is_reported_without_the_connect_error() {
        let e = Error::QueueStats {
            endpoint: "redis://:***@10.0.0.9:6380/0".into(),
            message: "Connection refused (os error 111)".into(),
        };
        let shown = e.to_string();
        assert_eq!(
            shown,
            "Redis redis://:***@10.0.0.9:6380/0 unreachable: queue statistics not read"
        );
        assert_eq!(e.detail(), Some("Connection refused (os error 111)"));
        let no_redis = Error::QueueStats {
            endpoint: String::new(),
            message: "spec.redis is not set".into(),
        };
        assert_eq!(
            no_redis.to_string(),
            "cannot read queue statistics: spec.redis is not set"
        );
    }
}
