//! Paths and operations. Each path is prefixed with the `basePath` (the
//! URL pymacaron served it at; pym serves paths as written). Path-level parameters are merged into each
//! operation (the operation's win on the same name and location); body and
//! form parameters become the `requestBody`; pymacaron's `x-bind-server`
//! (`module.path.function`) names the operation (`operationId: function`).

use super::params::{self, extensions};
use super::{Ctx, Note, media_types, responses};
use serde_json::{Map, Value};

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

/// Keys of a 2.0 operation kept as they are.
const KEPT: &[&str] = &[
    "tags",
    "summary",
    "description",
    "externalDocs",
    "operationId",
    "deprecated",
    "security",
];

/// Every path item converted; `Err` when two operations get one operationId.
pub(super) fn paths(cx: &mut Ctx<'_>) -> Result<Value, Vec<Note>> {
    let doc = cx.doc;
    let mut out = Map::new();
    let mut ids: Vec<(String, String)> = Vec::new();
    let base = doc.get("basePath").and_then(Value::as_str).unwrap_or("");
    let base = base.trim_end_matches('/');
    for (path, item) in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let path = &format!("{base}{path}");
        let at = format!("paths.{path}");
        let mut conv = Map::new();
        extensions(item, &mut conv);
        if item.get("$ref").is_some() {
            cx.note(
                &at,
                "a path item $ref is not converted; inline the path item",
            );
        }
        let shared: Vec<&Value> = list(item.get("parameters"));
        for m in METHODS {
            let Some(op) = item.get(*m) else { continue };
            let at = format!("{at}.{m}");
            let op = operation(cx, op, &shared, &at);
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                ids.push((id.to_string(), format!("{} {path}", m.to_uppercase())));
            }
            conv.insert((*m).to_string(), op);
        }
        out.insert(path.clone(), Value::Object(conv));
    }
    unique_ids(&ids)?;
    Ok(Value::Object(out))
}

fn list(v: Option<&Value>) -> Vec<&Value> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Two operations with one operationId cannot both be bound.
fn unique_ids(ids: &[(String, String)]) -> Result<(), Vec<Note>> {
    let mut notes = Vec::new();
    for (i, (id, op)) in ids.iter().enumerate() {
        if let Some((_, first)) = ids[..i].iter().find(|(other, _)| other == id) {
            notes.push(Note::new(
                op.clone(),
                format!("operationId {id} is also {first}'s (from x-bind-server or operationId): give one of them its own operationId"),
            ));
        }
    }
    if notes.is_empty() { Ok(()) } else { Err(notes) }
}

/// The operation's parameters: the path item's, replaced by the
/// operation's own of the same name and location, each with its place.
fn merged<'a>(
    cx: &Ctx<'a>,
    shared: &[&'a Value],
    own: &[&'a Value],
    at: &str,
) -> Vec<(&'a Value, &'a Value, String)> {
    let key = |p: &Value| {
        let get = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        (get("name"), get("in"))
    };
    let mut all: Vec<(&Value, &Value, String)> = Vec::new();
    for (i, p) in shared.iter().enumerate() {
        let r = params::resolve(cx, p);
        if !own.iter().any(|o| key(params::resolve(cx, o)) == key(r)) {
            all.push((p, r, format!("{at}.parameters(path)[{i}]")));
        }
    }
    for (i, p) in own.iter().enumerate() {
        all.push((p, params::resolve(cx, p), format!("{at}.parameters[{i}]")));
    }
    all
}

fn operation<'a>(cx: &mut Ctx<'a>, op: &'a Value, shared: &[&'a Value], at: &str) -> Value {
    let consumes = media_types(op.get("consumes"), &cx.consumes.clone());
    let produces = media_types(op.get("produces"), &cx.produces.clone());
    let mut out = Map::new();
    for k in KEPT {
        if let Some(v) = op.get(*k) {
            out.insert((*k).to_string(), v.clone());
        }
    }
    extensions(op, &mut out);
    if op.get("schemes").is_some() {
        cx.note(
            at,
            "per-operation schemes are dropped (servers apply to the whole API)",
        );
    }
    let own = list(op.get("parameters"));
    let all = merged(cx, shared, &own, at);
    let mut plain = Vec::new();
    let mut form = Vec::new();
    for (p, resolved, place) in all {
        match resolved.get("in").and_then(Value::as_str) {
            Some("body") => {
                let body = params::body(cx, resolved, &consumes, &place);
                out.insert("requestBody".into(), body);
            }
            Some("formData") => form.push((resolved, place)),
            _ => plain.push(params::parameter(cx, p, &place)),
        }
    }
    if !form.is_empty() {
        if out.contains_key("requestBody") {
            cx.note(
                at,
                "both body and formData parameters; the formData ones are dropped",
            );
        } else {
            out.insert("requestBody".into(), params::form(cx, &form, &consumes));
        }
    }
    if !plain.is_empty() {
        out.insert("parameters".into(), Value::Array(plain));
    }
    let resps = op.get("responses").and_then(Value::as_object);
    let converted: Map<String, Value> = resps
        .into_iter()
        .flatten()
        .map(|(code, r)| {
            (
                code.clone(),
                responses::response(cx, r, &produces, &format!("{at}.responses.{code}")),
            )
        })
        .collect();
    out.insert("responses".into(), Value::Object(converted));
    bind(cx, &mut out, at);
    Value::Object(out)
}

/// pymacaron's bindings: `x-bind-server: a.b.function` names the operation
/// `function` when it has no operationId; its decorators are not run.
fn bind(cx: &mut Ctx<'_>, op: &mut Map<String, Value>, at: &str) {
    let bound = op
        .get("x-bind-server")
        .and_then(Value::as_str)
        .map(String::from);
    let function = bound
        .as_deref()
        .and_then(|b| b.rsplit('.').next())
        .filter(|f| !f.is_empty());
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .map(String::from);
    match (id, function) {
        (None, Some(f)) => {
            // First, where a reader looks for it (when maps keep their order).
            let rest = std::mem::take(op);
            op.insert("operationId".into(), Value::String(f.to_string()));
            op.extend(rest);
        }
        (Some(id), Some(f)) if id != f => cx.note(
            at,
            format!(
                "operationId {id} is kept; x-bind-server {} (→ {f}) is ignored",
                bound.as_deref().unwrap_or_default()
            ),
        ),
        (None, None) => cx.note(
            at,
            "no operationId and no x-bind-server: pym binds handlers by operationId; add one",
        ),
        _ => {}
    }
    for k in ["x-decorate-server", "x-decorate-request"] {
        if op.contains_key(k) {
            cx.note(at, format!("{k} (a pymacaron decorator) is not run by pym: wrap the handler, or add a tower layer"));
        }
    }
}
