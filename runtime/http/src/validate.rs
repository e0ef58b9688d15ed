//! Request (and, in debug builds, response) validation against the spec.
//!
//! Every failure is a 400 `INVALID_PARAMETER` whose description starts with
//! the field: the parameter name (`limit: must be an integer`) or the body
//! field as a dotted path (`email: "x" is not a "email"`, `address.city:
//! is required`), then the rule that failed.
//!
//! Messages are built here from the error's kind, never from the input as a
//! whole: a string or number the client sent is echoed cut to [`ECHO_MAX`]
//! characters (`"aaaa…" (2097152 bytes)`), an object or array only by its
//! size, and the value of a secret field (`format: password` or
//! `writeOnly: true` on the way to the failing rule) as `<hidden>`. The same
//! text is what is logged.

use crate::error::{ApiError, ECHO_MAX, clip, codes};
use crate::spec::{Operation, Param, ParamIn, Scalar, Schema};
use axum::http::{HeaderMap, StatusCode, header};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

/// What a secret value is shown as.
pub const HIDDEN: &str = "<hidden>";

/// The first schema error of `value`, as `(field, message)`; `root` names
/// the value itself (`body`, a parameter name).
pub fn first_error(schema: &Schema, value: &Value, root: &str) -> Option<(String, String)> {
    let err = schema.iter_errors(value).next()?;
    let mut path: Vec<String> = err
        .instance_path()
        .as_str()
        .split('/')
        .skip(1)
        .map(|s| clip(&unescape(s), ECHO_MAX))
        .collect();
    if let ValidationErrorKind::Required { property } = err.kind() {
        path.push(clip(property.as_str().unwrap_or(""), ECHO_MAX));
    }
    let hidden = is_secret(schema, err.evaluation_path().as_str());
    let message = describe(err.kind(), &shown(err.instance(), hidden));
    let field = if path.is_empty() {
        root.to_string()
    } else {
        clip(&path.join("."), 3 * ECHO_MAX)
    };
    Some((field, message))
}

/// A JSON pointer segment, unescaped.
fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Whether a schema on the way to the failing rule (`evaluation_path`,
/// `$ref`s included) marks the value secret. A path that cannot be
/// followed counts as secret.
fn is_secret(schema: &Schema, evaluation_path: &str) -> bool {
    let Some(mut node) = schema.pointer("") else {
        return true;
    };
    if marks_secret(schema, node, 0) {
        return true;
    }
    for segment in evaluation_path.split('/').skip(1) {
        let segment = unescape(segment);
        let next = match node {
            Value::Object(m) if segment == "$ref" || segment == "$dynamicRef" => m
                .get(&segment)
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|p| schema.pointer(p)),
            Value::Object(m) => m.get(&segment),
            Value::Array(a) => segment.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            return true;
        };
        if marks_secret(schema, next, 0) {
            return true;
        }
        node = next;
    }
    false
}

/// `format: password` or `writeOnly: true` on `node`, or on what its
/// `$ref` points to.
fn marks_secret(schema: &Schema, node: &Value, depth: u8) -> bool {
    if node.get("writeOnly") == Some(&Value::Bool(true))
        || node.get("format").and_then(Value::as_str) == Some("password")
    {
        return true;
    }
    depth < 16
        && node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| schema.pointer(p))
            .is_some_and(|t| marks_secret(schema, t, depth + 1))
}

/// How a value the client sent appears in an error: a string quoted and
/// cut to [`ECHO_MAX`] characters (`"aaaa…" (2097152 bytes)`), another
/// scalar as JSON, an object or array by its size only (it may hold a
/// secret), and a secret as `<hidden>`.
pub fn shown(value: &Value, hidden: bool) -> String {
    if hidden {
        return HIDDEN.to_string();
    }
    match value {
        Value::Array(a) => format!(
            "an array of {} item{}",
            a.len(),
            plural(a.len() as u64, "s")
        ),
        Value::Object(o) => format!(
            "an object with {} propert{}",
            o.len(),
            if o.len() == 1 { "y" } else { "ies" }
        ),
        Value::String(s) => match s.char_indices().nth(ECHO_MAX) {
            None => Value::String(s.clone()).to_string(),
            Some((cut, _)) => {
                let head = Value::String(s[..cut].to_string()).to_string();
                format!("{}…\" ({} bytes)", &head[..head.len() - 1], s.len())
            }
        },
        other => clip(&other.to_string(), ECHO_MAX),
    }
}

