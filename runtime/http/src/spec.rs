//! The OpenAPI document: loading, operations, and compiled JSON Schemas.
//!
//! OpenAPI 3.0.x and 3.1.x are both accepted. The document is read as a
//! plain JSON value (from YAML or JSON); 3.1 documents are also parsed with
//! the `oas3` crate so structural mistakes are reported early. Schemas are
//! compiled with the `jsonschema` crate as JSON Schema 2020-12 (3.1's
//! dialect), format checks on (`email`, `date-time`, `uuid`, ...). For 3.0
//! documents the 3.0 schema dialect is translated first: `nullable: true`
//! becomes a `"null"` type, boolean `exclusiveMinimum`/`exclusiveMaximum`
//! become numeric ones. `$ref`s to `#/components/schemas/...` resolve inside
//! the document; parameter, request-body and response `$ref`s are followed
//! here. A `readOnly` property is not required in requests and a
//! `writeOnly` one not in responses, so one model serves both directions.
//! `servers` URLs are not used for routing: paths are served as written.
//!
//! Limits (documented, checked at start-up): path templates must use whole
//! segments (`/users/{id}`, not `/files/{name}.json`); only JSON request
//! bodies are validated (other media types pass through); query arrays use
//! the default `form` + `explode` style (`?tag=a&tag=b`).

use axum::http::Method;
use jsonschema::{Draft, Validator};
use pym_schema::auth_mode;
pub use pym_schema::{AuthMode, Dialect};
use pym_schema::{View, apply_view, convert_30, read_doc};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// Where a parameter lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    Path,
    Query,
    Header,
    Cookie,
}

/// The JSON type a string parameter is converted to before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    String,
    Integer,
    Number,
    Boolean,
}

/// A compiled JSON Schema and the schema it was compiled from, kept to tell
/// which fields are secret (`format: password`, `writeOnly: true`) when an
/// error is reported. Derefs to the [`Validator`].
pub struct Schema {
    validator: Validator,
    /// The schema (2020-12), without `components`.
    schema: Value,
    /// `{"schemas": ...}`, shared by the schemas of one view.
    components: Arc<Value>,
}

impl std::ops::Deref for Schema {
    type Target = Validator;
    fn deref(&self) -> &Validator {
        &self.validator
    }
}

impl Schema {
    /// The part of the compiled document at a JSON pointer (`""` is the
    /// root, `/components/schemas/User` a component), as `$ref`s name them.
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        match pointer.strip_prefix("/components") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => self.components.pointer(rest),
            _ => self.schema.pointer(pointer),
        }
    }
}

/// One declared parameter.
#[derive(Clone)]
pub struct Param {
    pub name: String,
    pub location: ParamIn,
    pub required: bool,
    /// `Some(item kind)` for arrays.
    pub array: Option<Scalar>,
    pub scalar: Scalar,
    pub validator: Arc<Schema>,
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {} (required: {})",
            self.location, self.name, self.required
        )
    }
}

/// The request body of an operation.
#[derive(Clone)]
pub struct BodySpec {
    pub required: bool,
    /// The JSON schema, when the body is `application/json`.
    pub json: Option<Arc<Schema>>,
}

/// One operation of the document.
#[derive(Clone)]
pub struct Operation {
    pub id: String,
    pub method: Method,
    /// OpenAPI path template, e.g. `/users/{id}` (also axum's syntax).
    pub path: String,
    pub params: Vec<Param>,
    pub body: Option<BodySpec>,
    pub auth: AuthMode,
    /// `(status key, JSON schema)`: `"200"`, `"2XX"`, `"default"`.
    pub responses: Vec<(String, Option<Arc<Schema>>)>,
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} ({:?})",
            self.id, self.method, self.path, self.auth
        )
    }
}

impl Operation {
    /// The response schema for `status`, if the spec declares one.
    pub fn response_schema(&self, status: u16) -> Option<&Arc<Schema>> {
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        for key in [exact.as_str(), range.as_str(), "default"] {
            if let Some((_, v)) = self
                .responses
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
            {
                return v.as_ref();
            }
        }
        None
    }
}

/// A start-up error in the spec: every problem found, each with its place.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: invalid OpenAPI document:\n  - {}", problems.join("\n  - "))]
pub struct SpecError {
    pub source_name: String,
    pub problems: Vec<String>,
}

