//! Swagger 2.0 → OpenAPI 3.0.3, on JSON values (pymacaron's specs are 2.0).
//!
//! [`upgrade`] converts a whole document and lists in [`Upgrade::notes`]
//! every change that is not exact (what was lost, and what to write
//! instead). `read_doc` upgrades a 2.0 document on load and refuses it
//! when there are notes; `pym openapi convert` writes the result and
//! prints the notes.
//!
//! Written here rather than taken from a crate: no maintained Rust crate
//! converts 2.0 at the JSON level while keeping the document's extensions
//! (openapiv3-extended's upgrade goes through typed structs that drop
//! operation extensions such as `x-bind-server`, panic on unknown types and
//! wrap a body schema in an object; paperclip and mockforge are whole
//! frameworks). One file per part of the document:
//!
//! | file | converts |
//! |---|---|
//! | `schema.rs` | schemas (`x-nullable`, `type: file`, `discriminator`) and `$ref`s |
//! | `params.rs` | parameters (types into `schema`, `collectionFormat`), body and form parameters into `requestBody` |
//! | `responses.rs` | responses (`schema` and `examples` into `content`, headers) |
//! | `security.rs` | `securityDefinitions` into `components.securitySchemes` |
//! | `operations.rs` | paths and operations; pymacaron's `x-bind-server` into `operationId` |

mod operations;
mod params;
mod responses;
mod schema;
mod security;

use serde_json::{Map, Value, json};

/// One change of the upgrade that is not exact: where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The place in the 2.0 document, e.g. `paths./pets.get.parameters[1]`.
    pub at: String,
    /// What was lost or changed, and what to write instead.
    pub message: String,
}

impl Note {
    fn new(at: impl Into<String>, message: impl Into<String>) -> Note {
        Note {
            at: at.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// An upgraded document and the notes of what did not convert exactly.
#[derive(Debug, Clone)]
pub struct Upgrade {
    pub document: Value,
    pub notes: Vec<Note>,
}

/// Whether `doc` says `swagger: "2.0"`.
pub fn is_swagger2(doc: &Value) -> bool {
    doc.get("swagger").and_then(Value::as_str) == Some("2.0")
}

/// What the conversion of one document reads everywhere: the document,
/// its default media types, and the notes so far.
struct Ctx<'a> {
    doc: &'a Value,
    consumes: Vec<String>,
    produces: Vec<String>,
    notes: Vec<Note>,
}

impl Ctx<'_> {
    fn note(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Note::new(at, message));
    }
}

/// Media types of `v` (a `consumes`/`produces` list), or `default`.
fn media_types(v: Option<&Value>, default: &[String]) -> Vec<String> {
    let listed: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        default.to_vec()
    } else {
        listed
    }
}

/// Top-level keys the upgrade rewrites; every other one is kept as it is.
const REWRITTEN: &[&str] = &[
    "swagger",
    "host",
    "basePath",
    "schemes",
    "consumes",
    "produces",
    "paths",
    "definitions",
    "parameters",
    "responses",
    "securityDefinitions",
];

/// The 2.0 document `doc` as OpenAPI 3.0.3. `Err` when it cannot be
/// converted at all (not 2.0, or two operations bound to one operationId).
pub fn upgrade(doc: &Value) -> Result<Upgrade, Vec<Note>> {
    if !is_swagger2(doc) {
        let found = doc
            .get("swagger")
            .map_or("nothing".to_string(), Value::to_string);
        return Err(vec![Note::new(
            "swagger",
            format!("expected \"2.0\", found {found}"),
        )]);
    }
    let json_default = vec!["application/json".to_string()];
    let mut cx = Ctx {
        doc,
        consumes: media_types(doc.get("consumes"), &json_default),
        produces: media_types(doc.get("produces"), &json_default),
        notes: Vec::new(),
    };
    let mut out = Map::new();
    out.insert("openapi".into(), json!("3.0.3"));
    for (k, v) in doc.as_object().into_iter().flatten() {
        if !REWRITTEN.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("servers".into(), servers(doc));
    let paths = operations::paths(&mut cx)?;
    out.insert("paths".into(), paths);
    let components = components(&mut cx);
    if !components.is_empty() {
        out.insert("components".into(), Value::Object(components));
    }
    let mut document = Value::Object(out);
    schema::rewrite_refs(&mut document, "", &mut cx.notes);
    Ok(Upgrade {
        document,
        notes: cx.notes,
    })
}

/// `host` + `schemes` as `servers`, one per scheme (relative, `/`,
/// without a host). The `basePath` goes into the paths instead (see
/// `operations::paths`): pym serves paths as written, so the URLs a
/// pymacaron service answered at stay the same.
fn servers(doc: &Value) -> Value {
    let Some(host) = doc.get("host").and_then(Value::as_str) else {
        return json!([{ "url": "/" }]);
    };
    let schemes: Vec<&str> = doc
        .get("schemes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .filter(|s: &Vec<&str>| !s.is_empty())
        .unwrap_or_else(|| vec!["https"]);
    Value::Array(
        schemes
            .iter()
            .map(|s| json!({ "url": format!("{s}://{host}") }))
            .collect(),
    )
}

/// `components`: schemas, the reusable non-body parameters, responses and
/// security schemes. Body and form parameters are inlined where they are
/// used (as `requestBody`), so they are not kept here.
fn components(cx: &mut Ctx<'_>) -> Map<String, Value> {
    let doc = cx.doc;
    let mut c = Map::new();
    if let Some(defs) = doc.get("definitions").and_then(Value::as_object) {
        let schemas = defs
            .iter()
            .map(|(k, s)| (k.clone(), schema::convert(s)))
            .collect();
        c.insert("schemas".into(), Value::Object(schemas));
    }
    if let Some(params) = doc.get("parameters").and_then(Value::as_object) {
        let mut kept = Map::new();
        for (k, p) in params {
            if !params::is_body_or_form(p) {
                let at = format!("parameters.{k}");
                kept.insert(k.clone(), params::parameter(cx, p, &at));
            }
        }
        if !kept.is_empty() {
            c.insert("parameters".into(), Value::Object(kept));
        }
    }
    if let Some(resps) = doc.get("responses").and_then(Value::as_object) {
        let produces = cx.produces.clone();
        let converted = resps
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    responses::response(cx, r, &produces, &format!("responses.{k}")),
                )
            })
            .collect();
        c.insert("responses".into(), Value::Object(converted));
    }
    if let Some(defs) = doc.get("securityDefinitions").and_then(Value::as_object) {
        let schemes = defs
            .iter()
            .map(|(k, d)| {
                (
                    k.clone(),
                    security::scheme(cx, d, &format!("securityDefinitions.{k}")),
                )
            })
            .collect();
        c.insert("securitySchemes".into(), Value::Object(schemes));
    }
    c
}

#[cfg(test)]
mod tests;
