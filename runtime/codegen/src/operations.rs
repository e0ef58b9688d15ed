//! The operations of a document as the generator needs them: one
//! [`OperationModel`] per `operationId`, with its parameters, body and
//! responses, `$ref`s to `#/components/{parameters,requestBodies,responses}`
//! followed. Pure: a JSON document in, models or problems out.

use pym_schema::{AuthMode, Dialect};
use serde_json::Value;

/// The HTTP methods an OpenAPI path item can hold, in the order the
/// generator lists operations of one path.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
    Header,
}

/// One parameter of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamModel {
    /// The name in the spec (what the request carries).
    pub name: String,
    pub location: Location,
    pub required: bool,
    /// Its schema, in JSON Schema 2020-12.
    pub schema: Value,
    pub description: Option<String>,
}

/// The JSON request body of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyModel {
    pub required: bool,
    pub schema: Value,
}

/// One declared response: its status key (`200`, `2XX`, `default`), its
/// description and its JSON schema, if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseModel {
    pub status: String,
    pub description: String,
    pub schema: Option<Value>,
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationModel {
    pub id: String,
    /// Upper case, as in `POST`.
    pub method: String,
    pub path: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    /// What its `security` (or the document's) asks of the caller.
    pub auth: AuthMode,
    pub params: Vec<ParamModel>,
    pub body: Option<BodyModel>,
    pub responses: Vec<ResponseModel>,
}