/// A loaded OpenAPI document.
#[derive(Clone)]
pub struct Spec {
    /// The document as YAML (served at `/openapi.yaml`).
    pub yaml: String,
    pub doc: Value,
    /// `3.0` or `3.1`.
    pub dialect: Dialect,
    pub operations: Vec<Operation>,
    pub title: String,
    pub version: String,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("title", &self.title)
            .field("dialect", &self.dialect)
            .field("operations", &self.operations)
            .finish()
    }
}

const METHODS: &[(&str, Method)] = &[
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
    ("patch", Method::PATCH),
    ("trace", Method::TRACE),
];

impl Spec {
    /// Read a spec file (YAML or JSON).
    pub fn from_file(path: &std::path::Path) -> Result<Self, SpecError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            source_name: name.clone(),
            problems: vec![format!("cannot read: {e}")],
        })?;
        Self::parse(&name, &text)
    }

    /// Parse spec text (YAML or JSON); `name` is used in errors.
    pub fn parse(name: &str, text: &str) -> Result<Self, SpecError> {
        let err = |p: Vec<String>| SpecError {
            source_name: name.to_string(),
            problems: p,
        };
        let (doc, dialect) = read_doc(text).map_err(|p| err(vec![p]))?;
        let yaml = if text.trim_start().starts_with('{') {
            yaml_serde::to_string(&doc).unwrap_or_else(|_| text.to_string())
        } else {
            text.to_string()
        };
        let mut b = Builder {
            doc: &doc,
            dialect,
            problems: Vec::new(),
            components: Arc::new(Value::Null),
            components_out: Arc::new(Value::Null),
        };
        b.components = Arc::new(b.converted_components(View::Request));
        b.components_out = Arc::new(b.converted_components(View::Response));
        let operations = b.operations();
        // pym's own checks first (they name the place), then the `oas3`
        // crate's structural check of 3.1 documents.
        if b.problems.is_empty() && dialect == Dialect::V31 {
            let json = serde_json::to_string(&doc).unwrap_or_default();
            if let Err(e) = oas3::from_json(&json) {
                b.problems
                    .push(format!("not a valid OpenAPI 3.1 document: {e}"));
            }
        }
        if !b.problems.is_empty() {
            return Err(err(b.problems));
        }
        let info = |k: &str| {
            doc.get("info")
                .and_then(|i| i.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (title, version) = (info("title"), info("version"));
        Ok(Spec {
            yaml,
            doc,
            dialect,
            operations,
            title,
            version,
        })
    }

    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.id == id)
    }
}

struct Builder<'a> {
    doc: &'a Value,
    dialect: Dialect,
    problems: Vec<String>,
    /// `{"schemas": ...}` translated to 2020-12, request view.
    components: Arc<Value>,
    /// The same, response view.
    components_out: Arc<Value>,
}

impl<'a> Builder<'a> {
    fn converted_components(&self, view: View) -> Value {
        let schemas = self
            .doc
            .pointer("/components/schemas")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let schemas = match self.dialect {
            Dialect::V30 => convert_30(&schemas, true),
            Dialect::V31 => schemas,
        };
        serde_json::json!({ "schemas": apply_view(&schemas, view, true) })
    }

