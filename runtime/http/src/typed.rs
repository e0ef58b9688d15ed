//! Typed handlers: the run-time side of the code `pym_runtime::api!`
//! generates. A typed handler gets the operation's parameters and body as
//! the operation's layer validated them ([`Input`]: values already parsed
//! and converted, so the body is parsed once per request), and answers
//! with the operation's generated `Response` enum ([`json`], [`empty`],
//! [`within`]) or an [`ApiError`].

use crate::auth::Claims;
use crate::error::{ApiError, Declared};
use crate::server::{Bound, ServiceBuilder};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;

/// The validated parameters and body of one request.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// Parameters sent, by their name in the spec.
    params: Vec<(String, Value)>,
    body: Option<Value>,
}

impl Input {
    pub(crate) fn new(params: Vec<(String, Value)>, body: Option<Value>) -> Self {
        Input { params, body }
    }

    /// The parameter `name` (as the spec spells it) as a `T`; an absent
    /// one reads as JSON `null` (so `Option<T>` is `None`).
    pub fn param<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, ApiError> {
        let value = self
            .params
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.take())
            .unwrap_or(Value::Null);
        read(value, name)
    }

    /// The caller's verified claims: for an operation whose `security`
    /// requires a token (verified before the handler runs).
    pub fn caller(&self) -> Result<Claims, ApiError> {
        self.caller_if_any()
            .ok_or_else(ApiError::authorization_header_missing)
    }

    /// The caller's verified claims, if a token was sent (an operation
    /// whose `security` makes it optional).
    pub fn caller_if_any(&self) -> Option<Claims> {
        pym_core::context::with_current(|c| c.and_then(|c| c.claims.clone())).map(Claims)
    }

    /// The body as a `T`; an absent one reads as JSON `null`.
    pub fn body<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        read(self.body.take().unwrap_or(Value::Null), "body")
    }
}

/// `value` as a `T`. The spec's schema accepted it; a type can still be
/// stricter than its schema (a validated newtype, a number's range). The
/// answer names the field and the type, never the value (which may be a
/// secret).
fn read<T: DeserializeOwned>(value: Value, field: &str) -> Result<T, ApiError> {
    T::deserialize(value).map_err(|_| {
        ApiError::invalid_parameter(
            field,
            format!("cannot be read as {}", short_type_name::<T>()),
        )
    })
}

/// `T`'s name without its module paths (`Option<SignupRequest>`).
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or(""));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or(""));
    out
}

/// `body` as JSON with status `status`, sent as it is even for an error
/// status (the spec declares that body).
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.extensions_mut().insert(Declared);
            r
        }
        Err(e) => {
            ApiError::server_error(format!("cannot serialize the response: {e}")).into_response()
        }
    }
}

/// A response the spec declares without a body: empty below 400; from 400
/// on, pym's standard error JSON, with the spec's `description` of that
/// response as its `error_description` and the status's reason as its
/// code (`NOT_FOUND`), so every error keeps one shape.
pub fn empty(status: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.as_u16() < 400 {
        return status.into_response();
    }
    let description = if description.is_empty() {
        status.canonical_reason().unwrap_or("error")
    } else {
        description
    };
    ApiError::new(status, error_code(status), description).into_response()
}

/// `NOT_FOUND` for 404: the reason phrase in upper snake case, else
/// `HTTP_<code>`.
fn error_code(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(r) => r
            .chars()
            .filter_map(|c| match c {
                ' ' | '-' => Some('_'),
                c if c.is_ascii_alphanumeric() => Some(c.to_ascii_uppercase()),
                _ => None,
            })
            .collect(),
        None => format!("HTTP_{}", status.as_u16()),
    }
}

/// `status`, if within `min..=max` (a `2XX` or `default` response of the
/// spec), else a 500 saying so.
pub fn within(status: StatusCode, min: u16, max: u16) -> Result<StatusCode, ApiError> {
    if (min..=max).contains(&status.as_u16()) {
        Ok(status)
    } else {
        Err(ApiError::server_error(format!(
            "the handler answered {} for a response the spec declares as {min}-{max}",
            status.as_u16()
        )))
    }
}

impl ServiceBuilder {
    /// Bind a typed handler to the operation with this `operationId`: it
    /// gets the request's validated [`Input`] and answers with `R` or an
    /// [`ApiError`]. Generated `bind` functions call this; write
    /// [`ServiceBuilder::handler`] for an axum handler.
    pub fn typed_handler<F, Fut, R>(self, operation_id: &str, handler: F) -> Self
    where
        F: Fn(Input) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ApiError>> + Send + 'static,
        R: IntoResponse,
    {
        let handler = move |mut req: Request| {
            let input = req.extensions_mut().remove::<Input>();
            let handler = handler.clone();
            async move {
                let Some(input) = input else {
                    return ApiError::server_error("typed handler without validated input")
                        .into_response();
                };
                match handler(input).await {
                    Ok(r) => r.into_response(),
                    Err(e) => e.into_response(),
                }
            }
        };
        self.bind(operation_id, Bound::new(handler, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_and_body_are_read_by_type() {
        let mut input = Input::new(
            vec![
                ("limit".into(), json!(5)),
                ("tags".into(), json!(["a", "b"])),
            ],
            Some(json!({"email": "a@b.c"})),
        );
        assert_eq!(input.param::<i64>("limit").unwrap(), 5);
        assert_eq!(input.param::<Vec<String>>("tags").unwrap(), ["a", "b"]);
        assert_eq!(input.param::<Option<bool>>("absent").unwrap(), None);
        let e = input.param::<i64>("absent").unwrap_err();
        assert_eq!(e.description, "absent: cannot be read as i64");
        let body: std::collections::BTreeMap<String, String> = input.body().unwrap();
        assert_eq!(body["email"], "a@b.c");
        assert_eq!(input.body::<Option<Value>>().unwrap(), None, "taken once");
    }

    #[test]
    fn a_refused_value_is_not_echoed() {
        let mut input = Input::new(vec![("pin".into(), json!("hunter2"))], None);
        let e = input.param::<Option<u16>>("pin").unwrap_err();
        assert_eq!(e.description, "pin: cannot be read as Option<u16>");
        assert!(!e.description.contains("hunter2"));
    }

    #[test]
    fn statuses_within_ranges() {
        let cases = [
            (200, 200, 299, true),
            (299, 200, 299, true),
            (404, 200, 299, false),
            (100, 100, 599, true),
        ];
        for (code, min, max, ok) in cases {
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(within(s, min, max).is_ok(), ok, "{code} in {min}-{max}");
        }
    }

    #[test]
    fn json_and_empty_responses() {
        let r = json(201, &json!({"a": 1}));
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert!(r.extensions().get::<Declared>().is_some());
        assert_eq!(empty(204, "done").status(), StatusCode::NO_CONTENT);
        assert!(
            empty(404, "no such note")
                .extensions()
                .get::<Declared>()
                .is_none()
        );
    }

    #[test]
    fn error_codes_from_statuses() {
        let cases = [
            (404, "NOT_FOUND"),
            (422, "UNPROCESSABLE_ENTITY"),
            (418, "IM_A_TEAPOT"),
            (599, "HTTP_599"),
        ];
        for (code, want) in cases {
            assert_eq!(error_code(StatusCode::from_u16(code).unwrap()), want);
        }
    }
}
