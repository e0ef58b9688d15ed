//! What a called service answered, read back: a body of the type its spec
//! declares, or the [`ApiError`] it stands for. Pure.

use bytes::Bytes;
use pym_http::error::{ECHO_MAX, clip};
use pym_http::{ApiError, ErrorBody};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

/// One answer: its status and body, and the call it answers (`greeter:
/// POST /greetings`, for messages).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub call: String,
}

impl Answer {
    /// The body as a `T`: the type the spec declares for this status. A
    /// body of another shape is a 502 `BAD_GATEWAY` naming the call.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_gateway(format!(
                "{} answered {} with a body its spec does not allow: {e}",
                self.call,
                self.status.as_u16()
            ))
        })
    }

    /// The error of an answer that is not a success and carries pym's
    /// standard error JSON (with its status); `None` for any other.
    pub fn pym_error(&self) -> Option<ApiError> {
        if self.status.is_success() {
            return None;
        }
        let e = serde_json::from_slice::<ErrorBody>(&self.body).ok()?;
        (e.status == self.status.as_u16()).then(|| ApiError::from_body(self.status, e))
    }

    /// The error this answer stands for, see [`error_of`].
    pub fn error(&self) -> ApiError {
        error_of(&self.call, self.status, &self.body)
    }

    /// A 502 for a status the spec of the call does not declare.
    pub fn undeclared(&self) -> ApiError {
        ApiError::bad_gateway(format!(
            "{} answered {}, a status its spec does not declare",
            self.call,
            self.status.as_u16()
        ))
    }
}

/// The error a `status` answer with `body` stands for: pym's standard
/// error JSON as it was sent (status, code, description, user message and
/// `error_id` kept); any other body gives the status's code and a
/// description quoting the start of the body.
pub fn error_of(call: &str, status: StatusCode, body: &[u8]) -> ApiError {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body)
        && e.status == status.as_u16()
        && !status.is_success()
    {
        return ApiError::from_body(status, e);
    }
    let text = String::from_utf8_lossy(body);
    let text = clip(text.trim(), ECHO_MAX);
    let description = if text.is_empty() {
        format!("{call} answered {}", status.as_u16())
    } else {
        format!("{call} answered {}: {text}", status.as_u16())
    };
    ApiError::of_status(status, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: &str = "greeter: POST /greetings";

    #[test]
    fn errors_read_back() {
        let pym = br#"{"status":404,"error":"NO_SUCH_USER","error_description":"no user 7","error_id":"e-1","user_message":"Not found."}"#;
        let got = error_of(CALL, StatusCode::NOT_FOUND, pym);
        assert_eq!(
            (
                got.status.as_u16(),
                got.code.as_str(),
                got.description.as_str()
            ),
            (404, "NO_SUCH_USER", "no user 7")
        );
        assert_eq!(got.error_id.as_deref(), Some("e-1"));
        assert_eq!(got.user_message.as_deref(), Some("Not found."));

        let cases: [(u16, &[u8], &str, &str); 4] = [
            (
                418,
                b"I'm a teapot",
                "BAD_REQUEST",
                "greeter: POST /greetings answered 418: I'm a teapot",
            ),
            (
                502,
                b"",
                "BAD_GATEWAY",
                "greeter: POST /greetings answered 502",
            ),
            (
                503,
                b"<html>down</html>",
                "SERVICE_UNAVAILABLE",
                "greeter: POST /greetings answered 503: <html>down</html>",
            ),
            (
                // pym's JSON with another status than the answer's: not trusted
                500,
                br#"{"status":404,"error":"X","error_description":"d","error_id":"i","user_message":"m"}"#,
                "SERVER_ERROR",
                r#"greeter: POST /greetings answered 500: {"status":404,"error":"X","error_description":"d","error_id":"i","user_message":"m"}"#,
            ),
        ];
        for (status, body, code, description) in cases {
            let got = error_of(CALL, StatusCode::from_u16(status).unwrap(), body);
            assert_eq!(got.status.as_u16(), status);
            assert_eq!(
                (got.code.as_str(), got.description.as_str()),
                (code, description)
            );
            assert_eq!(got.error_id, None);
        }
    }

    #[test]
    fn a_body_of_another_shape_is_a_bad_gateway() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Greeting {
            text: String,
        }
        let answer = |body: &'static [u8]| Answer {
            status: StatusCode::CREATED,
            body: Bytes::from_static(body),
            call: CALL.into(),
        };
        assert_eq!(
            answer(br#"{"text":"hi"}"#).json::<Greeting>().unwrap().text,
            "hi"
        );
        let err = answer(br#"{"txt":"hi"}"#).json::<Greeting>().unwrap_err();
        assert_eq!(err.code, "BAD_GATEWAY");
        assert!(
            err.description
                .starts_with("greeter: POST /greetings answered 201 with a body its spec does not allow: missing field `text`"),
            "{}",
            err.description
        );
    }
}
