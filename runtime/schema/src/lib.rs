//! # pym-schema
//!
//! The OpenAPI schema dialect pym works in, shared by the run-time
//! validation (pym-http) and the code generator (pym-codegen), so both
//! read a document the same way:
//!
//! - [`read_doc`]: a document (YAML or JSON) and its [`Dialect`], 3.0.x or
//!   3.1.x; a Swagger 2.0 document is upgraded to 3.0 ([`swagger2`]) and
//!   refused only when the upgrade would change its meaning; other
//!   versions are refused with a message.
//! - [`convert_30`]: a 3.0 schema as JSON Schema 2020-12 (3.1's dialect):
//!   `nullable: true` becomes a `"null"` type, boolean
//!   `exclusiveMinimum`/`exclusiveMaximum` numeric ones.
//! - [`apply_view`]: `readOnly` properties not required in requests,
//!   `writeOnly` ones not in responses.
//! - [`security`]: what an operation's `security` asks of the caller
//!   ([`AuthMode`]).

pub mod security;
pub mod swagger2;

pub use security::{AuthMode, auth_mode, operation_auth};
use serde_json::{Map, Value};

/// The schema dialect of a document: OpenAPI 3.0's, or 3.1's (JSON Schema 2020-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V30,
    V31,
}

/// The document as JSON and its dialect, or what is wrong with it.
pub fn read_doc(text: &str) -> Result<(Value, Dialect), String> {
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        yaml_serde::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?
    };
    if let Some(v) = doc.get("swagger") {
        if !swagger2::is_swagger2(&doc) {
            return Err(format!(
                "'swagger: {v}': expected \"2.0\" (upgraded to OpenAPI 3.0 on load) or an \
                 OpenAPI 3.0.x or 3.1.x document"
            ));
        }
        return upgrade_on_load(&doc).map(|d| (d, Dialect::V30));
    }
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    let dialect = if version.starts_with("3.0") {
        Dialect::V30
    } else if version.starts_with("3.1") {
        Dialect::V31
    } else {
        return Err(format!(
            "'openapi: {version}': expected an OpenAPI 3.0.x or 3.1.x document"
        ));
    };
    Ok((doc, dialect))
}

/// A Swagger 2.0 document as OpenAPI 3.0, or why it cannot be loaded as it
/// is: loading never changes a document's meaning silently, so anything
/// [`swagger2::upgrade`] notes refuses it.
fn upgrade_on_load(doc: &Value) -> Result<Value, String> {
    let (document, notes) = match swagger2::upgrade(doc) {
        Ok(up) => (up.document, up.notes),
        Err(notes) => (Value::Null, notes),
    };
    if notes.is_empty() {
        return Ok(document);
    }
    let lines: Vec<String> = notes.iter().map(|n| format!("  - {n}")).collect();
    Err(format!(
        "Swagger 2.0 document that does not convert exactly to OpenAPI 3:\n{}\n\
         run `pym openapi convert <file>` to write an OpenAPI 3 file and fix what it reports",
        lines.join("\n")
    ))
}

/// Which side of the exchange a schema checks: `readOnly` properties are
/// not required in requests, `writeOnly` ones not in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Request,
    Response,
}

/// Drop from `required` the properties that do not apply to `view`
/// (`readOnly` in requests, `writeOnly` in responses), recursively.
pub fn apply_view(v: &Value, view: View, map: bool) -> Value {
    if map {
        return match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, s)| (k.clone(), apply_view(s, view, false)))
                    .collect(),
            ),
            other => other.clone(),
        };
    }
    let Value::Object(m) = v else {
        return v.clone();
    };
    let flag = match view {
        View::Request => "readOnly",
        View::Response => "writeOnly",
    };
    let mut out = Map::new();
    for (k, val) in m {
        let conv = match k.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                apply_view(val, view, true)
            }
            "items"
            | "additionalProperties"
            | "not"
            | "contains"
            | "propertyNames"
            | "additionalItems" => apply_view(val, view, false),
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => match val {
                Value::Array(a) => {
                    Value::Array(a.iter().map(|s| apply_view(s, view, false)).collect())
                }
                o => o.clone(),
            },
            _ => val.clone(),
        };
        out.insert(k.clone(), conv);
    }
    let skip: Vec<String> = out
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, p)| p.get(flag).and_then(Value::as_bool) == Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    if !skip.is_empty()
        && let Some(Value::Array(req)) = out.get_mut("required")
    {
        req.retain(|r| !r.as_str().is_some_and(|r| skip.iter().any(|s| s == r)));
    }
    Value::Object(out)
}

