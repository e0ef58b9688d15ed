//! One error format for every failure of the HTTP API, pymacaron's:
//!
//! ```json
//! {"status": 401, "error": "TOKEN_EXPIRED", "error_description": "...",
//!  "error_id": "<uuid>", "user_message": "..."}
//! ```
//!
//! Handlers return [`ApiError`]; the service turns panics, unknown routes,
//! wrong methods and axum extractor rejections into the same shape (see
//! [`normalize`]). Services add their own codes with [`ApiError::new`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::fmt;

/// At most this many characters of what a client sent are echoed in an
/// error (response and log), see [`clip`].
pub const ECHO_MAX: usize = 100;

/// `text` if it has at most `max` characters, else its first `max`
/// characters, an ellipsis and its length: `aaaa… (2097152 bytes)`.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// The built-in error codes (pymacaron's names), and their HTTP status.
pub mod codes {
    pub const INVALID_PARAMETER: &str = "INVALID_PARAMETER";
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    pub const AUTHORIZATION_HEADER_MISSING: &str = "AUTHORIZATION_HEADER_MISSING";
    pub const TOKEN_INVALID: &str = "TOKEN_INVALID";
    pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    pub const CONFLICT: &str = "CONFLICT";
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    pub const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
    pub const SERVER_ERROR: &str = "SERVER_ERROR";
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// A called API answered something that is not what its spec declares.
    pub const BAD_GATEWAY: &str = "BAD_GATEWAY";
    /// A called API did not answer in time.
    pub const GATEWAY_TIMEOUT: &str = "GATEWAY_TIMEOUT";
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub status: u16,
    pub error: String,
    pub error_description: String,
    pub error_id: String,
    pub user_message: String,
}

/// Marker put in the extensions of responses built from an [`ApiError`], so
/// the normalising layer leaves them alone.
#[derive(Debug, Clone)]
pub struct PymError {
    pub code: String,
    pub error_id: String,
    /// The description for developers (of a 5xx: not sent, but reported).
    pub description: String,
}

/// An API error: an HTTP status, a code, and a description for developers.
///
/// `user_message` is what a client may show an end user; it defaults to a
/// generic sentence for the status. Server errors (5xx) are logged with their
/// `error_id` when turned into a response; the description of a 5xx is not
/// sent to the client (only "internal error"), so nothing internal leaks.
///
/// `error_id` is set on an error a called API answered (see pym-client):
/// sent on, it keeps that id, so one id names the error in both services'
/// logs. Otherwise a fresh id is made when the error becomes a response.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub description: String,
    pub user_message: Option<String>,
    pub error_id: Option<String>,
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.description
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// A service-specific error: `ApiError::new(StatusCode::CONFLICT, "EMAIL_TAKEN", "...")`.
    pub fn new(
        status: StatusCode,
        code: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            description: description.into(),
            user_message: None,
            error_id: None,
        }
    }

    /// The error `body` (pym's standard JSON) describes, as a called API
    /// answered it: same status (`status` when the body's is not one),
    /// code, description, user message and `error_id`.
    pub fn from_body(status: StatusCode, body: ErrorBody) -> Self {
        Self {
            status: StatusCode::from_u16(body.status).unwrap_or(status),
            code: body.error,
            description: body.error_description,
            user_message: Some(body.user_message),
            error_id: Some(body.error_id),
        }
    }

    /// 502 `BAD_GATEWAY`: a called API answered what its spec does not allow.
    pub fn bad_gateway(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, codes::BAD_GATEWAY, description)
    }

    /// 504 `GATEWAY_TIMEOUT`: a called API did not answer in time.
    pub fn gateway_timeout(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            codes::GATEWAY_TIMEOUT,
            description,
        )
    }

    /// Set the message meant for end users.
    pub fn with_user_message(mut self, message: impl Into<String>) -> Self {
        self.user_message = Some(message.into());
        self
    }

    /// 400 `INVALID_PARAMETER`: `field` names the offending parameter or body field.
    pub fn invalid_parameter(field: &str, why: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_PARAMETER,
            format!("{field}: {why}"),
        )
    }
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, description)
    }
    pub fn authorization_header_missing() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::AUTHORIZATION_HEADER_MISSING,
            "this endpoint requires an 'Authorization: Bearer <token>' header",
        )
    }
    pub fn token_invalid(why: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::TOKEN_INVALID, why)
    }
    pub fn token_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::TOKEN_EXPIRED,
            "the token has expired; get a new one",
        )
    }
    pub fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, description)
    }
    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, description)
    }
    pub fn method_not_allowed(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            description,
        )
    }
    /// 500 `SERVER_ERROR`. The description is logged, not sent.
    pub fn server_error(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::SERVER_ERROR,
            description,
        )
    }
    pub fn service_unavailable(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVICE_UNAVAILABLE,
            description,
        )
    }

    /// The body this error is sent as, with its `error_id` or a fresh one.
    pub fn body(&self) -> ErrorBody {
        let error_id = match &self.error_id {
            Some(id) => id.clone(),
            None => uuid::Uuid::now_v7().to_string(),
        };
        let server = self.status.is_server_error();
        ErrorBody {
            status: self.status.as_u16(),
            error: self.code.clone(),
            error_description: if server {
                format!("internal error; quote error_id {error_id} when reporting it")
            } else {
                self.description.clone()
            },
            error_id,
            user_message: self
                .user_message
                .clone()
                .unwrap_or_else(|| default_user_message(self.status).to_string()),
        }
    }
}