fn plural(n: u64, suffix: &'static str) -> &'static str {
    if n == 1 { "" } else { suffix }
}

/// The rule that failed, about `v` (the value as [`shown`]).
fn describe(kind: &ValidationErrorKind, v: &str) -> String {
    use ValidationErrorKind as K;
    match kind {
        K::Required { .. } => "is required".to_string(),
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            format!("unexpected properties {}", names(unexpected))
        }
        K::Type { kind } => match kind {
            TypeKind::Single(t) => format!("{v} is not of type \"{t}\""),
            TypeKind::Multiple(ts) => {
                let ts: Vec<String> = ts.iter().map(|t| format!("\"{t}\"")).collect();
                format!("{v} is not of types {}", ts.join(", "))
            }
        },
        K::Format { format } => format!("{v} is not a \"{format}\""),
        K::Pattern { pattern } => format!("{v} does not match \"{}\"", clip(pattern, ECHO_MAX)),
        K::Enum { options } => format!("{v} is not one of {}", one_of(options)),
        K::Constant { expected_value } => {
            format!("{v} is not {}", clip(&expected_value.to_string(), ECHO_MAX))
        }
        K::AnyOf { .. } | K::OneOfNotValid { .. } => {
            format!(
                "{v} matches none of the allowed schemas ('{}')",
                kind.keyword()
            )
        }
        K::OneOfMultipleValid { .. } => {
            format!("{v} matches more than one of the 'oneOf' schemas")
        }
        K::Not { .. } => format!("{v} matches a schema it must not match ('not')"),
        K::FalseSchema => format!("{v} is not allowed here"),
        K::Contains => format!("{v} has no item matching 'contains'"),
        K::UniqueItems => format!("{v} has non-unique items"),
        K::AdditionalItems { limit } => format!("{v} has more than {limit} items"),
        K::UnevaluatedItems { unexpected } => format!(
            "{v} has {} unexpected item{}",
            unexpected.len(),
            plural(unexpected.len() as u64, "s")
        ),
        K::PropertyNames { error } => format!(
            "property name {}",
            describe(error.kind(), &shown(error.instance(), false))
        ),
        K::ContentEncoding {
            content_encoding: e,
        } => format!("{v} is not valid {e}"),
        K::ContentMediaType {
            content_media_type: m,
        } => format!("{v} is not valid {m}"),
        K::FromUtf8 { .. } => format!("{v} does not decode to UTF-8 text"),
        K::BacktrackLimitExceeded { .. } | K::RegexEngineFailure { .. } => {
            format!("{v} could not be checked against its pattern")
        }
        K::Referencing(e) => format!("cannot be checked: {}", clip(&e.to_string(), ECHO_MAX)),
        K::Custom { message, .. } => clip(message, ECHO_MAX),
        _ => bound(kind, v),
    }
}

/// The message of a numeric, length or size bound.
fn bound(kind: &ValidationErrorKind, v: &str) -> String {
    use ValidationErrorKind as K;
    match kind {
        K::Minimum { limit } => format!("{v} is less than the minimum of {limit}"),
        K::Maximum { limit } => format!("{v} is greater than the maximum of {limit}"),
        K::ExclusiveMinimum { limit } => {
            format!("{v} is less than or equal to the minimum of {limit}")
        }
        K::ExclusiveMaximum { limit } => {
            format!("{v} is greater than or equal to the maximum of {limit}")
        }
        K::MultipleOf { multiple_of } => format!("{v} is not a multiple of {multiple_of}"),
        K::MinLength { limit } => {
            format!(
                "{v} is shorter than {limit} character{}",
                plural(*limit, "s")
            )
        }
        K::MaxLength { limit } => {
            format!(
                "{v} is longer than {limit} character{}",
                plural(*limit, "s")
            )
        }
        K::MinItems { limit } => format!("{v} has fewer than {limit} item{}", plural(*limit, "s")),
        K::MaxItems { limit } => format!("{v} has more than {limit} item{}", plural(*limit, "s")),
        K::MinProperties { limit } => format!(
            "{v} has fewer than {limit} propert{}",
            if *limit == 1 { "y" } else { "ies" }
        ),
        K::MaxProperties { limit } => format!(
            "{v} has more than {limit} propert{}",
            if *limit == 1 { "y" } else { "ies" }
        ),
        other => format!("{v} breaks the '{}' rule", other.keyword()),
    }
}

/// Property names the client sent: at most 10, each cut.
fn names(names: &[String]) -> String {
    let mut out: Vec<String> = names.iter().take(10).map(|n| clip(n, ECHO_MAX)).collect();
    if names.len() > 10 {
        out.push(format!("and {} more", names.len() - 10));
    }
    out.join(", ")
}

/// An `enum`'s values (from the spec): at most 5, each cut.
fn one_of(options: &Value) -> String {
    let all = options.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out: Vec<String> = all
        .iter()
        .take(5)
        .map(|o| clip(&o.to_string(), ECHO_MAX))
        .collect();
    if all.len() > 5 {
        out.push(format!("… ({} values)", all.len()));
    }
    format!("[{}]", out.join(", "))
}

