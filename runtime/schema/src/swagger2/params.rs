//! Parameters. A 2.0 query/path/header parameter carries its type inline
//! (3.0: in `schema`) and a `collectionFormat` (3.0: `style`/`explode`);
//! `in: body` and `in: formData` parameters become the `requestBody`.

use super::{Ctx, schema};
use serde_json::{Map, Value, json};

/// Keys of a 2.0 parameter, items or header object that belong to its schema.
pub(super) const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "items",
    "enum",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "x-nullable",
];

/// Whether the (resolved) parameter is a body or form parameter.
pub(super) fn is_body_or_form(p: &Value) -> bool {
    matches!(
        p.get("in").and_then(Value::as_str),
        Some("body" | "formData")
    )
}

fn location(p: &Value) -> &str {
    p.get("in").and_then(Value::as_str).unwrap_or("")
}

/// A parameter with its `$ref` (to the document's `parameters`) followed.
pub(super) fn resolve<'a>(cx: &Ctx<'a>, p: &'a Value) -> &'a Value {
    let target = p
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/parameters/"))
        .and_then(|name| cx.doc.get("parameters")?.get(name));
    target.unwrap_or(p)
}

/// The `style`/`explode` of an array parameter in `location` with the 2.0
/// `collectionFormat` `format`, when they differ from 3.0's defaults for
/// that location; `Err` when 3.0 has no equivalent.
pub(super) fn style(
    location: &str,
    format: Option<&str>,
) -> Result<Option<(&'static str, bool)>, String> {
    let query = matches!(location, "query" | "formData");
    match (format.unwrap_or("csv"), query) {
        ("csv", true) => Ok(Some(("form", false))),
        ("csv", false) | ("multi", true) => Ok(None),
        ("ssv", true) => Ok(Some(("spaceDelimited", false))),
        ("pipes", true) => Ok(Some(("pipeDelimited", false))),
        ("multi" | "ssv" | "pipes", false) => Err(format!(
            "collectionFormat {} is for query parameters only; use csv",
            format.unwrap_or_default()
        )),
        ("tsv", _) => Err(
            "collectionFormat tsv (tab-separated) has no OpenAPI 3 style; \
                           use csv (style: form, explode: false) and change the callers"
                .into(),
        ),
        (other, _) => Err(format!(
            "collectionFormat {other} is not one of csv, ssv, tsv, pipes, multi"
        )),
    }
}

/// The schema part of a parameter or items object (recursively for items).
fn schema_of(cx: &mut Ctx<'_>, p: &Value, at: &str) -> Value {
    let mut s = Map::new();
    for k in SCHEMA_KEYS {
        if let Some(v) = p.get(*k) {
            let v = match *k {
                "items" => items(cx, v, &format!("{at}.items")),
                _ => v.clone(),
            };
            s.insert((*k).to_string(), v);
        }
    }
    schema::convert(&Value::Object(s))
}

/// A 2.0 items object as a schema; a nested `collectionFormat` is noted.
fn items(cx: &mut Ctx<'_>, v: &Value, at: &str) -> Value {
    if v.get("$ref").is_some() {
        return v.clone();
    }
    if let Some(f) = v.get("collectionFormat").and_then(Value::as_str) {
        cx.note(
            at,
            format!("collectionFormat {f} of nested items has no OpenAPI 3 equivalent; dropped"),
        );
    }
    schema_of(cx, v, at)
}

/// A query/path/header parameter as 3.0 (a `$ref` is kept, rewritten later).
pub(super) fn parameter(cx: &mut Ctx<'_>, p: &Value, at: &str) -> Value {
    if p.get("$ref").is_some() {
        return p.clone();
    }
    let mut out = Map::new();
    for (k, v) in p.as_object().into_iter().flatten() {
        let keep = matches!(
            k.as_str(),
            "name" | "in" | "description" | "required" | "allowEmptyValue"
        ) || k.starts_with("x-") && k != "x-nullable";
        if keep {
            out.insert(k.clone(), v.clone());
        }
    }
    let loc = location(p).to_string();
    if loc == "path" {
        out.insert("required".into(), json!(true));
    }
    let schema = schema_of(cx, p, at);
    if schema.get("type").and_then(Value::as_str) == Some("array") {
        match style(&loc, p.get("collectionFormat").and_then(Value::as_str)) {
            Ok(Some((style, explode))) => {
                out.insert("style".into(), json!(style));
                out.insert("explode".into(), json!(explode));
            }
            Ok(None) => {}
            Err(e) => cx.note(at, e),
        }
    }
    out.insert("schema".into(), schema);
    Value::Object(out)
}