/// Every operation of `doc`, in path then method order, or every problem
/// found (each naming the place and what was expected).
pub fn operations(doc: &Value, dialect: Dialect) -> Result<Vec<OperationModel>, Vec<String>> {
    let mut ops = Vec::new();
    let mut problems = Vec::new();
    let paths = doc.get("paths").and_then(Value::as_object);
    for (path, item) in paths.into_iter().flatten() {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let place = format!("paths.{path}.{method}");
            match operation(doc, dialect, path, method, item, op, &place) {
                Ok(o) => ops.push(o),
                Err(mut p) => problems.append(&mut p),
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for op in &ops {
        if !seen.insert(op.id.as_str()) {
            problems.push(format!("operationId '{}' is used twice", op.id));
        }
    }
    if problems.is_empty() {
        Ok(ops)
    } else {
        Err(problems)
    }
}

fn operation(
    doc: &Value,
    dialect: Dialect,
    path: &str,
    method: &str,
    item: &Value,
    op: &Value,
    place: &str,
) -> Result<OperationModel, Vec<String>> {
    let mut problems = Vec::new();
    let id = match op.get("operationId").and_then(Value::as_str) {
        Some(id) if !id.trim().is_empty() => id.to_string(),
        _ => {
            return Err(vec![format!(
                "{place}: no operationId (pym binds handlers by operationId)"
            )]);
        }
    };
    let auth = pym_schema::operation_auth(doc, op).unwrap_or_else(|e| {
        problems.push(format!("{place}: {e}"));
        AuthMode::Required
    });
    let mut params: Vec<ParamModel> = Vec::new();
    // Operation-level parameters override path-level ones of the same name
    // and location.
    for list in [item.get("parameters"), op.get("parameters")] {
        for p in list.and_then(Value::as_array).into_iter().flatten() {
            match param(doc, dialect, p, place) {
                Ok(Some(p)) => {
                    params.retain(|q| !(q.name == p.name && q.location == p.location));
                    params.push(p);
                }
                Ok(None) => {}
                Err(e) => problems.push(e),
            }
        }
    }
    params.sort_by_key(|p| p.location as u8);
    let body = match op.get("requestBody") {
        None => None,
        Some(b) => match resolve(doc, b, place) {
            Ok(b) => json_schema(b).map(|schema| BodyModel {
                required: b.get("required").and_then(Value::as_bool) == Some(true),
                schema: dialect_schema(schema, dialect),
            }),
            Err(e) => {
                problems.push(e);
                None
            }
        },
    };
    let mut responses = Vec::new();
    for (status, r) in op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Err(e) = crate::status::variant(status) {
            problems.push(format!("{place}: {e}"));
            continue;
        }
        match resolve(doc, r, &format!("{place}.responses.{status}")) {
            Ok(r) => responses.push(ResponseModel {
                status: status.clone(),
                description: text(r, "description").unwrap_or_default(),
                schema: json_schema(r).map(|s| dialect_schema(s, dialect)),
            }),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(OperationModel {
        id,
        method: method.to_ascii_uppercase(),
        path: path.to_string(),
        summary: text(op, "summary"),
        description: text(op, "description"),
        auth,
        params,
        body,
        responses,
    })
}

/// A parameter; `None` for a cookie parameter (not validated, not passed).
fn param(
    doc: &Value,
    dialect: Dialect,
    p: &Value,
    place: &str,
) -> Result<Option<ParamModel>, String> {
    let p = resolve(doc, p, place)?;
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{place}: a parameter has no 'name'"))?;
    let location = match p.get("in").and_then(Value::as_str) {
        Some("path") => Location::Path,
        Some("query") => Location::Query,
        Some("header") => Location::Header,
        Some("cookie") => return Ok(None),
        other => {
            return Err(format!(
                "{place}: parameter '{name}' has 'in: {}'; expected path, query, header or cookie",
                other.unwrap_or("(none)")
            ));
        }
    };
    let schema = p
        .get("schema")
        .cloned()
        .unwrap_or(Value::Object(serde_json::Map::new()));
    Ok(Some(ParamModel {
        name: name.to_string(),
        location,
        required: location == Location::Path
            || p.get("required").and_then(Value::as_bool) == Some(true),
        schema: dialect_schema(&schema, dialect),
        description: text(p, "description"),
    }))
}

/// Follow `$ref`s to objects of this document (at most 16).
fn resolve<'a>(doc: &'a Value, mut v: &'a Value, place: &str) -> Result<&'a Value, String> {
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return Ok(v);
        };
        v = r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .ok_or_else(|| format!("{place}: $ref '{r}' does not resolve in this document"))?;
    }
    Err(format!("{place}: $ref cycle"))
}

/// The schema of the `application/json` (or `*+json`) content.
fn json_schema(v: &Value) -> Option<&Value> {
    let content = v.get("content")?.as_object()?;
    content
        .iter()
        .find(|(k, _)| {
            let k = k.split(';').next().unwrap_or("").trim();
            k == "application/json" || k.ends_with("+json")
        })
        .and_then(|(_, c)| c.get("schema"))
}

fn dialect_schema(s: &Value, dialect: Dialect) -> Value {
    match dialect {
        Dialect::V30 => pym_schema::convert_30(s, false),
        Dialect::V31 => s.clone(),
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(paths: Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "components": {
                "parameters": {"Limit": {"name": "limit", "in": "query", "schema": {"type": "integer"}}},
                "responses": {"NotFound": {"description": "nothing there"}}
            },
            "paths": paths
        })
    }

    #[test]
    fn operations_are_read() {
        let d = doc(json!({
            "/users/{id}": {
                "parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}],
                "get": {
                    "operationId": "get_user",
                    "summary": " One user ",
                    "parameters": [
                        {"$ref": "#/components/parameters/Limit"},
                        {"name": "X-Trace", "in": "header", "required": true, "schema": {"type": "string"}},
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "the user", "content": {"application/json": {"schema": {"type": "object"}}}},
                        "404": {"$ref": "#/components/responses/NotFound"}
                    }
                }
            }
        }));
        let ops = operations(&d, Dialect::V31).unwrap();
        assert_eq!(ops.len(), 1);
        let op = &ops[0];
        assert_eq!((op.id.as_str(), op.method.as_str()), ("get_user", "GET"));
        assert_eq!(op.summary.as_deref(), Some("One user"));
        let params: Vec<(&str, Location, bool)> = op
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.location, p.required))
            .collect();
        assert_eq!(
            params,
            [
                ("id", Location::Path, true),
                ("limit", Location::Query, false),
                ("X-Trace", Location::Header, true),
            ]
        );
        let responses: Vec<(&str, &str, bool)> = op
            .responses
            .iter()
            .map(|r| {
                (
                    r.status.as_str(),
                    r.description.as_str(),
                    r.schema.is_some(),
                )
            })
            .collect();
        assert_eq!(
            responses,
            [("200", "the user", true), ("404", "nothing there", false)]
        );
    }

    #[test]
    fn bodies_and_dialects() {
        let paths = json!({"/s": {"post": {
            "operationId": "s",
            "requestBody": {"required": true, "content": {"application/merge-patch+json": {
                "schema": {"type": "string", "nullable": true}}}},
            "responses": {"204": {"description": "done"}}
        }}});
        let d = doc(paths.clone());
        let body = operations(&d, Dialect::V30).unwrap()[0]
            .body
            .clone()
            .unwrap();
        assert!(body.required);
        assert_eq!(body.schema, json!({"type": ["string", "null"]}));
        let body = operations(&d, Dialect::V31).unwrap()[0]
            .body
            .clone()
            .unwrap();
        assert_eq!(body.schema, json!({"type": "string", "nullable": true}));
    }

    #[test]
    fn problems_name_the_place() {
        let cases = [
            (
                json!({"/a": {"get": {"responses": {}}}}),
                "paths./a.get: no operationId (pym binds handlers by operationId)",
            ),
            (
                json!({"/a": {"get": {"operationId": "a", "responses": {}}},
                       "/b": {"get": {"operationId": "a", "responses": {}}}}),
                "operationId 'a' is used twice",
            ),
            (
                json!({"/a": {"get": {"operationId": "a", "responses": {},
                       "parameters": [{"$ref": "#/components/parameters/Nope"}]}}}),
                "paths./a.get: $ref '#/components/parameters/Nope' does not resolve in this document",
            ),
            (
                json!({"/a": {"get": {"operationId": "a", "responses": {}, "security": [{"nope": []}]}}}),
                "paths./a.get: 'security[0]' names the scheme 'nope', which is not defined in components.securitySchemes (defined: none)",
            ),
            (
                json!({"/a": {"get": {"operationId": "a", "responses": {"20x": {"description": "?"}}}}}),
                "paths./a.get: response key '20x': expected a status code (100-599), a range such as 2XX, or default",
            ),
            (
                json!({"/a": {"get": {"operationId": "a", "responses": {},
                       "parameters": [{"name": "q", "in": "body"}]}}}),
                "paths./a.get: parameter 'q' has 'in: body'; expected path, query, header or cookie",
            ),
        ];
        for (paths, want) in cases {
            let got = operations(&doc(paths), Dialect::V31).unwrap_err();
            assert_eq!(got, [want.to_string()]);
        }
    }
}