fn default_user_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request is not valid.",
        401 => "Please sign in again.",
        403 => "You are not allowed to do this.",
        404 => "Not found.",
        405 => "This operation is not supported.",
        409 => "This conflicts with the current state.",
        429 => "Too many requests. Please retry later.",
        413 => "The request is too large.",
        415 => "The request format is not supported.",
        503 => "The service is temporarily unavailable. Please retry later.",
        s if s >= 500 => "Something went wrong on our side. Please retry later.",
        _ => "The request failed.",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        if self.status.is_server_error() {
            tracing::error!(
                error_id = %body.error_id,
                code = %self.code,
                status = self.status.as_u16(),
                "{}",
                self.description
            );
        } else {
            tracing::info!(
                error_id = %body.error_id,
                code = %self.code,
                status = self.status.as_u16(),
                "{}",
                self.description
            );
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response.extensions_mut().insert(PymError {
            code: self.code,
            error_id: body.error_id,
            description: self.description,
        });
        response
    }
}

/// Marker put in the extensions of a response whose body the spec
/// declares (a typed handler's `Response` variant with a schema), so the
/// normalising layer sends it as the spec says.
#[derive(Debug, Clone, Copy)]
pub struct Declared;

/// Map a bare error response (axum's 404/405, an extractor rejection, a body
/// too large, ...) to the pym error format. Responses built from [`ApiError`],
/// and error responses whose body the spec declares, pass through unchanged.
pub async fn normalize(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<PymError>().is_some()
        || response.extensions().get::<Declared>().is_some()
    {
        return response;
    }
    // A rejection's text may quote the request (serde names the value it
    // could not read): cut it.
    let text = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(b) => clip(String::from_utf8_lossy(&b).trim(), 3 * ECHO_MAX),
        Err(_) => String::new(),
    };
    ApiError::of_status(status, text).into_response()
}

impl ApiError {
    /// The error of a bare `status` (one without pym's error JSON), with
    /// `text` as its description (a default for the status when empty):
    /// the code of the status (`404` → `NOT_FOUND`, other 5xx →
    /// `SERVER_ERROR`, other 4xx → `BAD_REQUEST`).
    pub fn of_status(status: StatusCode, text: String) -> Self {
        match status.as_u16() {
            400 | 422 => ApiError::invalid_parameter("body", or(text, "the request is not valid")),
            401 => ApiError::token_invalid(or(text, "not authorised")),
            403 => ApiError::forbidden(or(text, "forbidden")),
            404 => ApiError::not_found(or(text, "no such endpoint")),
            405 => ApiError::method_not_allowed(or(text, "method not allowed on this path")),
            409 => ApiError::new(status, codes::CONFLICT, or(text, "conflict")),
            429 => ApiError::new(
                status,
                codes::TOO_MANY_REQUESTS,
                or(text, "too many requests; retry later"),
            ),
            413 => ApiError::new(
                status,
                codes::PAYLOAD_TOO_LARGE,
                or(text, "the request body is too large"),
            ),
            415 => ApiError::new(
                status,
                codes::UNSUPPORTED_MEDIA_TYPE,
                or(text, "send the body as application/json"),
            ),
            502 => ApiError::bad_gateway(or(text, "bad gateway")),
            503 => ApiError::service_unavailable(or(text, "unavailable")),
            504 => ApiError::gateway_timeout(or(text, "gateway timeout")),
            s if s >= 500 => ApiError::server_error(or(text, "server error")),
            _ => ApiError::new(status, codes::BAD_REQUEST, or(text, "request failed")),
        }
    }
}

fn or(text: String, default: &str) -> String {
    if text.is_empty() {
        default.to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn api_error_shape() {
        let r = ApiError::token_expired().into_response();
        assert_eq!(r.status(), 401);
        let b = axum::body::to_bytes(r.into_body(), 10000).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys.len(),
            5,
            "status,error,error_description,error_id,user_message: {v}"
        );
        assert_eq!(v["status"], 401);
        assert_eq!(v["error"], "TOKEN_EXPIRED");
        assert!(uuid::Uuid::parse_str(v["error_id"].as_str().unwrap()).is_ok());
    }

    #[tokio::test]
    async fn server_error_hides_description() {
        let r = ApiError::server_error("db password is hunter2").into_response();
        let b = axum::body::to_bytes(r.into_body(), 10000).await.unwrap();
        let text = String::from_utf8_lossy(&b);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("SERVER_ERROR"));
    }

    #[test]
    fn clip_cuts_long_text() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("0123456789", 10), "0123456789");
        assert_eq!(clip("0123456789a", 10), "0123456789… (11 bytes)");
        assert_eq!(clip("ééé", 2), "éé… (6 bytes)");
    }

    #[tokio::test]
    async fn normalize_cuts_a_long_rejection() {
        let long = format!("Failed to deserialize: invalid value: {}", "x".repeat(4000));
        let r = normalize((StatusCode::UNPROCESSABLE_ENTITY, long).into_response()).await;
        let b = axum::body::to_bytes(r.into_body(), 100_000).await.unwrap();
        let v: ErrorBody = serde_json::from_slice(&b).unwrap();
        assert!(
            v.error_description.len() < 3 * ECHO_MAX + 40,
            "{}",
            v.error_description
        );
        assert!(
            v.error_description.ends_with("bytes)"),
            "{}",
            v.error_description
        );
    }

    #[tokio::test]
    async fn normalize_bare_404() {
        let r = (StatusCode::NOT_FOUND, "nope").into_response();
        let r = normalize(r).await;
        let b = axum::body::to_bytes(r.into_body(), 10000).await.unwrap();
        let v: ErrorBody = serde_json::from_slice(&b).unwrap();
        assert_eq!(v.error, "NOT_FOUND");
        assert_eq!(v.error_description, "nope");
    }
}
