//! Responses: `schema` and `examples` go under `content`, one entry per
//! media type the operation produces; headers get a `schema`.

use super::params::{SCHEMA_KEYS, extensions};
use super::{Ctx, schema};
use serde_json::{Map, Value, json};

/// A 2.0 response (or `$ref` to one) as 3.0.
pub(super) fn response(cx: &mut Ctx<'_>, r: &Value, produces: &[String], at: &str) -> Value {
    if r.get("$ref").is_some() {
        return r.clone();
    }
    let mut out = Map::new();
    match r.get("description") {
        Some(d) => {
            out.insert("description".into(), d.clone());
        }
        None => {
            cx.note(
                at,
                "a response without a description (required); set to \"\"",
            );
            out.insert("description".into(), json!(""));
        }
    }
    let mut content = Map::new();
    if let Some(s) = r.get("schema") {
        let s = schema::convert(s);
        for m in produces {
            content.insert(m.clone(), json!({ "schema": s }));
        }
    }
    for (media, example) in r
        .get("examples")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let entry = content.entry(media.clone()).or_insert_with(|| json!({}));
        entry["example"] = example.clone();
    }
    if !content.is_empty() {
        out.insert("content".into(), Value::Object(content));
    }
    if let Some(Value::Object(hs)) = r.get("headers") {
        let headers: Map<String, Value> = hs.iter().map(|(k, h)| (k.clone(), header(h))).collect();
        out.insert("headers".into(), Value::Object(headers));
    }
    extensions(r, &mut out);
    Value::Object(out)
}

fn header(h: &Value) -> Value {
    let mut s = Map::new();
    let mut out = Map::new();
    for (k, v) in h.as_object().into_iter().flatten() {
        if SCHEMA_KEYS.contains(&k.as_str()) {
            s.insert(k.clone(), v.clone());
        } else if k == "description" || k.starts_with("x-") {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("schema".into(), schema::convert(&Value::Object(s)));
    Value::Object(out)
}
