//! Schemas and references. A 2.0 schema is a 3.0 schema but for three
//! spellings: `x-nullable` (3.0: `nullable`), `type: file` (3.0: a binary
//! string) and a `discriminator` that is a property name (3.0: an object).

use super::Note;
use serde_json::{Map, Value, json};

/// Keys whose value is a schema, and keys whose value is a map or a list
/// of schemas.
const SCHEMA: &[&str] = &["items", "additionalProperties", "not"];
const SCHEMA_MAP: &[&str] = &["properties"];
const SCHEMA_LIST: &[&str] = &["allOf", "anyOf", "oneOf"];

/// A 2.0 schema as a 3.0 one (recursively).
pub(super) fn convert(v: &Value) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in m {
        let conv = match k.as_str() {
            k if SCHEMA.contains(&k) => convert(val),
            k if SCHEMA_MAP.contains(&k) => map_values(val, convert),
            k if SCHEMA_LIST.contains(&k) => match val {
                Value::Array(a) => Value::Array(a.iter().map(convert).collect()),
                other => other.clone(),
            },
            _ => val.clone(),
        };
        out.insert(k.clone(), conv);
    }
    if let Some(n) = out.remove("x-nullable") {
        out.insert("nullable".into(), n);
    }
    if out.get("type").and_then(Value::as_str) == Some("file") {
        out.insert("type".into(), json!("string"));
        out.insert("format".into(), json!("binary"));
    }
    if let Some(Value::String(prop)) = out.get("discriminator").cloned() {
        out.insert("discriminator".into(), json!({ "propertyName": prop }));
    }
    Value::Object(out)
}

/// `f` applied to every value of the map `v`.
pub(super) fn map_values(v: &Value, f: impl Fn(&Value) -> Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, s)| (k.clone(), f(s))).collect()),
        other => other.clone(),
    }
}

/// Where a 2.0 local reference points in 3.0, or `None` if it is not one
/// of the three 2.0 component kinds.
pub(super) fn upgrade_ref(r: &str) -> Option<String> {
    [
        ("#/definitions/", "#/components/schemas/"),
        ("#/parameters/", "#/components/parameters/"),
        ("#/responses/", "#/components/responses/"),
    ]
    .iter()
    .find_map(|(from, to)| r.strip_prefix(from).map(|rest| format!("{to}{rest}")))
}

/// Every `$ref` below `v` rewritten to its 3.0 place; references that
/// cannot be (external files, unknown places) are noted and kept.
pub(super) fn rewrite_refs(v: &mut Value, at: &str, notes: &mut Vec<Note>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if r.starts_with("#/components/") {
                    // already rewritten (a converted part)
                } else if let Some(new) = upgrade_ref(r) {
                    *r = new;
                } else if r.starts_with('#') {
                    notes.push(Note::new(
                        at,
                        format!("$ref {r} points to no 2.0 component; kept as it is"),
                    ));
                } else {
                    notes.push(Note::new(
                        at,
                        format!("$ref {r} is in another file; kept as it is (bring the schema into this file to have it checked and generated)"),
                    ));
                }
            }
            for (k, child) in m.iter_mut() {
                let place = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                rewrite_refs(child, &place, notes);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter_mut().enumerate() {
                rewrite_refs(child, &format!("{at}[{i}]"), notes);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas() {
        let rows = [
            (
                json!({"type": "string", "x-nullable": true}),
                json!({"type": "string", "nullable": true}),
            ),
            (
                json!({"type": "file"}),
                json!({"type": "string", "format": "binary"}),
            ),
            (
                json!({"discriminator": "kind", "type": "object"}),
                json!({"discriminator": {"propertyName": "kind"}, "type": "object"}),
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "integer", "x-nullable": true}},
                       "additionalProperties": {"type": "file"}}),
                json!({"type": "object", "properties": {"a": {"type": "integer", "nullable": true}},
                       "additionalProperties": {"type": "string", "format": "binary"}}),
            ),
            (
                json!({"allOf": [{"$ref": "#/definitions/A"}, {"x-nullable": false}], "x-model": "B"}),
                json!({"allOf": [{"$ref": "#/definitions/A"}, {"nullable": false}], "x-model": "B"}),
            ),
            (
                json!({"type": "array", "items": {"type": "file"}}),
                json!({"type": "array", "items": {"type": "string", "format": "binary"}}),
            ),
        ];
        for (from, want) in rows {
            assert_eq!(convert(&from), want, "{from}");
        }
    }

    #[test]
    fn references() {
        let mut doc = json!({"a": {"$ref": "#/definitions/Pet"}, "b": [{"$ref": "#/parameters/limit"}],
                             "c": {"$ref": "#/responses/NotFound"}, "d": {"$ref": "other.yaml#/Pet"},
                             "e": {"$ref": "#/info"}, "f": {"$ref": "#/components/schemas/Done"}});
        let mut notes = Vec::new();
        rewrite_refs(&mut doc, "", &mut notes);
        assert_eq!(doc["a"]["$ref"], "#/components/schemas/Pet");
        assert_eq!(doc["b"][0]["$ref"], "#/components/parameters/limit");
        assert_eq!(doc["c"]["$ref"], "#/components/responses/NotFound");
        assert_eq!(doc["d"]["$ref"], "other.yaml#/Pet");
        assert_eq!(doc["f"]["$ref"], "#/components/schemas/Done");
        let places: Vec<&str> = notes.iter().map(|n| n.at.as_str()).collect();
        assert_eq!(places, ["d", "e"]);
        assert!(notes[0].message.contains("another file"), "{}", notes[0]);
    }
}