    /// Follow a local `$ref` (one object level, repeatedly).
    fn deref<'v>(&mut self, mut v: &'v Value, place: &str) -> Option<&'v Value>
    where
        'a: 'v,
    {
        for _ in 0..16 {
            match v.get("$ref").and_then(Value::as_str) {
                None => return Some(v),
                Some(r) => {
                    let target = r.strip_prefix('#').and_then(|p| self.doc.pointer(p));
                    match target {
                        Some(t) => v = t,
                        None => {
                            self.problems.push(format!(
                                "{place}: $ref '{r}' does not resolve in this document"
                            ));
                            return None;
                        }
                    }
                }
            }
        }
        self.problems.push(format!("{place}: $ref cycle"));
        None
    }

    fn compile(&mut self, schema: &Value, place: &str) -> Option<Arc<Schema>> {
        self.compile_view(schema, place, View::Request)
    }

    fn compile_view(&mut self, schema: &Value, place: &str, view: View) -> Option<Arc<Schema>> {
        let schema = match self.dialect {
            Dialect::V30 => convert_30(schema, false),
            Dialect::V31 => schema.clone(),
        };
        let schema = match apply_view(&schema, view, false) {
            Value::Object(mut m) => {
                m.remove("components");
                Value::Object(m)
            }
            other => serde_json::json!({ "allOf": [other] }),
        };
        let components = match view {
            View::Request => Arc::clone(&self.components),
            View::Response => Arc::clone(&self.components_out),
        };
        let mut root = schema.clone();
        if let Value::Object(m) = &mut root {
            m.insert("components".into(), (*components).clone());
        }
        match jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
        {
            Ok(validator) => Some(Arc::new(Schema {
                validator,
                schema,
                components,
            })),
            Err(e) => {
                self.problems.push(format!("{place}: invalid schema: {e}"));
                None
            }
        }
    }

    /// The schema's top-level `type` (after `$ref`), for parameter coercion.
    fn scalar_of(&mut self, schema: &Value, place: &str) -> (Scalar, Option<Scalar>) {
        let Some(s) = self.deref(schema, place) else {
            return (Scalar::String, None);
        };
        let ty = |s: &Value| -> Option<String> {
            match s.get("type") {
                Some(Value::String(t)) => Some(t.clone()),
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|t| *t != "null")
                    .map(String::from),
                _ => None,
            }
        };
        let kind = |t: Option<String>| match t.as_deref() {
            Some("integer") => Scalar::Integer,
            Some("number") => Scalar::Number,
            Some("boolean") => Scalar::Boolean,
            _ => Scalar::String,
        };
        match ty(s).as_deref() {
            Some("array") => {
                let items = s.get("items").cloned().unwrap_or(Value::Null);
                let item = self
                    .deref(&items, place)
                    .map(|i| kind(ty(i)))
                    .unwrap_or(Scalar::String);
                (Scalar::String, Some(item))
            }
            t => (kind(t.map(String::from)), None),
        }
    }

    fn params(&mut self, list: Option<&Value>, place: &str, out: &mut Vec<Param>) {
        let Some(list) = list.and_then(Value::as_array) else {
            return;
        };
        for (i, p) in list.iter().enumerate() {
            let place = format!("{place}.parameters[{i}]");
            let Some(p) = self.deref(p, &place) else {
                continue;
            };
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            let loc = match p.get("in").and_then(Value::as_str) {
                Some("path") => ParamIn::Path,
                Some("query") => ParamIn::Query,
                Some("header") => ParamIn::Header,
                Some("cookie") => ParamIn::Cookie,
                other => {
                    self.problems.push(format!(
                        "{place}: 'in: {other:?}' must be path, query, header or cookie"
                    ));
                    continue;
                }
            };
            if name.is_empty() {
                self.problems
                    .push(format!("{place}: parameter without a name"));
                continue;
            }
            let required =
                loc == ParamIn::Path || p.get("required").and_then(Value::as_bool).unwrap_or(false);
            let schema = p
                .get("schema")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            let (scalar, array) = self.scalar_of(&schema, &place);
            let Some(validator) = self.compile(&schema, &format!("{place}.schema")) else {
                continue;
            };
            let name = if loc == ParamIn::Header {
                name.to_ascii_lowercase()
            } else {
                name.to_string()
            };
            out.retain(|q: &Param| !(q.name == name && q.location == loc));
            out.push(Param {
                name,
                location: loc,
                required,
                array,
                scalar,
                validator,
            });
        }
    }

    fn operations(&mut self) -> Vec<Operation> {
        let mut ops = Vec::new();
        let Some(paths) = self.doc.get("paths").and_then(Value::as_object) else {
            self.problems.push("no 'paths' object".into());
            return ops;
        };
        let global = self.global_auth();
        for (path, item) in paths {
            let place = format!("paths.{path}");
            if !self.path_template_is_valid(path, &place) {
                continue;
            }
            let Some(item) = self.deref(item, &place) else {
                continue;
            };
            if item.get("security").is_some() {
                self.problems.push(format!(
                    "{place}: 'security' is not allowed on a path item (OpenAPI ignores it there, \
                     so it would protect nothing); set it on each operation or at the document level"
                ));
            }
            let mut path_params = Vec::new();
            self.params(item.get("parameters"), &place, &mut path_params);
            for (mname, method) in METHODS {
                let Some(op) = item.get(*mname) else {
                    continue;
                };
                let place = format!("{place}.{mname}");
                let Some(id) = op.get("operationId").and_then(Value::as_str) else {
                    self.problems.push(format!(
                        "{place}: no operationId (pym binds handlers by operationId)"
                    ));
                    continue;
                };
                if ops.iter().any(|o: &Operation| o.id == id) {
                    self.problems
                        .push(format!("{place}: operationId '{id}' is used twice"));
                    continue;
                }
                let mut params = path_params.clone();
                self.params(op.get("parameters"), &place, &mut params);
                self.check_path_params_declared(path, &params, &place);
                let auth =
                    self.operation_auth(op, global, &format!("{place} (operationId '{id}')"));
                ops.push(Operation {
                    id: id.to_string(),
                    method: method.clone(),
                    path: path.clone(),
                    params,
                    body: self.request_body(op, &place),
                    auth,
                    responses: self.responses(op, &place),
                });
            }
        }
        ops
    }

    /// The auth of operations without their own `security`: the document's
    /// (`None` when it is malformed, which is reported here once).
    fn global_auth(&mut self) -> Option<AuthMode> {
        let schemes = self.doc.pointer("/components/securitySchemes");
        match auth_mode(self.doc.get("security"), schemes) {
            Ok(mode) => Some(mode),
            Err(e) => {
                self.problems
                    .push(format!("security (document level): {e}"));
                None
            }
        }
    }

    /// The auth of `op`: its own `security`, else the document's. A
    /// malformed one is reported (it never means "no auth").
    fn operation_auth(&mut self, op: &Value, global: Option<AuthMode>, place: &str) -> AuthMode {
        let Some(own) = op.get("security") else {
            return global.unwrap_or(AuthMode::Required);
        };
        let schemes = self.doc.pointer("/components/securitySchemes");
        auth_mode(Some(own), schemes).unwrap_or_else(|e| {
            self.problems.push(format!("{place}: {e}"));
            AuthMode::Required
        })
    }

    /// `path` starts with '/' and each template is a whole segment (`{id}`).
    fn path_template_is_valid(&mut self, path: &str, place: &str) -> bool {
        if !path.starts_with('/') {
            self.problems
                .push(format!("{place}: a path must start with '/'"));
            return false;
        }
        for seg in path.split('/') {
            if (seg.contains('{') || seg.contains('}'))
                && !(seg.starts_with('{') && seg.ends_with('}') && seg.matches('{').count() == 1)
            {
                self.problems.push(format!(
                    "{place}: template segment '{seg}' must be a whole segment like '{{id}}'"
                ));
            }
        }
        true
    }

    fn check_path_params_declared(&mut self, path: &str, params: &[Param], place: &str) {
        for seg in path.split('/') {
            if let Some(n) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
                && !params
                    .iter()
                    .any(|p| p.location == ParamIn::Path && p.name == n)
            {
                self.problems
                    .push(format!("{place}: path parameter '{n}' is not declared"));
            }
        }
    }

    fn request_body(&mut self, op: &Value, place: &str) -> Option<BodySpec> {
        let rb = op.get("requestBody")?;
        let bplace = format!("{place}.requestBody");
        let rb = self.deref(rb, &bplace)?;
        let required = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
        let schema = json_content(rb).and_then(|c| c.get("schema")).cloned();
        let json = match schema {
            Some(s) => self.compile(&s, &format!("{bplace}.schema")),
            None => None,
        };
        Some(BodySpec { required, json })
    }

    fn responses(&mut self, op: &Value, place: &str) -> Vec<(String, Option<Arc<Schema>>)> {
        let mut responses = Vec::new();
        let Some(rs) = op.get("responses").and_then(Value::as_object) else {
            return responses;
        };
        for (code, r) in rs {
            let rplace = format!("{place}.responses.{code}");
            let Some(r) = self.deref(r, &rplace) else {
                continue;
            };
            let schema = json_content(r).and_then(|c| c.get("schema")).cloned();
            let v = match schema {
                Some(s) => self.compile_view(&s, &format!("{rplace}.schema"), View::Response),
                None => None,
            };
            responses.push((code.clone(), v));
        }
        responses
    }
}