/// Translate an OpenAPI 3.0 schema object to JSON Schema 2020-12.
/// `map` is true for a map of named schemas (components.schemas).
pub fn convert_30(v: &Value, map: bool) -> Value {
    if map {
        return match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, s)| (k.clone(), convert_30(s, false)))
                    .collect(),
            ),
            other => other.clone(),
        };
    }
    let Value::Object(m) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in m {
        let conv = match k.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" => convert_30(val, true),
            "items"
            | "additionalProperties"
            | "not"
            | "contains"
            | "propertyNames"
            | "additionalItems" => convert_30(val, false),
            "allOf" | "anyOf" | "oneOf" => match val {
                Value::Array(a) => Value::Array(a.iter().map(|s| convert_30(s, false)).collect()),
                o => o.clone(),
            },
            _ => val.clone(),
        };
        out.insert(k.clone(), conv);
    }
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(b)) = out.get(flag).cloned() {
            out.remove(flag);
            if b && let Some(n) = out.remove(bound) {
                out.insert(flag.into(), n);
            }
        }
    }
    if out.remove("nullable") == Some(Value::Bool(true)) {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert(
                    "type".into(),
                    Value::Array(vec![Value::String(t), Value::String("null".into())]),
                );
                if let Some(Value::Array(e)) = out.get_mut("enum")
                    && !e.contains(&Value::Null)
                {
                    e.push(Value::Null);
                }
            }
            _ => {
                let inner = Value::Object(std::mem::take(&mut out));
                out.insert("anyOf".into(), serde_json::json!([inner, {"type": "null"}]));
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn swagger2_loads_upgraded_unless_the_upgrade_loses_something() {
        let exact = "swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      x-bind-server: m.api.get_a\n      responses: {'200': {description: ok}}\n";
        let (doc, dialect) = read_doc(exact).expect("loads");
        assert_eq!(dialect, Dialect::V30);
        assert_eq!(doc["paths"]["/a"]["get"]["operationId"], "get_a");

        let tsv = exact.replace(
            "      responses",
            "      parameters: [{name: ids, in: query, type: array, items: {type: string}, collectionFormat: tsv}]\n      responses",
        );
        let e = read_doc(&tsv).expect_err("tsv has no 3.0 style");
        assert!(
            e.contains("paths./a.get.parameters[0]: collectionFormat tsv"),
            "{e}"
        );
        assert!(e.contains("pym openapi convert"), "{e}");

        let e = read_doc("swagger: '1.2'\n").expect_err("not 2.0");
        assert!(e.starts_with("'swagger: \"1.2\"': expected \"2.0\""), "{e}");
    }

    #[test]
    fn converts_nullable_and_exclusive() {
        let s = convert_30(
            &json!({"type": "object", "properties": {
                "a": {"type": "string", "nullable": true},
                "n": {"type": "integer", "minimum": 1, "exclusiveMinimum": true},
                "r": {"allOf": [{"$ref": "#/components/schemas/X"}], "nullable": true}
            }}),
            false,
        );
        assert_eq!(s["properties"]["a"]["type"], json!(["string", "null"]));
        assert_eq!(s["properties"]["n"]["exclusiveMinimum"], json!(1));
        assert!(s["properties"]["n"].get("minimum").is_none());
        assert!(s["properties"]["r"]["anyOf"].is_array());
    }
}