fn coerce(p: &Param, kind: Scalar, raw: &str) -> Result<Value, ApiError> {
    let bad = |what: &str| {
        let got = shown(&Value::String(raw.to_string()), is_secret(&p.validator, ""));
        ApiError::invalid_parameter(&p.name, format!("must be {what}, got {got}"))
    };
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

/// The parameter's value, converted to its schema's type and validated;
/// `None` when it is absent (and optional).
fn check(p: &Param, values: &[&str]) -> Result<Option<Value>, ApiError> {
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
        return Ok(None);
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
    Ok(Some(value))
}

/// Validate path, query and header parameters; the values of those sent,
/// by name, converted to their schema's types (what typed handlers read).
pub fn check_params(
    op: &Operation,
    path_params: &[(String, String)],
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Vec<(String, Value)>, ApiError> {
    let mut out = Vec::new();
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
        if let Some(v) = check(p, &values)? {
            out.push((p.name.clone(), v));
        }
    }
    Ok(out)
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

/// Validate the request body; the JSON value, parsed once, when the spec
/// gives it a JSON schema and one was sent (what typed handlers read).
pub fn check_body(
    op: &Operation,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<Value>, ApiError> {
    let Some(spec) = &op.body else {
        return Ok(None);
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        if spec.required {
            return Err(ApiError::invalid_parameter(
                "body",
                "a JSON body is required",
            ));
        }
        return Ok(None);
    }
    let Some(validator) = &spec.json else {
        return Ok(None);
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
    Ok(Some(value))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;
    use serde_json::json;

    /// A spec (OpenAPI `version`) whose one operation `t` takes a body of
    /// `schema` and a query parameter `pin` (integer, writeOnly).
    fn spec(version: &str, components: &Value, schema: &Value) -> Spec {
        let doc = json!({
            "openapi": version,
            "info": {"title": "t", "version": "1"},
            "components": {"schemas": components},
            "paths": {"/t": {"post": {
                "operationId": "t",
                "parameters": [{"name": "pin", "in": "query",
                                "schema": {"type": "integer", "writeOnly": true}}],
                "requestBody": {"content": {"application/json": {"schema": schema}}},
                "responses": {"200": {"description": "ok"}}
            }}}
        });
        Spec::parse("t.json", &doc.to_string()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `(field, message)` of the first error of `instance` against `schema`.
    fn error_of(
        version: &str,
        components: &Value,
        schema: &Value,
        instance: &Value,
    ) -> (String, String) {
        let spec = spec(version, components, schema);
        let body = spec.operations[0]
            .body
            .as_ref()
            .unwrap()
            .json
            .as_ref()
            .unwrap();
        first_error(body, instance, "body").expect("an error")
    }

    fn obj(prop: &str, schema: Value) -> Value {
        json!({"type": "object", "properties": {prop: schema}})
    }

    /// `(case, schema, instance, field, message)`; no message may contain
    /// `hunter2`.
    type Case = (&'static str, Value, Value, &'static str, &'static str);

    fn check(cases: Vec<Case>) {
        let comps = json!({
            "Password": {"type": "string", "format": "password", "minLength": 12},
            "Login": {"properties": {"password": {"$ref": "#/components/schemas/Password"}}}
        });
        for (name, schema, instance, field, message) in cases {
            let (f, m) = error_of("3.1.0", &comps, &schema, &instance);
            assert_eq!((f.as_str(), m.as_str()), (field, message), "{name}");
            assert!(!m.contains("hunter2"), "{name}: {m}");
        }
    }

    #[test]
    fn large_values_are_cut_and_containers_never_echoed() {
        let (f, m) = error_of(
            "3.1.0",
            &json!({}),
            &obj("name", json!({"type": "string", "maxLength": 5})),
            &json!({"name": "a".repeat(5000)}),
        );
        let cut = format!("\"{}…\" (5000 bytes)", "a".repeat(100));
        assert_eq!(
            (f.as_str(), m),
            ("name", format!("{cut} is longer than 5 characters"))
        );
        let schema = json!({"additionalProperties": {"type": "integer"}});
        let (f, m) = error_of(
            "3.1.0",
            &json!({}),
            &schema,
            &json!({"k".repeat(1000): "x"}),
        );
        assert_eq!(f, format!("{}… (1000 bytes)", "k".repeat(100)), "long key");
        assert_eq!(m, "\"x\" is not of type \"integer\"");
        let many_keys: serde_json::Map<String, Value> =
            (0..10_000).map(|i| (format!("k{i}"), json!(i))).collect();
        check(vec![
            (
                "huge array of the wrong type",
                json!({"type": "object"}),
                Value::Array(vec![json!(12345); 500_000]),
                "body",
                "an array of 500000 items is not of type \"object\"",
            ),
            (
                "huge object of the wrong type",
                json!({"type": "array"}),
                Value::Object(many_keys),
                "body",
                "an object with 10000 properties is not of type \"array\"",
            ),
            (
                "an object holding a secret",
                json!({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}),
                json!({"password": "hunter2", "x": 1}),
                "body",
                "an object with 2 properties matches none of the allowed schemas ('oneOf')",
            ),
        ]);
    }

    #[test]
    fn secrets_are_hidden() {
        check(vec![
            (
                "password minLength",
                obj(
                    "password",
                    json!({"type": "string", "format": "password", "minLength": 12}),
                ),
                json!({"password": "hunter2"}),
                "password",
                "<hidden> is shorter than 12 characters",
            ),
            (
                "password through $ref",
                json!({"$ref": "#/components/schemas/Login"}),
                json!({"password": "hunter2"}),
                "password",
                "<hidden> is shorter than 12 characters",
            ),
            (
                "writeOnly field",
                obj(
                    "pin",
                    json!({"type": "string", "writeOnly": true, "pattern": "^[0-9]{4}$"}),
                ),
                json!({"pin": "hunter2"}),
                "pin",
                "<hidden> does not match \"^[0-9]{4}$\"",
            ),
            (
                "inside a writeOnly object",
                obj(
                    "creds",
                    json!({"type": "object", "writeOnly": true,
                 "properties": {"token": {"type": "string", "maxLength": 3}}}),
                ),
                json!({"creds": {"token": "hunter2"}}),
                "creds.token",
                "<hidden> is longer than 3 characters",
            ),
        ]);
    }

    #[test]
    fn fields_are_named_by_their_path() {
        let city =
            json!({"type": "object", "properties": {"city": {"type": "string", "minLength": 2}}});
        check(vec![
            (
                "nested path",
                obj("addresses", json!({"type": "array", "items": city})),
                json!({"addresses": [{"city": "Paris"}, {"city": "x"}]}),
                "addresses.1.city",
                "\"x\" is shorter than 2 characters",
            ),
            (
                "required, nested",
                obj("address", json!({"type": "object", "required": ["city"]})),
                json!({"address": {}}),
                "address.city",
                "is required",
            ),
            (
                "format",
                obj("email", json!({"type": "string", "format": "email"})),
                json!({"email": "x"}),
                "email",
                "\"x\" is not a \"email\"",
            ),
            (
                "enum",
                obj("c", json!({"enum": ["a", "b"]})),
                json!({"c": "z"}),
                "c",
                "\"z\" is not one of [\"a\", \"b\"]",
            ),
        ]);
    }

    #[test]
    fn openapi_30_secrets_are_hidden_too() {
        let schema = obj(
            "password",
            json!({"type": "string", "format": "password",
            "nullable": true, "minLength": 12}),
        );
        let (f, m) = error_of(
            "3.0.3",
            &json!({}),
            &schema,
            &json!({"password": "hunter2"}),
        );
        assert_eq!(
            (f.as_str(), m.as_str()),
            ("password", "<hidden> is shorter than 12 characters")
        );
    }

    #[test]
    fn unexpected_property_names_are_capped() {
        let schema =
            json!({"type": "object", "properties": {"a": {}}, "additionalProperties": false});
        let instance: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("p{i:02}"), json!(1))).collect();
        let (f, m) = error_of("3.1.0", &json!({}), &schema, &Value::Object(instance));
        assert_eq!(f, "body");
        assert!(m.starts_with("unexpected properties p00, p01,"), "{m}");
        assert!(m.ends_with("p09, and 40 more"), "{m}");
    }

    #[test]
    fn secret_parameter_values_are_hidden() {
        let spec = spec("3.1.0", &json!({}), &json!({}));
        let op = &spec.operations[0];
        let q = [("pin".to_string(), "hunter2".to_string())];
        let e = check_params(op, &[], &q, &HeaderMap::new()).unwrap_err();
        assert_eq!(e.description, "pin: must be an integer, got <hidden>");
    }

    #[test]
    fn shown_values() {
        assert_eq!(shown(&json!("ab\"c"), false), r#""ab\"c""#);
        assert_eq!(shown(&json!(12.5), false), "12.5");
        assert_eq!(shown(&json!(null), false), "null");
        assert_eq!(shown(&json!([1]), false), "an array of 1 item");
        assert_eq!(shown(&json!({"a": 1}), false), "an object with 1 property");
        assert_eq!(shown(&json!("x"), true), HIDDEN);
        let s = shown(&json!("é".repeat(101)), false);
        assert_eq!(s, format!("\"{}…\" (202 bytes)", "é".repeat(100)));
    }
}
