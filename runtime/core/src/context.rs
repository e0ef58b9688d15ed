//! Request context: captured in HTTP handlers, carried in task envelopes and
//! restored (task-local) in workers, so a task sees the same "current user"
//! as the endpoint that spawned it.
//!
//! Read it with [`context()`] anywhere: in a handler, in a task body, or in
//! code they call. Outside of both it is the empty *system* context.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// Who called, and from which request.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Verified user id (the JWT `sub`), if the request was authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Verified JWT claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Value>,
    /// Raw bearer token, so a task can call other APIs on the user's behalf.
    /// Never logged: `Debug` redacts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `X-Request-Id` of the originating request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// W3C `traceparent` of the originating request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// HTTP method of the originating request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path of the originating request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Context {
    /// The empty context of code not running on behalf of a request.
    pub fn system() -> Self {
        Self::default()
    }

    /// True when no request is behind this context.
    pub fn is_system(&self) -> bool {
        *self == Self::default()
    }

    /// The trace id of the carried `traceparent` (its second part).
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent.as_deref()?.split('-').nth(1)
    }

    /// Expiry (`exp`, seconds since the epoch) of the carried token's claims.
    pub fn token_expiry(&self) -> Option<u64> {
        self.claims.as_ref()?.get("exp")?.as_u64()
    }

    /// In a task run by a worker: whether the task was cancelled
    /// (`<task>::cancel`, from any process; seen within about a second).
    /// Cooperative: the task checks it and stops. `false` elsewhere.
    pub fn cancelled(&self) -> bool {
        crate::task_run::current().is_some_and(|r| r.is_cancelled())
    }

    /// In a task run by a worker: completes once the task is cancelled
    /// (for `tokio::select!`); never elsewhere.
    pub async fn until_cancelled(&self) {
        match crate::task_run::current() {
            Some(r) => r.until_cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// In a task run by a worker: report progress (`fraction` from 0 to 1,
    /// and a message), shown by its handle within about a second if the
    /// task is tracked. Ignored elsewhere.
    pub fn progress(&self, fraction: f64, message: impl Into<String>) {
        if let Some(r) = crate::task_run::current() {
            r.set_progress(fraction, message.into());
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("user_id", &self.user_id)
            .field("request_id", &self.request_id)
            .field("traceparent", &self.traceparent)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("claims", &self.claims.as_ref().map(|_| "<claims>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

tokio::task_local! {
    static CURRENT: Arc<Context>;
}

/// The context of the running request or task (the system context if none).
pub fn context() -> Arc<Context> {
    CURRENT
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(Context::system()))
}

/// `f` of the context of the running request or task, `None` outside of
/// both; unlike [`context()`] it allocates nothing (log lines read it).
pub fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    let mut f = Some(f);
    match CURRENT.try_with(|c| (f.take().expect("called once"))(Some(c))) {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called: no context"))(None),
    }
}

/// Run `fut` with `ctx` as its current context.
///
/// Not an `async fn`: that would hold `fut` twice (its argument and the
/// scope's future), and the future of every task run is moved on spawn.
pub fn scope<F: Future>(ctx: Arc<Context>, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(ctx, fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scope_sets_and_restores() {
        assert!(context().is_system());
        let ctx = Arc::new(Context {
            user_id: Some("u1".into()),
            token: Some("secret-token".into()),
            ..Default::default()
        });
        let seen = scope(ctx.clone(), async { context() }).await;
        assert_eq!(seen.user_id.as_deref(), Some("u1"));
        assert!(context().is_system());
        let user = |c: Option<&Context>| c.and_then(|c| c.user_id.clone());
        assert_eq!(
            scope(ctx, async { with_current(user) }).await.as_deref(),
            Some("u1")
        );
        assert_eq!(with_current(user), None);
    }

    #[test]
    fn trace_id_of_the_traceparent() {
        let cases = [
            (
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            ),
            (Some("garbage"), None),
            (None, None),
        ];
        for (tp, want) in cases {
            let ctx = Context {
                traceparent: tp.map(String::from),
                ..Default::default()
            };
            assert_eq!(ctx.trace_id(), want, "{tp:?}");
        }
    }

    #[test]
    fn debug_redacts_token() {
        let ctx = Context {
            token: Some("eyJsecret".into()),
            ..Default::default()
        };
        let shown = format!("{ctx:?}");
        assert!(!shown.contains("eyJsecret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