/// The `application/json` (or `*+json`) entry of a `content` map.
fn json_content(v: &Value) -> Option<&Value> {
    let content = v.get("content")?.as_object()?;
    content
        .iter()
        .find(|(k, _)| {
            let k = k.split(';').next().unwrap_or("").trim();
            k == "application/json" || k.ends_with("+json")
        })
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A spec with `security` at `place` (`doc`, `op` or `item`).
    fn spec_with_security(version: &str, place: &str, security: &str) -> String {
        let at = |p: &str| {
            if p == place {
                format!("security: {security}")
            } else {
                String::new()
            }
        };
        format!(
            "openapi: {version}\ninfo: {{title: t, version: '1'}}\n{doc}\n\
             components:\n  securitySchemes:\n    bearer: {{type: http, scheme: bearer}}\n\
             paths:\n  /me:\n    {item}\n    get:\n      operationId: me\n      {op}\n\
             \x20     responses: {{'200': {{description: ok}}}}\n",
            doc = at("doc"),
            item = at("item"),
            op = at("op"),
        )
    }

    #[test]
    fn spec_security_is_checked_in_both_dialects() {
        let ok = [
            ("doc", "[{bearer: []}]", AuthMode::Required),
            ("op", "[{bearer: []}]", AuthMode::Required),
            ("op", "[]", AuthMode::None),
            ("op", "[{}, {bearer: []}]", AuthMode::Optional),
            ("none", "", AuthMode::None),
        ];
        let bad = [
            (
                "op",
                "~",
                "paths./me.get (operationId 'me'): 'security' is null",
            ),
            (
                "op",
                "{bearer: []}",
                "paths./me.get (operationId 'me'): 'security' is an object",
            ),
            (
                "op",
                "[{jwt: []}]",
                "paths./me.get (operationId 'me'): 'security[0]' names the scheme 'jwt'",
            ),
            ("doc", "~", "security (document level): 'security' is null"),
            (
                "doc",
                "{bearer: []}",
                "security (document level): 'security' is an object",
            ),
            (
                "item",
                "[{bearer: []}]",
                "paths./me: 'security' is not allowed on a path item",
            ),
        ];
        for version in ["3.0.3", "3.1.0"] {
            for (place, security, want) in ok {
                let text = spec_with_security(version, place, security);
                let spec = Spec::parse("s.yaml", &text).unwrap_or_else(|e| panic!("{text}\n{e}"));
                assert_eq!(
                    spec.operations[0].auth, want,
                    "{version} {place} {security}"
                );
            }
            for (place, security, want) in bad {
                let text = spec_with_security(version, place, security);
                let err = Spec::parse("s.yaml", &text).unwrap_err().to_string();
                assert!(
                    err.contains(want),
                    "{version} {place} {security}: got {err}"
                );
            }
        }
    }

    #[test]
    fn operation_security_overrides_a_global_one() {
        let text = spec_with_security("3.1.0", "doc", "[{bearer: []}]").replace(
            "      \n      responses",
            "      security: []\n      responses",
        );
        let spec = Spec::parse("s.yaml", &text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        assert_eq!(spec.operations[0].auth, AuthMode::None);
    }

    #[test]
    fn read_only_not_required_in_requests() {
        let spec = r#"
openapi: 3.0.3
info: {title: t, version: '1'}
components:
  schemas:
    User:
      type: object
      required: [id, email, password]
      properties:
        id: {type: string, readOnly: true}
        email: {type: string}
        password: {type: string, writeOnly: true}
paths:
  /users:
    post:
      operationId: create
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/User'}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/User'}
"#;
        let s = Spec::parse("s", spec).unwrap();
        let op = s.operation("create").unwrap();
        let req = op.body.as_ref().unwrap().json.as_ref().unwrap();
        assert!(req.is_valid(&json!({"email": "a", "password": "p"})));
        assert!(!req.is_valid(&json!({"id": "1", "password": "p"})));
        let resp = op.response_schema(200).unwrap();
        assert!(resp.is_valid(&json!({"id": "1", "email": "a"})));
        assert!(!resp.is_valid(&json!({"email": "a"})));
    }

    #[test]
    fn loads_swagger2_upgraded_and_refuses_what_does_not_convert() {
        let doc = "swagger: '2.0'\ninfo: {title: a, version: '1'}\npaths:\n  /a:\n    get:\n      x-bind-server: m.api.get_a\n      responses: {'200': {description: ok}}\n";
        let spec = Spec::parse("s.yaml", doc).unwrap();
        assert_eq!(spec.dialect, Dialect::V30);
        assert!(spec.operation("get_a").is_some());
        let e = Spec::parse("s.yaml", "swagger: '1.2'\npaths: {}\n").unwrap_err();
        assert!(e.to_string().contains("expected \"2.0\""), "{e}");
    }
}
