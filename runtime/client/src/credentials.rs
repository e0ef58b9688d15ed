//! Which bearer token a call sends.

use std::fmt;
use std::sync::Arc;

/// The `Authorization: Bearer` a call carries.
#[derive(Clone, Default)]
pub enum Credentials {
    /// The caller's token: the one the request being handled carried, or
    /// the one restored in the running task. Calls made outside both send
    /// none.
    #[default]
    Forward,
    /// The caller's token when there is one, else this service token.
    ForwardOr(Arc<str>),
    /// Always this token, whoever the caller is.
    Service(Arc<str>),
    /// No `Authorization` header.
    None,
}

impl Credentials {
    /// The token to send, given the caller's (if any).
    pub fn token<'a>(&'a self, caller: Option<&'a str>) -> Option<&'a str> {
        match self {
            Credentials::Forward => caller,
            Credentials::ForwardOr(service) => caller.or(Some(service)),
            Credentials::Service(service) => Some(service),
            Credentials::None => None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::Forward => "Forward",
            Credentials::ForwardOr(_) => "ForwardOr(<redacted>)",
            Credentials::Service(_) => "Service(<redacted>)",
            Credentials::None => "None",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_token_is_sent() {
        let svc: Arc<str> = "svc".into();
        let cases = [
            (Credentials::Forward, Some("user"), Some("user")),
            (Credentials::Forward, None, None),
            (
                Credentials::ForwardOr(svc.clone()),
                Some("user"),
                Some("user"),
            ),
            (Credentials::ForwardOr(svc.clone()), None, Some("svc")),
            (Credentials::Service(svc.clone()), Some("user"), Some("svc")),
            (Credentials::None, Some("user"), None),
        ];
        for (creds, caller, want) in cases {
            assert_eq!(creds.token(caller), want, "{creds:?} {caller:?}");
        }
        assert!(!format!("{:?}", Credentials::Service(svc)).contains("svc"));
    }
}