/// `in: body` → a `requestBody` with the schema under each media type.
pub(super) fn body(cx: &mut Ctx<'_>, p: &Value, consumes: &[String], at: &str) -> Value {
    let schema = match p.get("schema") {
        Some(s) => schema::convert(s),
        None => {
            cx.note(
                at,
                "a body parameter without a schema; any JSON is accepted (add a schema)",
            );
            json!({})
        }
    };
    let content: Map<String, Value> = consumes
        .iter()
        .map(|m| (m.clone(), json!({ "schema": schema })))
        .collect();
    let mut out = Map::new();
    if let Some(d) = p.get("description") {
        out.insert("description".into(), d.clone());
    }
    out.insert(
        "required".into(),
        json!(p.get("required").and_then(Value::as_bool).unwrap_or(false)),
    );
    out.insert("content".into(), Value::Object(content));
    extensions(p, &mut out);
    Value::Object(out)
}

/// `in: formData` parameters → one `requestBody` holding an object schema,
/// multipart when a parameter is a file or `consumes` says so.
pub(super) fn form(cx: &mut Ctx<'_>, ps: &[(&Value, String)], consumes: &[String]) -> Value {
    let multipart = consumes.iter().any(|m| m == "multipart/form-data")
        || ps
            .iter()
            .any(|(p, _)| p.get("type").and_then(Value::as_str) == Some("file"));
    let media = if multipart {
        "multipart/form-data"
    } else {
        "application/x-www-form-urlencoded"
    };
    let (mut props, mut required, mut encoding) = (Map::new(), Vec::new(), Map::new());
    for (p, at) in ps {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut s = schema_of(cx, p, at);
        if let (Some(d), Value::Object(m)) = (p.get("description"), &mut s) {
            m.insert("description".into(), d.clone());
        }
        if s.get("type").and_then(Value::as_str) == Some("array") {
            match style(
                "formData",
                p.get("collectionFormat").and_then(Value::as_str),
            ) {
                Ok(Some((style, explode))) => {
                    encoding.insert(name.clone(), json!({"style": style, "explode": explode}));
                }
                Ok(None) => {}
                Err(e) => cx.note(at.as_str(), e),
            }
        }
        if p.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(json!(name));
        }
        props.insert(name, s);
    }
    let mut schema = json!({ "type": "object", "properties": props });
    if !required.is_empty() {
        schema["required"] = Value::Array(required.clone());
    }
    let mut media_type = json!({ "schema": schema });
    if !encoding.is_empty() {
        media_type["encoding"] = Value::Object(encoding);
    }
    json!({ "required": !required.is_empty(), "content": { media: media_type } })
}

/// Copy the `x-` extensions of `from` into `to`.
pub(super) fn extensions(from: &Value, to: &mut Map<String, Value>) {
    for (k, v) in from.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            to.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_formats() {
        let rows = [
            ("query", None, Ok(Some(("form", false)))),
            ("query", Some("csv"), Ok(Some(("form", false)))),
            ("query", Some("multi"), Ok(None)),
            ("query", Some("ssv"), Ok(Some(("spaceDelimited", false)))),
            ("query", Some("pipes"), Ok(Some(("pipeDelimited", false)))),
            ("formData", Some("multi"), Ok(None)),
            ("path", None, Ok(None)),
            ("header", Some("csv"), Ok(None)),
        ];
        for (loc, f, want) in rows {
            assert_eq!(style(loc, f), want, "{loc} {f:?}");
        }
        for (loc, f, says) in [
            ("query", "tsv", "tab-separated"),
            ("path", "multi", "query parameters only"),
            ("header", "pipes", "query parameters only"),
            ("query", "bars", "not one of"),
        ] {
            let e = style(loc, Some(f)).expect_err(f);
            assert!(e.contains(says), "{loc} {f}: {e}");
        }
    }
}
