//! Parameters of a call as text: path segments (percent-encoded), query
//! pairs (arrays repeat the name: OpenAPI's default `form` + `explode`)
//! and header values (arrays joined by commas: `simple`). Pure.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use pym_http::ApiError;
use serde::Serialize;
use serde_json::Value;

/// What a path segment keeps as is: RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'@')
    .add(b':')
    .add(b';')
    .add(b'=')
    .add(b'&')
    .add(b'+')
    .add(b'$')
    .add(b',')
    .add(b'!')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*');

/// The texts of a parameter's value: one for a scalar, one per item for an
/// array, none for null. Objects have no agreed text form here.
pub fn texts<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<Vec<String>, ApiError> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
        _ => Err(ApiError::invalid_parameter(
            name,
            "only strings, numbers, booleans and arrays of them can be sent as a parameter",
        )),
    };
    let v = serde_json::to_value(value)
        .map_err(|e| ApiError::invalid_parameter(name, format!("cannot be written: {e}")))?;
    match &v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

/// `template` (`/pets/{pet_id}`) with each `{name}` replaced by its value,
/// percent-encoded as one segment (arrays joined by commas).
pub fn path(template: &str, values: &[(&str, Vec<String>)]) -> Result<String, ApiError> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| ApiError::bad_request(format!("path template {template}: no '}}'")))?;
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let (_, v) = values
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ApiError::invalid_parameter(name, "a path parameter needs a value"))?;
        if v.is_empty() || v.iter().any(String::is_empty) {
            return Err(ApiError::invalid_parameter(
                name,
                "a path parameter cannot be empty",
            ));
        }
        out.extend(utf8_percent_encode(&v.join(","), SEGMENT));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_text() {
        let cases: [(Value, Vec<&str>); 6] = [
            (serde_json::json!("a b"), vec!["a b"]),
            (serde_json::json!(7), vec!["7"]),
            (serde_json::json!(1.5), vec!["1.5"]),
            (serde_json::json!(true), vec!["true"]),
            (serde_json::json!(null), vec![]),
            (serde_json::json!(["x", 2]), vec!["x", "2"]),
        ];
        for (v, want) in cases {
            assert_eq!(texts("p", &v).unwrap(), want, "{v}");
        }
        let err = texts("filter", &serde_json::json!({"a": 1})).unwrap_err();
        assert!(
            err.description.starts_with("filter: only strings"),
            "{err:?}"
        );
        assert_eq!(texts("p", &Some(3)).unwrap(), ["3"]);
    }

    #[test]
    fn paths_filled_and_encoded() {
        let v = |s: &str| vec![s.to_string()];
        let cases = [
            ("/pets/{id}", vec![("id", v("42"))], Ok("/pets/42")),
            (
                "/pets/{id}",
                vec![("id", v("a/b c?"))],
                Ok("/pets/a%2Fb%20c%3F"),
            ),
            (
                "/u/{u}/pets/{id}/x",
                vec![("id", v("é")), ("u", v("~x_y-z."))],
                Ok("/u/~x_y-z./pets/%C3%A9/x"),
            ),
            (
                "/l/{ids}",
                vec![("ids", vec!["1".into(), "2".into()])],
                Ok("/l/1%2C2"),
            ),
            (
                "/pets/{id}",
                vec![],
                Err("id: a path parameter needs a value"),
            ),
            (
                "/pets/{id}",
                vec![("id", v(""))],
                Err("id: a path parameter cannot be empty"),
            ),
        ];
        for (template, values, want) in cases {
            let got = path(template, &values).map_err(|e| e.description);
            assert_eq!(
                got.as_deref(),
                want.map_err(String::from).as_deref(),
                "{template}"
            );
        }
    }
}
