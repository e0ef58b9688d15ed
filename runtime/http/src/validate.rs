//! Request (and, in debug builds, response) validation against the spec.
//!
//! Every failure is a 400 `INVALID_PARAMETER` whose description starts with
//! the field: the parameter name (`limit: must be an integer`) or the body
//! field as a dotted path (`email: "x" is not a "email"`, `address.city:
//! is a required property`).

use crate::error::{ApiError, codes};
use crate::spec::{Operation, Param, ParamIn, Scalar};
use axum::http::{HeaderMap, StatusCode, header};
use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// The first schema error of `value`, as `(field, message)`.
pub fn first_error(validator: &Validator, value: &Value, root: &str) -> Option<(String, String)> {
    let err = validator.iter_errors(value).next()?;
    let mut path: Vec<String> = err
        .instance_path()
        .as_str()
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let message = match err.kind() {
        ValidationErrorKind::Required { property } => {
            path.push(property.as_str().unwrap_or("").to_string());
            "is required".to_string()
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!("unexpected properties {}", unexpected.join(", "))
        }
        _ => err.to_string(),
    };
    let field = if path.is_empty() {
        root.to_string()
    } else {
        path.join(".")
    };
    Some((field, message))
}

fn coerce(p: &Param, kind: Scalar, raw: &str) -> Result<Value, ApiError> {
    let bad =
        |what: &str| ApiError::invalid_parameter(&p.name, format!("must be {what}, got '{raw}'"));
    Ok(match kind {
        Scalar::String => Value::String(raw.to_string()),
        Scalar::Integer => Value::from(raw.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
        Scalar::Number => {
            let n: f64 = raw.trim().parse().map_err(|_| bad("a number"))?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| bad("a finite number"))?
        }
        Scalar::Boolean => match raw.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
    })
}

fn check(p: &Param, values: &[&str]) -> Result<(), ApiError> {
    if values.is_empty() {
        if p.required {
            let place = match p.location {
                ParamIn::Path => "path",
                ParamIn::Query => "query",
                ParamIn::Header => "header",
                ParamIn::Cookie => "cookie",
            };
            return Err(ApiError::invalid_parameter(
                &p.name,
                format!("the {place} parameter is required"),
            ));
        }
        return Ok(());
    }
    let value = match p.array {
        Some(item) => {
            let mut items = Vec::new();
            for v in values {
                for part in v.split(',') {
                    items.push(coerce(p, item, part)?);
                }
            }
            Value::Array(items)
        }
        None => {
            if values.len() > 1 {
                return Err(ApiError::invalid_parameter(&p.name, "given more than once"));
            }
            coerce(p, p.scalar, values[0])?
        }
    };
    if let Some((field, msg)) = first_error(&p.validator, &value, &p.name) {
        let field = if field == p.name {
            field
        } else {
            format!("{}.{field}", p.name)
        };
        return Err(ApiError::invalid_parameter(&field, msg));
    }
    Ok(())
}

/// Validate path, query and header parameters.
pub fn check_params(
    op: &Operation,
    path_params: &[(String, String)],
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    for p in &op.params {
        let values: Vec<&str> = match p.location {
            ParamIn::Path => path_params
                .iter()
                .filter(|(k, _)| *k == p.name)
                .map(|(_, v)| v.as_str())
                .collect(),
            ParamIn::Query => query
                .iter()
                .filter(|(k, _)| *k == p.name)
                .map(|(_, v)| v.as_str())
                .collect(),
            ParamIn::Header => headers
                .get_all(p.name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect(),
            ParamIn::Cookie => continue,
        };
        check(p, &values)?;
    }
    Ok(())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            ct == "application/json" || ct.ends_with("+json")
        })
        .unwrap_or(false)
}

/// Validate the request body.
pub fn check_body(op: &Operation, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(spec) = &op.body else {
        return Ok(());
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        if spec.required {
            return Err(ApiError::invalid_parameter(
                "body",
                "a JSON body is required",
            ));
        }
        return Ok(());
    }
    let Some(validator) = &spec.json else {
        return Ok(());
    };
    if !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "send the body with 'Content-Type: application/json'",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_parameter("body", format!("not valid JSON: {e}")))?;
    if let Some((field, msg)) = first_error(validator, &value, "body") {
        return Err(ApiError::invalid_parameter(&field, msg));
    }
    Ok(())
}

/// Validate a handler's JSON response; `Err` describes the mismatch.
pub fn check_response(
    op: &Operation,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let Some(validator) = op.response_schema(status.as_u16()) else {
        return Ok(());
    };
    if !is_json(headers) {
        return Err(format!(
            "operation {} returned {} without a JSON content type; the spec declares a JSON schema",
            op.id,
            status.as_u16()
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("operation {} returned invalid JSON: {e}", op.id))?;
    match first_error(validator, &value, "response") {
        None => Ok(()),
        Some((field, msg)) => Err(format!(
            "operation {} returned a {} that does not match the spec: {field}: {msg}",
            op.id,
            status.as_u16()
        )),
    }
}
