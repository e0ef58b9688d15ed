//! Who may do what: the role in the token's `pym_admin` claim (`read`
//! looks, `operate` also replays and purges), and the log line of every
//! operate action, under an action id.

use axum::Json;
use pym_core::contract::CLAIM_ADMIN;
use pym_http::{ApiError, axum};
use serde_json::{Value, json};

/// An admin role, the lesser first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    Read,
    Operate,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
        }
    }
}

/// The role the claims give (the token itself was verified by the
/// operation's security); none, or an unknown one, is refused.
pub(crate) fn role_of(claims: Option<&Value>) -> Result<Role, ApiError> {
    match claims
        .and_then(|c| c.get(CLAIM_ADMIN))
        .and_then(Value::as_str)
    {
        Some("read") => Ok(Role::Read),
        Some("operate") => Ok(Role::Operate),
        Some(other) => Err(ApiError::forbidden(format!(
            "claim {CLAIM_ADMIN} is {other:?}; the admin API takes \"read\" or \"operate\""
        ))),
        None => Err(ApiError::forbidden(format!(
            "the admin API needs a token with the claim {CLAIM_ADMIN}: \"read\" or \"operate\""
        ))),
    }
}

/// Whether `role` may do what `need` asks.
pub(crate) fn allow(role: Role, need: Role) -> Result<(), ApiError> {
    if role >= need {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "this needs the admin role {:?} (claim {CLAIM_ADMIN}); the token has {:?}",
            need.label(),
            role.label()
        )))
    }
}

/// The caller of this request.
pub(crate) struct Caller {
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    pub role: Role,
}

/// The caller, if their role is at least `need`.
pub(crate) fn caller(need: Role) -> Result<Caller, ApiError> {
    let ctx = pym_core::context();
    let role = role_of(ctx.claims.as_ref())?;
    allow(role, need)?;
    Ok(Caller {
        user_id: ctx.user_id.clone(),
        request_id: ctx.request_id.clone(),
        role,
    })
}

/// An operator action: its id, given in the answer and logged with the
/// caller's user id.
pub(crate) struct Action {
    pub id: String,
}

impl Action {
    /// Begin `what` (e.g. `dead.replay`) on `queue` for an `operate` caller.
    pub(crate) fn begin(what: &'static str, queue: &str, detail: &str) -> Result<Self, ApiError> {
        let caller = caller(Role::Operate)?;
        let id = uuid::Uuid::now_v7().to_string();
        tracing::info!(
            action_id = %id,
            action = what,
            queue,
            selection = detail,
            user_id = caller.user_id.as_deref().unwrap_or("-"),
            request_id = caller.request_id.as_deref().unwrap_or("-"),
            "admin action"
        );
        Ok(Action { id })
    }

    /// The answer (and the log line) of a finished action.
    pub(crate) fn done(self, done: u64, refused: u64) -> Json<Value> {
        tracing::info!(action_id = %self.id, done, refused, "admin action done");
        Json(json!({"action_id": self.id, "done": done, "refused": refused}))
    }
}

/// `GET /_pym/admin/me`: the caller's user id, role and request id.
pub(crate) async fn me() -> Result<Json<Value>, ApiError> {
    let c = caller(Role::Read)?;
    Ok(Json(json!({
        "user_id": c.user_id,
        "role": c.role.label(),
        "request_id": c.request_id,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_claims() {
        let cases: &[(Option<Value>, Result<Role, &str>)] = &[
            (Some(json!({"pym_admin": "read"})), Ok(Role::Read)),
            (Some(json!({"pym_admin": "operate"})), Ok(Role::Operate)),
            (Some(json!({"pym_admin": "admin"})), Err("is \"admin\"")),
            (
                Some(json!({"pym_admin": true})),
                Err("needs a token with the claim"),
            ),
            (
                Some(json!({"sub": "u"})),
                Err("needs a token with the claim"),
            ),
            (None, Err("needs a token with the claim")),
        ];
        for (claims, want) in cases {
            match (role_of(claims.as_ref()), want) {
                (Ok(r), Ok(w)) => assert_eq!(r, *w, "{claims:?}"),
                (Err(e), Err(w)) => {
                    assert_eq!(e.status.as_u16(), 403, "{claims:?}");
                    assert!(e.description.contains(w), "{claims:?}: {}", e.description);
                }
                (got, _) => panic!("{claims:?}: {:?}", got.map_err(|e| e.description)),
            }
        }
    }

    #[test]
    fn operate_may_read_read_may_not_operate() {
        let cases = [
            (Role::Read, Role::Read, true),
            (Role::Operate, Role::Read, true),
            (Role::Operate, Role::Operate, true),
            (Role::Read, Role::Operate, false),
        ];
        for (role, need, ok) in cases {
            assert_eq!(allow(role, need).is_ok(), ok, "{role:?} {need:?}");
        }
    }
}
